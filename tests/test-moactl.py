#!/usr/bin/env python3
"""test-moactl.py — moactl end to end against tests/fake-moad.py on a
temporary Unix socket: every command's output, the request it sends, and
the documented exit codes for usage errors (2), daemon errors (1),
connection failures (3), bad replies (4) and timeouts (5).

Usage: test-moactl.py /path/to/moactl   (or env MOACTL)
"""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from reachable import reachable  # tests/reachable.py

HERE = os.path.dirname(os.path.abspath(__file__))
MOACTL = None

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


class FakeServer:
    def __init__(self, path, *args):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake-moad.py"), "--socket", path, *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError("fake-moad did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def run(*args, sock=None, stdin=None, env_extra=None, prefix=(), moactl=None):
    env = dict(os.environ)
    env.pop("MOAD_SOCKET", None)
    if sock is not None:
        env["MOAD_SOCKET"] = sock
    # Sanitizer reports must not hide behind moactl's own exit codes.
    env["ASAN_OPTIONS"] = "exitcode=86:detect_leaks=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    env.update(env_extra or {})
    p = subprocess.run([*prefix, moactl or MOACTL, *args], input=stdin, capture_output=True, env=env, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    for m in SANITIZER_MARKERS:
        if m in err:
            raise AssertionError("sanitizer report for %r:\n%s" % (args, err))
    return p.returncode, out, err


class MoactlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="moactl-test-")
        os.chmod(cls.dir, 0o755)
        cls.sock = os.path.join(cls.dir, "moad.sock")
        cls.server = FakeServer(cls.sock)
        cls.sock2 = os.path.join(cls.dir, "starting.sock")
        try:
            cls.server2 = FakeServer(cls.sock2, "--not-ready")
        except BaseException:  # unittest skips tearDownClass when this fails
            cls.server.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server2.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def moactl(self, *args, **kw):
        kw.setdefault("sock", self.sock)
        return run(*args, **kw)

    def fake_post(self, path, obj):
        body = json.dumps(obj).encode()
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.sendall(b"POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)
        while s.recv(65536):
            pass
        s.close()

    def fetch_last(self):
        """The last request the fake server saw (it keeps /_fake/last itself out)."""
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.sendall(b"GET /_fake/last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    # -- command line ------------------------------------------------------
    def test_help_and_version(self):
        rc, out, _ = self.moactl("--help")
        self.assertEqual(rc, 0)
        self.assertIn("Usage: moactl", out)
        self.assertIn("ingest --agent NAME", out)
        rc, out, _ = self.moactl("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^moactl \d+\.\d+")

    def test_usage_errors_exit_2(self):
        cases = [(), ("frobnicate",), ("--bogus", "models"), ("ask",), ("ask", "a", "b"), ("ask", ""),
                 ("--timeout", "x", "models"), ("--timeout", "-1", "models"), ("models", "extra"),
                 ("ingest", "file"), ("ingest", "--agent", "legal"), ("documents",),
                 ("-a", "a", "-a", "b", "documents"), ("delete", "--agent", "legal"), ("--socket",),
                 ("--base", "/tmp", "models"), ("documents", "--agent", "legal", "--dry-run"),
                 ("ingest", "--agent", "legal", "--title", "t", "/etc/hostname", "/etc/passwd"),
                 ("ingest", "--agent", "legal", "--title", "t", "/etc"),
                 ("ingest", "--agent", "legal", "--sync", "/etc", "/etc/hostname"),
                 ("ingest", "--agent", "legal", "--sync", "/etc/hostname"),
                 ("ingest", "--agent", "legal", "--base", "/nonexistent", "/etc/hostname"),
                 ("ingest", "--agent", "legal", "--include", "", "/etc/hostname")]
        for args in cases:
            with self.subTest(args=args):
                rc, out, err = self.moactl(*args)
                self.assertEqual(rc, 2, err)
                self.assertIn("moactl:", err)

    # -- connecting ----------------------------------------------------------
    def test_not_running_exit_3(self):
        path = os.path.join(self.dir, "absent.sock")
        rc, _, err = run("models", sock=path)
        self.assertEqual(rc, 3)
        self.assertIn("moad is not running (no socket at %s)" % path, err)

    def test_socket_option_beats_env(self):
        rc, out, _ = run("--socket", self.sock, "models", sock=os.path.join(self.dir, "absent.sock"))
        self.assertEqual(rc, 0)
        self.assertIn("moa-lite", out)

    def test_stale_socket_refused_exit_3(self):
        path = os.path.join(self.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
        try:
            rc, _, err = run("health", sock=path)
        finally:
            os.unlink(path)
        self.assertEqual(rc, 3)
        self.assertIn("connection refused on %s" % path, err)

    def test_not_a_socket_exit_3(self):
        path = os.path.join(self.dir, "plain-file")
        open(path, "w").close()
        rc, _, err = run("health", sock=path)
        self.assertEqual(rc, 3)
        self.assertIn("not a socket", err)

    def test_permission_denied_exit_3(self):
        path = os.path.join(self.dir, "private.sock")
        srv = FakeServer(path)
        try:
            os.chmod(path, 0o600)
            if os.geteuid() == 0:
                setpriv = shutil.which("setpriv")
                if not setpriv:
                    self.skipTest("root without setpriv: cannot drop privileges")
                prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
                rc, _, err = run("health", sock=path, prefix=prefix, moactl=reachable(MOACTL))
            else:
                rc, _, err = run("health", sock=path)
        finally:
            srv.stop()
        self.assertEqual(rc, 3, err)
        self.assertIn("permission denied on %s: are you in the moad group?" % path, err)

    # -- read-only commands --------------------------------------------------
    def test_health(self):
        rc, out, _ = self.moactl("health")
        self.assertEqual((rc, out), (0, "moad: ok, ready\n"))
        rc, out, _ = self.moactl("health", sock=self.sock2)
        self.assertEqual((rc, out), (1, "moad: ok, starting\n"))

    def test_models(self):
        rc, out, _ = self.moactl("models")
        self.assertEqual(rc, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["MODEL", "OWNED", "BY"])
        self.assertEqual([l.split()[0] for l in lines[1:]], ["moa", "moa-lite", "legal"])

    def test_json_prints_body(self):
        rc, out, _ = self.moactl("--json", "models")
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out)["data"][1]["id"], "moa-lite")

    def test_agents_sanitizes_control_characters(self):
        rc, out, _ = self.moactl("agents")
        self.assertEqual(rc, 0)
        self.assertIn("Contracts and law", out)
        self.assertNotIn("\x1b", out)
        self.assertRegex(out, r"legal +legal +1\.0 +1\.00 +builtin +builtin +2 ")

    def test_route(self):
        rc, out, _ = self.moactl("route", "who signs the contract?")
        self.assertEqual(rc, 0)
        self.assertEqual(self.fetch_last()["body"], json.dumps({"query": "who signs the contract?"},
                                                               separators=(",", ":")))
        self.assertRegex(out, r"AGENT +SCORE +LEXICON +LEARNED +KB +SELECTED\n")
        self.assertRegex(out, r"legal +0\.710 +0\.800 +0\.900 +0\.500 +yes\n")
        # no learned model: a dash, not a made-up number
        self.assertRegex(out, r"medical +0\.050 +0\.000 +- +0\.100 +no\n")
        self.assertIn("Why:\n  legal: lexicon: keywords: contract; learned: contract, signs; "
                      "knowledge: contract (in 3 of 40 chunks); documents: contracts.md\n", out)
        self.assertNotIn("  medical:", out)
        self.assertTrue(out.endswith("Selected: legal\n"))

    def test_status(self):
        rc, out, _ = self.moactl("status")
        self.assertEqual(rc, 0)
        self.assertIn("Uptime:     1h 02m 03s", out)
        self.assertIn("Requests:   42 total, 2 in flight, 1 queued", out)
        self.assertIn("Pipelines:  moa, moa-lite", out)
        self.assertIn("kb_bytes:", out)

    def test_metrics_raw(self):
        rc, out, _ = self.moactl("metrics")
        self.assertEqual((rc, out), (0, "# TYPE moad_requests_total counter\nmoad_requests_total 42\n"))

    def test_reload(self):
        rc, out, _ = self.moactl("reload")
        self.assertEqual((rc, out), (0, "moad: configuration reloaded\n"))
        self.assertEqual(self.fetch_last()["method"], "POST")
        rc, out, err = self.moactl("reload", sock=self.sock2)
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 400: /etc/moad/moad.yaml:3:5: unknown key 'listen'", err)

    # -- ask -------------------------------------------------------------------
    def test_ask_streams(self):
        rc, out, err = self.moactl("ask", "hello there")
        self.assertEqual((rc, out, err), (0, "Echo: hello there [agents=]\n", ""))
        req = self.fetch_last()
        self.assertEqual(req["path"], "/v1/chat/completions")
        self.assertEqual(req["content_type"], "application/json")
        body = json.loads(req["body"])
        self.assertEqual(body["model"], "moa")
        self.assertIs(body["stream"], True)
        self.assertEqual(body["stream_options"], {"include_usage": True})
        self.assertEqual(body["messages"], [{"role": "user", "content": "hello there"}])
        # an empty "moa" object: the reply then carries moa.citations
        self.assertEqual(body["moa"], {})

    def test_ask_events_split_anywhere(self):
        rc, out, _ = self.moactl("ask", "split")
        self.assertEqual((rc, out), (0, "Echo: split [agents=]\n"))

    def test_ask_model_and_agents(self):
        rc, out, _ = self.moactl("--model", "moa-lite", "--agent", "legal", "-a", "finance", "ask", "q")
        self.assertEqual((rc, out), (0, "Echo: q [agents=legal,finance]\n"))
        body = json.loads(self.fetch_last()["body"])
        self.assertEqual(body["model"], "moa-lite")
        self.assertEqual(body["moa"], {"agents": ["legal", "finance"]})

    def test_ask_from_stdin(self):
        rc, out, _ = self.moactl("ask", "-", stdin=b"from stdin\n")
        self.assertEqual((rc, out), (0, "Echo: from stdin [agents=]\n"))

    def test_question_must_be_utf8(self):
        rc, _, err = self.moactl("ask", "-", stdin=b"caf\xe9?\n")
        self.assertEqual(rc, 2)
        self.assertIn("not UTF-8", err)
        rc, _, err = self.moactl("route", "-", stdin=b"a\0b")
        self.assertEqual(rc, 2)
        rc, _, err = self.moactl("--agent", "l\udcffegal", "ask", "q")
        self.assertEqual(rc, 2)

    def test_ask_json(self):
        rc, out, _ = self.moactl("--json", "ask", "hi")
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out)["choices"][0]["message"]["content"], "Echo: hi [agents=]")
        self.assertIs(json.loads(self.fetch_last()["body"])["stream"], False)

    def test_ask_trace(self):
        rc, out, err = self.moactl("--trace", "ask", "q")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("Echo: q [agents=]\n\nPipeline: moa-lite\nRoute:\n"), out)
        self.assertRegex(out, r"AGENT +SCORE +PLUGIN +KB +SELECTED +REASON")
        self.assertRegex(out, r"legal +0\.71 +0\.80 +0\.50 +yes +contract")
        self.assertRegex(out, r"LAYER +AGENT +PROVIDER +WEIGHT +LATENCY +TOKENS +TRIES +RESULT")
        self.assertRegex(out, r"1 propose +legal +builtin +1\.00 +12 ms +30 +1 +ok")
        self.assertRegex(out, r"1 propose +finance +vllm +0\.50 +3000 ms +- +3 +error: timed out")
        self.assertRegex(out, r"2 aggregate +aggregator +builtin +1\.00 +20 ms +50 +1 +ok")
        self.assertIn("Usage: 10 prompt + 5 completion = 15 tokens", out)
        self.assertIn("moactl: warning from moad: finance failed: timed out", err)
        self.assertEqual(json.loads(self.fetch_last()["body"])["moa"], {"trace": True})

    def test_ask_midstream_error_exit_1(self):
        rc, out, err = self.moactl("ask", "midstream-error")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "partial answer\n")
        self.assertIn("moad failed mid-stream: upstream provider failed (server_error)", err)

    def test_ask_daemon_errors_exit_1(self):
        rc, out, err = self.moactl("ask", "error404")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("moad returned HTTP 404: unknown model 'nope' (not_found_error) [request fake-req-1]", err)
        rc, _, err = self.moactl("--json", "ask", "error404")
        self.assertEqual(rc, 1)
        rc, _, err = self.moactl("ask", "error500-noerror")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 500 without an error message", err)

    def test_ask_bad_replies_exit_4(self):
        for q, msg in [("garbage", "bad reply"), ("close", "without a reply"), ("badjson", "not JSON"),
                       ("bigevent", "line over"), ("no-done", "before [DONE]"), ("huge", "larger than 64 MiB"),
                       ("hugechunked", "larger than 64 MiB")]:
            with self.subTest(q=q):
                rc, _, err = self.moactl("ask", q)
                self.assertEqual(rc, 4, err)
                self.assertIn(msg, err)
        rc, _, err = self.moactl("--json", "ask", "huge")
        self.assertEqual(rc, 4, err)

    def test_ask_output_sanitized(self):
        rc, out, _ = self.moactl("ask", "escape")
        self.assertEqual((rc, out), (0, "red?[31mtext\n"))

    def test_ask_timeout_exit_5(self):
        rc, _, err = self.moactl("--timeout", "1", "ask", "slow")
        self.assertEqual(rc, 5)
        self.assertIn("timed out after 1 s", err)

    def test_garbage_replies_never_crash(self):
        """Seeded random replies (raw bytes, JSON of random shapes, broken
        event streams) to every command: moactl may only exit 0, 1 or 4, and
        run() fails on any sanitizer report."""
        d = tempfile.mkdtemp(dir=self.dir)
        doc = os.path.join(d, "doc.md")
        with open(doc, "w") as f:
            f.write("text")
        commands = [("models",), ("agents",), ("status",), ("health",), ("metrics",), ("reload",),
                    ("route", "q"), ("documents", "--agent", "legal"), ("delete", "--agent", "legal", "t"),
                    ("ingest", "--agent", "legal", doc), ("--json", "ask", "q"), ("--trace", "ask", "q"),
                    ("ask", "q")]
        seed = 0
        for kind in ("raw", "json", "shape", "sse", "sse-shape"):
            for cmd in commands:
                for _ in range(3):
                    seed += 1
                    self.fake_post("/_fake/chaos", {"seed": seed, "kind": kind})
                    rc, _, err = self.moactl(*cmd)
                    with self.subTest(kind=kind, cmd=cmd, seed=seed):
                        self.assertIn(rc, (0, 1, 4), err)

    # -- documents ---------------------------------------------------------------
    def test_pdf_converter_sandboxed(self):
        """pdftotext runs with a wall-clock timeout, a CPU-time limit, a
        memory limit and an output limit; its process group is killed. Fake
        converters (first in PATH) that hang, spin, leave a child behind,
        allocate without end, or flood stdout are stopped with a clear
        reason, and the run goes on."""
        d = tempfile.mkdtemp(dir=self.dir)
        bindir = os.path.join(d, "bin")
        os.mkdir(bindir)
        pdf = os.path.join(d, "crafted.pdf")
        with open(pdf, "wb") as f:
            f.write(b"%PDF-1.7\n" + b"0" * 1000)
        pidfile = os.path.join(d, "grandchild.pid")
        scripts = {
            # sleeps without output, its child sleeping too (same group)
            "hang": "#!/bin/sh\nsleep 30 &\necho $! > %s\nsleep 30\n" % pidfile,
            "spin": "#!/bin/sh\nwhile :; do :; done\n",
            "hog": "#!%s\nx = bytearray(3 << 30)\nprint('allocated')\n" % sys.executable,
            "flood": "#!/bin/sh\nexec cat /dev/zero\n",
        }
        want = {
            "hang": "pdftotext ran longer than 2 s and was stopped (a crafted PDF?)",
            "spin": "pdftotext used more than 1 s of CPU and was stopped (a crafted PDF?)",
            "hog": "not a readable PDF (pdftotext could not extract text)",
            "flood": "its text is larger than",
        }
        for name, body in scripts.items():
            with self.subTest(converter=name):
                conv = os.path.join(bindir, "pdftotext")
                with open(conv, "w") as f:
                    f.write(body)
                os.chmod(conv, 0o755)
                # only the hanging one may meet the short wall clock, even on a busy machine
                env = {"PATH": bindir + ":" + os.environ.get("PATH", ""),
                       "MOACTL_CONVERT_TIMEOUT": "2" if name == "hang" else "60", "MOACTL_CONVERT_CPU": "1"}
                rc, out, err = self.moactl("ingest", "--agent", "legal", pdf, env_extra=env)
                self.assertEqual(rc, 1, err)
                self.assertIn("crafted.pdf: refused: " + want[name], err)
        # The hanging converter's child was killed with it (its group).
        with open(pidfile) as f:
            pid = int(f.read())
        for _ in range(50):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                break
            if state == "Z":
                break
            time.sleep(0.1)
        else:
            self.fail("the converter's child %d outlived it" % pid)

    def test_ingest_list_delete(self):
        d = tempfile.mkdtemp(dir=self.dir)
        good = os.path.join(d, "Contract Law.md")
        with open(good, "w") as f:
            f.write("# Contracts\n" + "x" * 250)
        binary = os.path.join(d, "blob.txt")
        with open(binary, "wb") as f:
            f.write(b"a\0b")
        latin = os.path.join(d, "latin1.txt")
        with open(latin, "wb") as f:
            f.write(b"caf\xe9")
        pdf = os.path.join(d, "paper.pdf")
        with open(pdf, "w") as f:
            f.write("%PDF-1.4 not really")
        rejected = os.path.join(d, "reject.txt")
        with open(rejected, "w") as f:
            f.write("too big, says the server")
        missing = os.path.join(d, "missing.md")

        # PATH without pdftotext makes the PDF failure deterministic.
        env = {"PATH": "/nonexistent"}
        rc, out, err = self.moactl("ingest", "--agent", "legal", good, missing, binary, latin, pdf, rejected,
                                   env_extra=env)
        self.assertEqual(rc, 1, err)
        lines = err.splitlines()
        # Titles are relative to the arguments' common directory; the missing
        # argument is reported while the files are collected.
        self.assertEqual(lines[0], "%s: refused: No such file or directory" % missing)
        self.assertEqual(lines[1], "[1/5] Contract Law.md: added (3 chunks)")
        self.assertEqual(lines[2], "[2/5] blob.txt: refused: not text (binary data)")
        self.assertEqual(lines[3], "[3/5] latin1.txt: added (1 chunk; Latin-1)")
        self.assertIn("[4/5] paper.pdf: refused: cannot read PDF files: pdftotext not found", lines[4])
        self.assertTrue(lines[5].startswith("[5/5] reject.txt: refused: moad returned HTTP 413: document too large"),
                        lines[5])
        self.assertRegex(lines[6], r"^legal: 2 added, 0 replaced, 0 unchanged, 4 refused \(%s: No such file or "
                         r"directory; blob\.txt: not text \(binary data\); paper\.pdf: cannot read PDF files: "
                         r".*; \.\.\.\)$" % re.escape(missing))
        self.assertEqual(len(lines), 7)

        # The same file again: unchanged (same title and sha256), not sent.
        rc, out, err = self.moactl("ingest", "--agent", "legal", good)
        self.assertEqual((rc, err), (0, "[1/1] Contract Law.md: unchanged\n"
                                        "legal: 0 added, 0 replaced, 1 unchanged, 0 refused\n"))
        self.assertEqual(self.fetch_last()["method"], "GET")
        with open(good, "a") as f:
            f.write("y")
        rc, out, err = self.moactl("ingest", "--agent", "legal", good)
        self.assertEqual(rc, 0, err)
        self.assertIn("[1/1] Contract Law.md: replaced (3 chunks)", err)
        body = json.loads(self.fetch_last()["body"])
        st = os.stat(good)
        with open(good, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(body, {"title": "Contract Law.md", "source": os.path.realpath(good),
                                "text": "# Contracts\n" + "x" * 250 + "y", "sha256": sha, "size": 263,
                                "mtime": int(st.st_mtime)})

        rc, out, _ = self.moactl("documents", "--agent", "legal")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"TITLE +CHUNKS +BYTES +SIZE +MODIFIED \(UTC\) +INGESTED \(UTC\) +SHA256 +SOURCE")
        self.assertRegex(out, r"Contract Law\.md +3 +263 +263 +\d{4}-\d\d-\d\d [\d:]{8} +2025-11-25 16:30:50 +" +
                         sha + " +" + os.path.realpath(good))
        self.assertEqual(self.moactl("docs", "--agent", "legal")[1], out)

        rc, out, _ = self.moactl("delete", "--agent", "legal", "Contract Law.md")
        self.assertEqual((rc, out), (0, "deleted \"Contract Law.md\" from agent legal\n"))
        self.assertEqual(self.fetch_last()["path"], "/v1/moa/agents/legal/documents/Contract%20Law.md")
        rc, _, err = self.moactl("delete", "--agent", "legal", "a/b?c")
        self.assertEqual(rc, 1)
        self.assertEqual(self.fetch_last()["path"], "/v1/moa/agents/legal/documents/a%2Fb%3Fc")
        self.assertIn("HTTP 404", err)

    def test_ingest_forbidden_stops(self):
        d = tempfile.mkdtemp(dir=self.dir)
        files = []
        for name in ("forbidden-1.md", "forbidden-2.md"):
            files.append(os.path.join(d, name))
            with open(files[-1], "w") as f:
                f.write("text")
        rc, _, err = self.moactl("ingest", "--agent", "legal", *files)
        self.assertEqual(rc, 1)
        self.assertIn("moad returned HTTP 403: not allowed: admin endpoints need a permitted user or group", err)
        self.assertIn("need root or access.admin", err)
        self.assertNotIn("forbidden-2.md", err)  # no point in trying the rest

    def test_ingest_unknown_agent_and_no_daemon(self):
        d = tempfile.mkdtemp(dir=self.dir)
        f = os.path.join(d, "a.txt")
        with open(f, "w") as fh:
            fh.write("text")
        rc, _, err = self.moactl("ingest", "--agent", "nope", f)
        self.assertEqual(rc, 1)
        self.assertIn("no such agent: nope", err)
        rc, _, err = self.moactl("ingest", "--agent", "legal", f, f, sock=os.path.join(self.dir, "absent.sock"))
        self.assertEqual(rc, 3)
        self.assertIn("moad is not running", err)


if __name__ == "__main__":
    MOACTL = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.environ["MOACTL"])
    unittest.main(verbosity=2)
