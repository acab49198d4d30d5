#!/usr/bin/env python3
"""test-moactl-daemon.py — moactl against the real moad: starts the daemon
on a temporary socket and state directory with the shipped agents and the
offline builtin provider (no network), then drives every moactl command and
checks outputs and exit codes. Complements test-moactl.py, which covers the
failure modes with a fake daemon.

Usage: test-moactl-daemon.py MOACTL MOAD AGENTS_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

MOACTL = MOAD = AGENTS_DIR = None
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


class MoactlDaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="moactl-moad-")
        cls.sock = os.path.join(cls.dir, "moad.sock")
        state = os.path.join(cls.dir, "state")
        os.mkdir(state)
        cls.log = open(os.path.join(cls.dir, "moad.log"), "w+")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        cls.moad = subprocess.Popen([MOAD, "--socket", cls.sock, "--state-dir", state, "--agents-dir", AGENTS_DIR],
                                    stdout=cls.log, stderr=subprocess.STDOUT, env=env)
        # Ready when health says so; the daemon seeds the knowledge bases first.
        # unittest skips tearDownClass when this fails: never leave moad behind.
        try:
            deadline = time.monotonic() + 60
            while True:
                if cls.moad.poll() is not None:
                    raise RuntimeError("moad exited early:\n" + cls.daemon_log())
                if os.path.exists(cls.sock) and cls.moactl("health")[0] == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("moad did not become ready:\n" + cls.daemon_log())
                time.sleep(0.1)
        except BaseException:
            log = cls.daemon_log()
            cls.tearDownClass()
            sys.stderr.write(log)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.moad.poll() is None:
            cls.moad.send_signal(signal.SIGTERM)
            try:
                cls.moad.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cls.moad.kill()
                cls.moad.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def daemon_log(cls):
        cls.log.flush()
        cls.log.seek(0)
        return cls.log.read()[-4000:]

    @classmethod
    def moactl(cls, *args, stdin=None):
        env = dict(os.environ)
        env["MOAD_SOCKET"] = cls.sock
        env["ASAN_OPTIONS"] = "exitcode=86:detect_leaks=1"
        p = subprocess.run([MOACTL, *args], input=stdin, capture_output=True, env=env, timeout=120)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("sanitizer report for %r:\n%s" % (args, err))
        return p.returncode, out, err

    def test_health_models_agents_status_metrics(self):
        self.assertEqual(self.moactl("health")[:2], (0, "moad: ok, ready\n"))
        rc, out, _ = self.moactl("models")
        self.assertEqual(rc, 0)
        models = [l.split()[0] for l in out.splitlines()[1:]]
        for name in ("moa", "moa-lite", "legal", "medical", "general"):
            self.assertIn(name, models)
        rc, out, _ = self.moactl("agents")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"(?m)^legal +legal +\S+ +\d\.\d\d +builtin ")
        rc, out, _ = self.moactl("status")
        self.assertEqual(rc, 0)
        self.assertIn("State:      ready", out)
        self.assertRegex(out, r"Pipelines:  .*moa")
        rc, out, _ = self.moactl("metrics")
        self.assertEqual(rc, 0)
        self.assertIn("# TYPE moad_", out)
        rc, out, _ = self.moactl("--json", "status")
        self.assertEqual(json.loads(out)["state"], "ready")

    def test_route(self):
        rc, out, _ = self.moactl("route", "Can my landlord keep the deposit after the lease ends?")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^AGENT +SCORE +LEXICON +LEARNED +KB +SELECTED\n")
        self.assertRegex(out, r"\n  legal: lexicon: [^\n]*landlord[^\n]*; learned: [^\n]*; knowledge: [^\n]*documents: ")
        self.assertRegex(out, r"\nSelected: legal")

    def test_ingest_ask_delete(self):
        d = tempfile.mkdtemp(dir=self.dir)
        doc = os.path.join(d, "zorblax covenant.md")
        sentence = "The Zorblax covenant requires every tenant to water the communal ficus on Tuesdays."
        with open(doc, "w") as f:
            f.write("# Zorblax\n\n" + sentence + "\n")

        rc, _, err = self.moactl("ingest", "--agent", "legal", doc)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"\[1/1\] zorblax covenant\.md: added \(\d+ chunks?\)\n")
        rc, out, _ = self.moactl("documents", "--agent", "legal")
        self.assertEqual(rc, 0)
        self.assertIn("zorblax covenant.md", out)
        self.assertIn(os.path.realpath(doc), out)

        # The builtin provider answers from the knowledge base: the sentence comes back.
        rc, out, err = self.moactl("--agent", "legal", "ask", "What does the Zorblax covenant require of tenants?")
        self.assertEqual(rc, 0, err)
        self.assertIn("water the communal ficus on Tuesdays", out)

        rc, out, err = self.moactl("--trace", "--agent", "legal", "ask", "Zorblax covenant ficus")
        self.assertEqual(rc, 0, err)
        self.assertIn("\nRoute:\n", out)
        self.assertRegex(out, r"\nLayers:\nLAYER +AGENT +PROVIDER")
        self.assertRegex(out, r"(?m)^1 propose +legal +builtin ")
        self.assertRegex(out, r"Usage: \d+ prompt \+ \d+ completion = \d+ tokens")

        rc, out, _ = self.moactl("--json", "ask", "-", stdin=b"Zorblax covenant?\n")
        self.assertEqual(rc, 0)
        reply = json.loads(out)
        self.assertEqual(reply["object"], "chat.completion")
        self.assertTrue(reply["choices"][0]["message"]["content"])

        rc, out, _ = self.moactl("delete", "--agent", "legal", "zorblax covenant.md")
        self.assertEqual((rc, out), (0, "deleted \"zorblax covenant.md\" from agent legal\n"))
        rc, _, err = self.moactl("delete", "--agent", "legal", "zorblax covenant.md")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404", err)

    def test_daemon_errors(self):
        rc, _, err = self.moactl("--model", "no-such-model", "ask", "hi")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404", err)
        d = tempfile.mkdtemp(dir=self.dir)
        doc = os.path.join(d, "a.txt")
        with open(doc, "w") as f:
            f.write("text\n")
        rc, _, err = self.moactl("ingest", "--agent", "no-such-agent", doc)
        self.assertEqual(rc, 1)
        self.assertIn("moad returned HTTP 404: no agent named 'no-such-agent'", err)

    def test_access_rules_403(self):
        """A user who may connect but is not root or moad's own user may ask
        but not administer (access.admin unset): moactl shows the 403."""
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to act as another user")
        if not all(os.stat(d).st_mode & 0o001 for d in _parents(MOACTL)) or not os.access(MOACTL, os.X_OK):
            self.skipTest("moactl not reachable for an unprivileged user")
        os.chmod(self.dir, 0o755)
        os.chmod(self.sock, 0o666)
        env = dict(os.environ, MOAD_SOCKET=self.sock, ASAN_OPTIONS="exitcode=86:detect_leaks=1")
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", MOACTL]
        p = subprocess.run(nobody + ["models"], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(nobody + ["reload"], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"moad returned HTTP 403", p.stderr)
        self.assertIn(b"need root or access.admin", p.stderr)

    def test_reload(self):
        rc, out, err = self.moactl("reload")
        self.assertEqual((rc, out), (0, "moad: configuration reloaded\n"), err)
        self.assertEqual(self.moactl("health")[0], 0)

    def test_zz_stop(self):
        """Runs last (name order): moad drains on SIGTERM, exits 0 without
        sanitizer reports, removes its socket; then moactl says it is not
        running."""
        self.moad.send_signal(signal.SIGTERM)
        self.assertEqual(self.moad.wait(timeout=60), 0, self.daemon_log())
        log = self.daemon_log()
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, log)
        self.assertFalse(os.path.exists(self.sock))
        rc, _, err = self.moactl("health")
        self.assertEqual(rc, 3)
        self.assertIn("moad is not running (no socket at %s)" % self.sock, err)


def _parents(path):
    path = os.path.dirname(os.path.abspath(path))
    while True:
        yield path
        if path == "/":
            return
        path = os.path.dirname(path)


if __name__ == "__main__":
    MOACTL, MOAD, AGENTS_DIR = (os.path.abspath(a) for a in sys.argv[1:4])
    del sys.argv[1:4]
    unittest.main(verbosity=2)
