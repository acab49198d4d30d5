"""Access control: SO_PEERCRED allow lists per endpoint class on the Unix
socket (clients run as another uid with setpriv), bearer token on TCP."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

from moadtest import Daemon, UnixHTTPConnection

CLIENT = r"""
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
c = C("localhost", timeout=30)
method, path = sys.argv[2], sys.argv[3]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
print(c.getresponse().status)
"""

NOBODY = 65534
ROOT_ONLY = os.geteuid() == 0 and shutil.which("setpriv")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@unittest.skipUnless(ROOT_ONLY, "needs root and setpriv to act as another uid")
class PeerCredentials(unittest.TestCase):
    config = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config=cls.config)
        os.chmod(cls.d.dir, 0o755)
        os.chmod(cls.d.socket, 0o666)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def as_user(self, uid, method, path, body=None, groups=None):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid]
        cmd += ["--groups=%s" % ",".join(map(str, groups))] if groups else ["--clear-groups"]
        cmd += [sys.executable, "-c", CLIENT, self.d.socket, method, path]
        if body is not None:
            cmd.append(json.dumps(body))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return int(p.stdout.strip())


class DefaultRules(PeerCredentials):
    """No access section: ask is open to whoever can connect; admin is root's."""

    def test_ask_open(self):
        q = {"model": "moa", "messages": [{"role": "user", "content": "What is GDPR?"}]}
        self.assertEqual(self.as_user(NOBODY, "POST", "/v1/chat/completions", q), 200)

    def test_admin_refused_and_logged(self):
        self.assertEqual(self.as_user(NOBODY, "POST", "/v1/moa/reload"), 403)
        self.assertEqual(self.as_user(NOBODY, "DELETE", "/v1/moa/agents/legal/documents/x"), 403)
        self.assertTrue(self.d.wait_log("access denied to POST /v1/moa/reload: uid 65534"))
        # root may
        self.assertEqual(self.d.request("POST", "/v1/moa/reload")[0], 200)


class ConfiguredRules(PeerCredentials):
    config = "access:\n  ask:\n    users: [root]\n    groups: [4242]\n  admin:\n    users: [0]\n"

    def test_ask_denied_for_others(self):
        q = {"model": "moa", "messages": [{"role": "user", "content": "What is GDPR?"}]}
        self.assertEqual(self.as_user(NOBODY, "POST", "/v1/chat/completions", q), 403)
        self.assertEqual(self.as_user(NOBODY, "GET", "/v1/models"), 403)
        # health stays open
        self.assertEqual(self.as_user(NOBODY, "GET", "/healthz"), 200)

    def test_supplementary_group_admitted(self):
        self.assertEqual(self.as_user(NOBODY, "GET", "/v1/models", groups=[4242]), 200)
        self.assertEqual(self.as_user(NOBODY, "POST", "/v1/moa/reload", groups=[4242]), 403)


class BadRules(unittest.TestCase):
    def test_unknown_user_is_a_config_error(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("access:\n  admin:\n    users: [no-such-user-xyz]\n")
        from moadtest import MOAD
        p = subprocess.run([MOAD, "--check-config", "--config", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        self.assertEqual(p.returncode, 1)
        self.assertIn(":3:13: unknown user 'no-such-user-xyz'", p.stderr)


class BearerToken(unittest.TestCase):
    def test_tcp_needs_token(self):
        tmp = tempfile.mkdtemp(prefix="moad-token-")
        token = "t0ken-" + "x" * 26
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write(token + "\n")
        port = free_port()
        d = Daemon(config="listen:\n  tcp: \"127.0.0.1:%d\"\n  bearer_token_file: %s\n" % (port, os.path.join(tmp, "token")))
        try:
            import http.client
            def req(method, path, auth=None):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                h = {"Authorization": "Bearer " + auth} if auth else {}
                c.request(method, path, headers=h)
                r = c.getresponse()
                body = r.read()
                c.close()
                return r.status, body
            self.assertEqual(req("GET", "/healthz")[0], 200)
            st, body = req("GET", "/v1/models")
            self.assertEqual(st, 403)
            self.assertNotIn(token.encode(), body)
            self.assertEqual(req("GET", "/v1/models", "wrong-token-wrong-token")[0], 403)
            self.assertEqual(req("GET", "/v1/models", token)[0], 200)
            self.assertEqual(req("POST", "/v1/moa/reload", token)[0], 200)
            # the unix socket keeps peer-credential rules
            self.assertEqual(d.request("GET", "/v1/models")[0], 200)
            self.assertNotIn(token, d.read_log())
        finally:
            d.cleanup()
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
