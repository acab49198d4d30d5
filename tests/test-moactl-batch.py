#!/usr/bin/env python3
"""test-moactl-batch.py — "moactl batch" end to end. Against the real moad
(shipped agents, offline builtin provider): JSONL and plain-text input, a
malformed line, a refused model, --resume over a torn OUT, --csv. Against a
scripted server in this file (slow, flaky, counting requests in flight):
-j concurrency, retries with Retry-After, a run killed part-way and
resumed, progress lines, connection errors.

Usage: test-moactl-batch.py MOACTL MOAD AGENTS_DIR
"""
import csv
import io
import json
import os
import pty
import select
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler

MOACTL = MOAD = AGENTS_DIR = None
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")
URL = "/v1/chat/completions"


def jsonl_line(custom_id, question, model="moa"):
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": URL,
                       "body": {"model": model, "messages": [{"role": "user", "content": question}]}})


def read_out(path):
    """OUT as a list of objects; every line must be complete JSON."""
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), "OUT does not end in a whole line"
    return [json.loads(l) for l in data.decode().splitlines()]


def content(line):
    return line["response"]["body"]["choices"][0]["message"]["content"]


class ScriptedServer:
    """An OpenAI-style /v1/chat/completions on a Unix socket whose question
    picks the behaviour; counts requests in flight and logs questions."""

    def __init__(self, path):
        self.path = path
        self.delay = 0.0
        self.lock = threading.Lock()
        self.inflight = self.max_inflight = 0
        self.log = []
        self.attempts = {}
        self.times = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, obj, headers=()):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-request-id", "req-scripted")
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                q = req["messages"][-1]["content"]
                with outer.lock:
                    outer.inflight += 1
                    outer.max_inflight = max(outer.max_inflight, outer.inflight)
                    outer.log.append(q)
                    n = outer.attempts[q] = outer.attempts.get(q, 0) + 1
                    outer.times.setdefault(q, []).append(time.monotonic())
                try:
                    time.sleep(outer.delay)
                    if q == "flaky-429" and n == 1:
                        return self.reply(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                                          [("Retry-After", "1")])
                    if q == "flaky-503" and n < 3:
                        return self.reply(503, {"error": {"message": "busy", "type": "overloaded"}})
                    if q == "always-500":
                        return self.reply(500, {"error": {"message": "boom", "type": "server_error"}})
                    self.reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": req["model"],
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": "Echo: " + q}}]})
                finally:
                    with outer.lock:
                        outer.inflight -= 1

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # moactl killed mid-request (test_kill_and_resume)

        self.server = Server(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, delay=0.0):
        with self.lock:
            self.delay = delay
            self.max_inflight = 0
            self.log = []
            self.attempts = {}
            self.times = {}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class MoactlBatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="moactl-batch-")
        cls.sock = os.path.join(cls.dir, "moad.sock")
        state = os.path.join(cls.dir, "state")
        os.mkdir(state)
        cls.log = open(os.path.join(cls.dir, "moad.log"), "w+")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
        cls.moad = subprocess.Popen([MOAD, "--socket", cls.sock, "--state-dir", state, "--agents-dir", AGENTS_DIR],
                                    stdout=cls.log, stderr=subprocess.STDOUT, env=env)
        cls.scripted = None
        # unittest skips tearDownClass when this fails: never leave moad behind.
        try:
            cls.scripted = ScriptedServer(os.path.join(cls.dir, "scripted.sock"))
            deadline = time.monotonic() + 60
            while True:
                if cls.moad.poll() is not None:
                    raise RuntimeError("moad exited early:\n" + cls.daemon_log())
                if os.path.exists(cls.sock) and cls.run_moactl("health")[0] == 0:
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
        if cls.scripted:
            cls.scripted.stop()
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
    def env(cls, sock=None):
        return dict(os.environ, MOAD_SOCKET=sock or cls.sock, ASAN_OPTIONS="exitcode=86:detect_leaks=1",
                    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")

    @classmethod
    def run_moactl(cls, *args, sock=None):
        p = subprocess.run([MOACTL, *args], capture_output=True, env=cls.env(sock), timeout=120)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("sanitizer report for %r:\n%s" % (args, err))
        return p.returncode, out, err

    def moactl(self, *args, **kw):
        return self.run_moactl(*args, **kw)

    def file(self, name, text):
        d = tempfile.mkdtemp(dir=self.dir)
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return path

    # --- against the real moad -------------------------------------------------

    def test_jsonl_with_malformed_line(self):
        src = self.file("in.jsonl", "\n".join([
            jsonl_line("interest", "What is compound interest?"),
            '{"custom_id": "broken", "method": "POST", "url": ',
            jsonl_line("fever", "How is a fever treated?", model="medical"),
            "",
            jsonl_line("nomodel", "hi", model="no-such-model"),
            json.dumps({"custom_id": "badurl", "method": "POST", "url": "/v1/embeddings", "body": {}}),
            jsonl_line("systemd", "How do I write a systemd service unit?"),
        ]) + "\n")
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        rc, stdout, err = self.moactl("batch", src, "-o", out)
        self.assertEqual(rc, 6, err)
        self.assertEqual(stdout, "")
        self.assertIn("in.jsonl:2: not JSON: ", err)
        self.assertRegex(err, r"in\.jsonl:5: nomodel: HTTP 404: The model 'no-such-model' does not exist")
        self.assertIn('in.jsonl:6: "url" must be "/v1/chat/completions"\n', err)
        self.assertTrue(err.endswith("moactl: batch: 6 lines: 3 answered, 3 failed\n"), err)

        lines = read_out(out)
        by_id = {l["custom_id"]: l for l in lines}
        self.assertEqual(len(lines), 6)
        self.assertEqual(set(by_id), {"interest", "line-2", "fever", "nomodel", "badurl", "systemd"})
        for l in lines:
            self.assertEqual(set(l), {"id", "custom_id", "response", "error"})
            self.assertRegex(l["id"], r"^batch_req_[0-9a-f]{24}$")
        self.assertEqual(len({l["id"] for l in lines}), 6)

        ok = by_id["interest"]
        self.assertIsNone(ok["error"])
        self.assertEqual(ok["response"]["status_code"], 200)
        self.assertRegex(ok["response"]["request_id"], r"^req-")
        self.assertEqual(ok["response"]["body"]["object"], "chat.completion")
        self.assertIn("interest calculated on both the original amount", content(ok))
        self.assertIn("compound-interest.md", content(ok))
        self.assertEqual(by_id["fever"]["response"]["body"]["model"], "medical")
        self.assertIn("not necessary to bring a mild fever down", content(by_id["fever"]))
        self.assertTrue(content(by_id["systemd"]))

        bad = by_id["line-2"]
        self.assertIsNone(bad["response"])
        self.assertEqual(bad["error"]["code"], "invalid_json_line")
        self.assertRegex(bad["error"]["message"], r"^line 2: not JSON: ")
        self.assertEqual(by_id["nomodel"]["error"]["code"], "model_not_found")
        self.assertIsNone(by_id["nomodel"]["response"])
        self.assertEqual(by_id["badurl"]["error"],
                         {"code": "invalid_url", "message": 'line 6: "url" must be "/v1/chat/completions"'})

    def test_plain_text(self):
        src = self.file("questions.txt", "What is compound interest?\n\n   \nWhat is inflation?\r\n"
                                         "How do I write a systemd service unit?")
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        rc, _, err = self.moactl("batch", "--model", "finance", src, "-o", out, "-j", "3")
        self.assertEqual(rc, 0, err)
        self.assertTrue(err.endswith("moactl: batch: 3 lines: 3 answered, 0 failed\n"), err)
        by_id = {l["custom_id"]: l for l in read_out(out)}
        self.assertEqual(set(by_id), {"line-1", "line-4", "line-5"})
        for l in by_id.values():
            self.assertIsNone(l["error"])
            self.assertEqual(l["response"]["body"]["model"], "finance")
        self.assertIn("interest calculated on both", content(by_id["line-1"]))
        self.assertIn("inflation", content(by_id["line-4"]).lower())

    def test_line_too_long_and_not_utf8(self):
        src = self.file("q.txt", b"x" * (1024 * 1024 + 1) + b"\ncaf\xe9?\nWhat is inflation?\n")
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        rc, _, err = self.moactl("batch", "-q", src, "-o", out)
        self.assertEqual((rc, err), (6, ""))
        by_id = {l["custom_id"]: l for l in read_out(out)}
        self.assertEqual(by_id["line-1"]["error"], {"code": "line_too_long", "message": "line 1: longer than 1024 KiB"})
        self.assertEqual(by_id["line-2"]["error"], {"code": "invalid_line", "message": "line 2: not UTF-8 text"})
        self.assertIsNone(by_id["line-3"]["error"])

    def test_resume_over_torn_output(self):
        questions = ["What is compound interest?", "What is inflation?", "How do mortgages amortise?",
                     "What is an index fund?", "How should I budget?"]
        src = self.file("in.jsonl", "".join(jsonl_line("q%d" % i, q) + "\n" for i, q in enumerate(questions)))
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        rc, _, err = self.moactl("batch", src, "-o", out)
        self.assertEqual(rc, 0, err)
        with open(out, "rb") as f:
            full = f.read().splitlines(keepends=True)
        # As a crash would leave it: two whole lines and half of a third.
        kept = full[0] + full[1]
        with open(out, "wb") as f:
            f.write(kept + full[2][:len(full[2]) // 2])

        rc, _, err = self.moactl("batch", src, "-o", out)
        self.assertEqual(rc, 2)
        self.assertIn("out.jsonl exists: pass --resume to go on with it, or remove it", err)

        rc, _, err = self.moactl("batch", "--resume", src, "-o", out)
        self.assertEqual(rc, 0, err)
        self.assertIn("out.jsonl: dropping its torn last line (", err)
        self.assertTrue(err.endswith("moactl: batch: 3 lines: 3 answered, 0 failed; 2 already in %s\n" % out), err)
        with open(out, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(kept))
        ids = [l["custom_id"] for l in read_out(out)]
        self.assertEqual(sorted(ids), ["q0", "q1", "q2", "q3", "q4"])

        # Nothing left to do: nothing is asked, nothing is appended.
        rc, _, err = self.moactl("batch", "--resume", src, "-o", out)
        self.assertEqual(rc, 0, err)
        self.assertTrue(err.endswith("moactl: batch: 0 lines: 0 answered, 0 failed; 5 already in %s\n" % out), err)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)

        # A resumed OUT with failures keeps saying so.
        with open(out, "ab") as f:
            f.write(b"not json\n")
        rc, _, err = self.moactl("batch", "--resume", src, "-o", out)
        self.assertEqual(rc, 1)
        self.assertIn("out.jsonl: line 6 is not a batch output line; not appending to it", err)

    def test_csv(self):
        src = self.file("in.jsonl", "\ufeff" + "\n".join([  # a byte order mark is skipped
            jsonl_line("interest", "What is compound interest?"),
            jsonl_line("nomodel", "hi", model="no-such-model"),
            "{oops",
        ]) + "\n")
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        csv_path = os.path.join(os.path.dirname(src), "out.csv")
        rc, _, err = self.moactl("batch", src, "-o", out, "--csv", csv_path)
        self.assertEqual(rc, 6, err)
        with open(csv_path, "rb") as f:
            raw = f.read()
        self.assertTrue(raw.startswith(b"custom_id,status,answer,error\r\n"))
        rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
        self.assertEqual(rows[0], ["custom_id", "status", "answer", "error"])
        by_id = {r[0]: r for r in rows[1:]}
        self.assertEqual(len(rows), 4)
        lines = {l["custom_id"]: l for l in read_out(out)}
        self.assertEqual(by_id["interest"][1:], ["ok", content(lines["interest"]), ""])
        self.assertIn("\n", by_id["interest"][2])  # multi-line answers survive quoting
        self.assertEqual(by_id["nomodel"][1:3], ["failed", ""])
        self.assertIn("HTTP 404", by_id["nomodel"][3])
        self.assertEqual(by_id["line-3"][1], "failed")
        self.assertIn("line 3: not JSON", by_id["line-3"][3])

    def test_usage_errors(self):
        src = self.file("q.txt", "What is inflation?\n")
        d = os.path.dirname(src)
        for args, msg in [((src,), "batch needs -o OUT"),
                          (("-o", os.path.join(d, "o")), "batch needs an input file IN"),
                          ((src, src + "2", "-o", os.path.join(d, "o")), "batch takes one input file"),
                          ((src, "-o", os.path.join(d, "o"), "-j", "0"), "--jobs needs a number from 1 to 64: 0"),
                          ((src, "-o", os.path.join(d, "o"), "-j", "65"), "--jobs needs a number from 1 to 64: 65"),
                          ((src, "-o", os.path.join(d, "o"), "--attempts", "x"), "--attempts needs a number"),
                          ((src, "-o", src), "IN, OUT and --csv must be different files"),
                          ((src, "-o", os.path.join(d, "o"), "--bogus"), "unknown option --bogus"),
                          ((src, "-o"), "option -o needs an argument"),
                          (("/dev/null", "-o", os.path.join(d, "o")), "/dev/null is not a regular file")]:
            with self.subTest(args=args):
                rc, _, err = self.moactl("batch", *args)
                self.assertEqual(rc, 2, err)
                self.assertIn("moactl: " + msg, err)
                self.assertIn("Try 'moactl --help'", err)
        self.assertFalse(os.path.exists(os.path.join(d, "o")))
        rc, _, err = self.moactl("--trace", "batch", src, "-o", os.path.join(d, "o"))
        self.assertEqual(rc, 2)
        rc, out, _ = self.moactl("batch", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("Usage: moactl batch [OPTIONS] IN -o OUT", out)
        self.assertIn("--resume", out)
        rc, out, _ = self.moactl("--help")
        self.assertIn("batch IN -o OUT", out)
        self.assertIn("6 batch: some lines", out)

        dup = self.file("dup.jsonl", jsonl_line("a", "x") + "\n" + jsonl_line("b", "y") + "\n" +
                        jsonl_line("a", "z") + "\n")
        out = os.path.join(os.path.dirname(dup), "out.jsonl")
        rc, _, err = self.moactl("batch", dup, "-o", out)
        self.assertEqual(rc, 1)
        self.assertIn('dup.jsonl:3: custom_id "a" already used on line 1', err)
        self.assertFalse(os.path.exists(out))
        rc, _, err = self.moactl("batch", os.path.join(d, "absent.txt"), "-o", out)
        self.assertEqual(rc, 1)
        self.assertIn("cannot open %s: No such file or directory" % os.path.join(d, "absent.txt"), err)

    # --- against the scripted server -------------------------------------------

    def scripted_batch(self, *args, delay=0.0):
        self.scripted.reset(delay)
        return self.moactl("batch", *args, sock=self.scripted.path)

    def test_concurrency(self):
        n = 12
        src = self.file("q.txt", "".join("question %d\n" % i for i in range(n)))
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        t0 = time.monotonic()
        rc, _, err = self.scripted_batch(src, "-o", out, "-j", "4", delay=0.3)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.scripted.max_inflight, 4)
        self.assertLess(elapsed, n * 0.3 * 0.6)
        lines = read_out(out)
        self.assertEqual(sorted(l["custom_id"] for l in lines), sorted("line-%d" % (i + 1) for i in range(n)))
        for l in lines:
            i = int(l["custom_id"][5:]) - 1
            self.assertEqual(content(l), "Echo: question %d" % i)
        self.assertEqual(sorted(self.scripted.log), sorted("question %d" % i for i in range(n)))

        os.unlink(out)
        rc, _, err = self.scripted_batch(src, "-o", out, "--jobs", "1", delay=0.05)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.scripted.max_inflight, 1)

    def test_retries(self):
        src = self.file("q.txt", "flaky-429\nflaky-503\nalways-500\nfine\n")
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        rc, _, err = self.scripted_batch(src, "-o", out)
        self.assertEqual(rc, 6, err)
        att = self.scripted.attempts
        self.assertEqual((att["flaky-429"], att["flaky-503"], att["always-500"], att["fine"]), (2, 3, 3, 1))
        t = self.scripted.times["flaky-429"]
        self.assertGreaterEqual(t[1] - t[0], 0.95)  # Retry-After: 1
        by_id = {l["custom_id"]: l for l in read_out(out)}
        self.assertEqual(content(by_id["line-1"]), "Echo: flaky-429")
        self.assertEqual(content(by_id["line-2"]), "Echo: flaky-503")
        self.assertEqual(by_id["line-3"]["error"],
                         {"code": "server_error", "message": "HTTP 500: boom [request req-scripted]"})
        self.assertIn("q.txt:3: line-3: HTTP 500: boom", err)

        os.unlink(out)
        rc, _, err = self.scripted_batch(src, "-o", out, "--attempts", "1")
        self.assertEqual(rc, 6, err)
        self.assertEqual(self.scripted.attempts["flaky-429"], 1)
        by_id = {l["custom_id"]: l for l in read_out(out)}
        self.assertEqual(by_id["line-1"]["error"],
                         {"code": "rate_limit", "message": "HTTP 429: slow down [request req-scripted]"})

    def test_connection_errors(self):
        src = self.file("q.txt", "a\nb\n")
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        absent = os.path.join(self.dir, "absent.sock")
        rc, _, err = self.moactl("batch", src, "-o", out, "--attempts", "2", sock=absent)
        self.assertEqual(rc, 6, err)
        for l in read_out(out):
            self.assertEqual(l["error"]["code"], "connection_error")
            self.assertEqual(l["error"]["message"],
                             "cannot connect to %s: No such file or directory (2 attempts)" % absent)

    def test_kill_and_resume(self):
        """SIGKILL part-way through a slow run, then --resume: every line
        once, and no line that was already in OUT asked again."""
        n = 16
        src = self.file("q.txt", "".join("slow %d\n" % i for i in range(n)))
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        self.scripted.reset(0.25)
        p = subprocess.Popen([MOACTL, "batch", src, "-o", out, "-j", "2"], env=self.env(self.scripted.path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(out):
                with open(out, "rb") as f:
                    if f.read().count(b"\n") >= 5:
                        break
            time.sleep(0.02)
        p.kill()
        p.wait()
        before = {l["custom_id"] for l in read_out(out)}
        self.assertGreaterEqual(len(before), 5)
        self.assertLess(len(before), n)

        rc, _, err = self.scripted_batch("--resume", src, "-o", out, "-j", "4", delay=0.0)
        self.assertEqual(rc, 0, err)
        self.assertIn("already in %s" % out, err)
        ids = [l["custom_id"] for l in read_out(out)]
        self.assertEqual(sorted(ids), sorted("line-%d" % (i + 1) for i in range(n)))
        asked_again = {"line-%d" % (int(q.split()[1]) + 1) for q in self.scripted.log}
        self.assertEqual(asked_again & before, set())
        self.assertEqual(asked_again | before, set(ids))

    def test_progress(self):
        """Plain progress lines every 5 s when stderr is no terminal; a bar
        redrawn with \\r on a terminal; nothing with --quiet."""
        src = self.file("q.txt", "".join("p %d\n" % i for i in range(12)))
        out = os.path.join(os.path.dirname(src), "out.jsonl")
        rc, _, err = self.scripted_batch(src, "-o", out, "-j", "2", delay=1.0)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"^moactl: batch: \d+/12 lines, 0 failed, \d+\.\d lines/s, ETA \d+:\d\d\n")

        os.unlink(out)
        self.scripted.reset(0.3)
        master, slave = pty.openpty()
        p = subprocess.Popen([MOACTL, "batch", src, "-o", out, "-j", "4"], env=self.env(self.scripted.path),
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        data = b""
        while True:
            r, _, _ = select.select([master], [], [], 30)
            if not r:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        self.assertEqual(p.wait(timeout=30), 0)
        text = data.decode()
        self.assertRegex(text, r"\r\x1b\[K\[#*\.*\] \d+/12 \d+\.\d/s ETA \d+:\d\d")
        self.assertTrue(text.endswith("\r\x1b[Kmoactl: batch: 12 lines: 12 answered, 0 failed\r\n"), repr(text[-200:]))

        os.unlink(out)
        rc, _, err = self.scripted_batch(src, "-o", out, "--quiet", "-j", "8")
        self.assertEqual((rc, err), (0, ""))


if __name__ == "__main__":
    MOACTL, MOAD, AGENTS_DIR = (os.path.abspath(a) for a in sys.argv[1:4])
    del sys.argv[1:4]
    unittest.main(verbosity=2)
