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

from moadtest import Daemon, UnixHTTPConnection, cannot_run

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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def as_nobody(argv, cwd):
    """Runs argv as NOBODY (no groups) in cwd; returns the CompletedProcess."""
    cmd = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"] + argv
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)


def unprivileged_runner():
    """A directory that NOBODY can reach, holding the client script, and a
    Python interpreter that NOBODY can run: ((python, dir), None), or
    (None, reason). The clone may sit in root's mode-700 home directory
    (and Python in ~/.pyenv), so nothing is run from there: the client is
    copied to a fresh mode-755 directory under /tmp and the interpreter is
    the first candidate NOBODY can really start."""
    if os.geteuid() != 0:
        return None, "needs root to act as another uid (running as uid %d)" % os.geteuid()
    if not shutil.which("setpriv"):
        return None, "needs setpriv (package util-linux) to act as another uid"
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    d = tempfile.mkdtemp(prefix="moad-access-", dir=base)
    os.chmod(d, 0o755)
    with open(os.path.join(d, "client.py"), "w") as f:
        f.write(CLIENT)
    os.chmod(os.path.join(d, "client.py"), 0o644)
    tried = []
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]):
        if not py:
            continue
        p = as_nobody([py, "-c", "print('ok')"], d)
        if p.returncode == 0 and p.stdout.strip() == "ok":
            return (py, d), None
        tried.append("%s: %s" % (py, (p.stderr.strip() or "exit %d" % p.returncode)[-200:]))
    shutil.rmtree(d, ignore_errors=True)
    return None, "uid %d cannot start Python from %s (%s)" % (NOBODY, d, "; ".join(tried))


class PeerCredentials(unittest.TestCase):
    """Clients run as NOBODY against a daemon whose socket lives in a
    mode-755 directory of our own: never skipped quietly (see cannot_run)."""
    config = None

    @classmethod
    def setUpClass(cls):
        runner, why = unprivileged_runner()
        if not runner:
            cannot_run(why)
        cls.python, cls.dir = runner
        cls.d = Daemon(config=cls.config, socket_path=os.path.join(cls.dir, "moad.sock"))
        os.chmod(cls.d.socket, 0o666)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def as_user(self, uid, method, path, body=None, groups=None):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid]
        cmd += ["--groups=%s" % ",".join(map(str, groups))] if groups else ["--clear-groups"]
        cmd += [self.python, os.path.join(self.dir, "client.py"), self.d.socket, method, path]
        if body is not None:
            cmd.append(json.dumps(body))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=self.dir)
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
