"""Jobs on the server: OpenAI's Files and Batches API against the real
daemon. Upload a JSONL file (multipart/form-data, as the SDKs send it),
create a batch, poll it, read the output and error files; the limits and
their 4xx answers; cancelling; who may touch whose job; and a daemon
killed (SIGKILL) in the middle of a batch, restarted on the same state
directory, finishing it without asking a finished line again."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

from moadtest import BUILD, MOACTL, MOAD, Daemon, DaemonTestCase
from test_engine import Mock, agents_dir

ENDPOINT = "/v1/chat/completions"


def line(custom_id, question, model="moa", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    body.update(extra)
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body})


def multipart(fields, files):
    """A multipart/form-data body as the OpenAI SDKs send it."""
    b = "moadtest" + uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (b, k, v)).encode()
    for k, (name, data) in files.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (b, k, name)).encode() + data + b"\r\n"
    out += ("--%s--\r\n" % b).encode()
    return out, "multipart/form-data; boundary=" + b


def finish(d):
    """Stop a daemon like DaemonTestCase does: it must exit 0 and its log
    must hold no sanitizer report."""
    rc = d.stop()
    log = d.read_log()
    shutil.rmtree(d.dir, ignore_errors=True)
    if rc != 0:
        raise AssertionError("moad exited %s at shutdown:\n%s" % (rc, log[-4000:]))
    if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
        raise AssertionError("sanitizer report in the daemon log:\n" + log[-6000:])


class JobsClient:
    def moactl(self, *args):
        p = subprocess.run([MOACTL, "--socket", self.d.socket] + list(args), capture_output=True, text=True,
                           timeout=120)
        return p.returncode, p.stdout, p.stderr

    def upload(self, data, purpose="batch", name="in.jsonl"):
        body, ctype = multipart({"purpose": purpose}, {"file": (name, data)})
        st, _, r = self.d.request("POST", "/v1/files", body, {"Content-Type": ctype})
        return st, json.loads(r)

    def upload_ok(self, lines):
        st, f = self.upload(("\n".join(lines) + "\n").encode())
        self.assertEqual(st, 200, f)
        return f

    def create(self, file_id, **extra):
        body = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
        body.update(extra)
        st, _, b = self.d.json("POST", "/v1/batches", body)
        return st, b

    def batch(self, batch_id):
        st, _, b = self.d.json("GET", "/v1/batches/" + batch_id)
        self.assertEqual(st, 200, b)
        return b

    def wait(self, batch_id, until=("completed", "failed", "cancelled"), timeout=60, cond=None):
        end = time.time() + timeout
        while time.time() < end:
            b = self.batch(batch_id)
            if (cond and cond(b)) or (not cond and b["status"] in until):
                return b
            time.sleep(0.05)
        self.fail("batch %s did not get there: %r" % (batch_id, b))

    def content(self, file_id):
        st, h, data = self.d.request("GET", "/v1/files/%s/content" % file_id)
        self.assertEqual(st, 200, data)
        return [json.loads(l) for l in data.decode().splitlines()]


class Batches(DaemonTestCase, JobsClient):
    """The builtin provider: answers are deterministic, so a batch line can
    be compared with the same question asked on /v1/chat/completions."""
    config = ("jobs:\n  max_upload_bytes: 65536\n  max_lines: 20\n  max_line_bytes: 4096\n"
              "  max_files: 40\n")

    def test_batch_round_trip(self):
        """Each line is answered as /v1/chat/completions answers it; a line
        the engine refuses lands in the error file with its status."""
        questions = {"legal": "What does a non-compete clause restrict?",
                     "medical": "What is the usual adult dose of ibuprofen?"}
        lines = [line(k, q) for k, q in questions.items()]
        lines.append(line("nomodel", "Anything?", model="no-such-model"))
        f = self.upload_ok(lines)
        self.assertEqual(f["object"], "file")
        self.assertEqual(f["purpose"], "batch")
        self.assertEqual(f["filename"], "in.jsonl")
        self.assertEqual(f["bytes"], len(("\n".join(lines) + "\n").encode()))
        st, b = self.create(f["id"], metadata={"team": "legal"})
        self.assertEqual(st, 200, b)
        self.assertEqual(b["object"], "batch")
        self.assertEqual(b["endpoint"], ENDPOINT)
        self.assertEqual(b["input_file_id"], f["id"])
        self.assertEqual(b["metadata"], {"team": "legal"})
        self.assertEqual(b["request_counts"]["total"], 3)
        self.assertEqual(b["expires_at"] - b["created_at"], 24 * 3600)
        b = self.wait(b["id"])
        self.assertEqual(b["status"], "completed")
        self.assertEqual(b["request_counts"], {"total": 3, "completed": 2, "failed": 1})
        for k in ("in_progress_at", "finalizing_at", "completed_at"):
            self.assertIsInstance(b[k], int, k)

        out = self.content(b["output_file_id"])
        self.assertEqual([o["custom_id"] for o in out], ["legal", "medical"])
        for o in out:
            self.assertEqual(o["response"]["status_code"], 200)
            self.assertIsNone(o["error"])
            self.assertTrue(o["id"].startswith("batch_req_"))
            body = o["response"]["body"]
            self.assertEqual(body["object"], "chat.completion")
            st, _, direct = self.d.json("POST", ENDPOINT, {"model": "moa", "messages": [
                {"role": "user", "content": questions[o["custom_id"]]}]})
            self.assertEqual(st, 200)
            self.assertEqual(body["choices"][0]["message"]["content"], direct["choices"][0]["message"]["content"])
        err = self.content(b["error_file_id"])
        self.assertEqual(len(err), 1)
        self.assertEqual(err[0]["custom_id"], "nomodel")
        self.assertEqual(err[0]["response"]["status_code"], 404)
        self.assertEqual(err[0]["response"]["body"]["error"]["code"], "model_not_found")

        # the output files are files too
        st, _, of = self.d.json("GET", "/v1/files/" + b["output_file_id"])
        self.assertEqual(st, 200)
        self.assertEqual(of["purpose"], "batch_output")
        st, _, raw = self.d.request("GET", "/v1/files/%s/content" % b["output_file_id"])
        self.assertEqual(of["bytes"], len(raw))
        # a finished batch cannot be cancelled
        st, _, e = self.d.json("POST", "/v1/batches/%s/cancel" % b["id"])
        self.assertEqual(st, 409, e)
        self.assertEqual(e["error"]["code"], "batch_ended")

    def test_bodies_are_validated_per_line(self):
        """A body the chat endpoint would refuse is that line's 400, not the
        batch's failure; "stream" is dropped (a batch line is answered whole)."""
        f = self.upload_ok([line("bad", "x", messages=[]), line("streamed", "What is GDPR?", stream=True)])
        st, b = self.create(f["id"])
        b = self.wait(b["id"])
        self.assertEqual(b["request_counts"], {"total": 2, "completed": 1, "failed": 1})
        err = self.content(b["error_file_id"])
        self.assertEqual(err[0]["custom_id"], "bad")
        self.assertEqual(err[0]["response"]["status_code"], 400)
        self.assertIn("messages", err[0]["response"]["body"]["error"]["message"])
        out = self.content(b["output_file_id"])
        self.assertEqual(out[0]["response"]["body"]["object"], "chat.completion")

    def test_upload_limits_and_format(self):
        """Files that cannot be a batch are refused whole, naming the line."""
        good = line("a", "hello")
        cases = [
            ((good + "\n" + "{not json\n").encode(), 400, "line 2: not JSON"),
            ((good + "\n" + line("a", "again") + "\n").encode(), 400, "custom_id \"a\" already used on line 1"),
            (json.dumps({"custom_id": "u", "method": "POST", "url": "/v1/embeddings", "body": {}}).encode(),
             400, "\"url\" must be \"/v1/chat/completions\""),
            (json.dumps({"custom_id": "m", "method": "GET", "url": ENDPOINT, "body": {}}).encode(), 400,
             "\"method\" must be \"POST\""),
            (b"\n\n", 400, "no request lines"),
            (("\n".join(line("l%d" % i, "q") for i in range(21))).encode(), 413, "line 21: more than 20 requests"),
            (line("long", "x" * 5000).encode(), 413, "line 1: longer than 4096 bytes"),
            (b"x" * 70000, 413, "exceeds jobs.max_upload_bytes (65536 bytes)"),
        ]
        for data, status, message in cases:
            st, e = self.upload(data)
            self.assertEqual(st, status, (message, e))
            self.assertIn(message, e["error"]["message"])
        st, e = self.upload(good.encode(), purpose="fine-tune")
        self.assertEqual(st, 400)
        self.assertEqual(e["error"]["param"], "purpose")
        st, _, r = self.d.request("POST", "/v1/files", good.encode(), {"Content-Type": "application/json"})
        self.assertEqual(st, 415, r)
        body, ctype = multipart({"purpose": "batch"}, {})
        st, _, r = self.d.request("POST", "/v1/files", body, {"Content-Type": ctype})
        self.assertEqual(st, 400)
        self.assertIn("'file' field", json.loads(r)["error"]["message"])
        # an epilogue after the close delimiter (the Node SDK sends "\r\n") is
        # ignored; a body cut before it is malformed
        body, ctype = multipart({"purpose": "batch"}, {"file": ("e.jsonl", good.encode())})
        st, _, r = self.d.request("POST", "/v1/files", body + b"\r\n", {"Content-Type": ctype})
        self.assertEqual(st, 200, r)
        self.assertEqual(json.loads(r)["bytes"], len(good))
        st, _, r = self.d.request("POST", "/v1/files", body[:-30], {"Content-Type": ctype})
        self.assertEqual(st, 400, r)
        self.assertIn("malformed body", json.loads(r)["error"]["message"])
        # a byte order mark and CRLF line ends are fine
        st, f = self.upload(b"\xef\xbb\xbf" + good.encode() + b"\r\n\r\n")
        self.assertEqual(st, 200, f)

    def test_batch_create_errors(self):
        f = self.upload_ok([line("a", "hello")])
        for extra, status, param in [({"input_file_id": "file-nope"}, 404, "input_file_id"),
                                     ({"endpoint": "/v1/embeddings"}, 400, "endpoint"),
                                     ({"completion_window": "1h"}, 400, "completion_window"),
                                     ({"metadata": {"k": 5}}, 400, "metadata")]:
            st, e = self.create(f["id"], **extra)
            self.assertEqual(st, status, e)
            self.assertEqual(e["error"]["param"], param)
        # OpenAI accepts only "24h", and answers others like this.
        for window in ("48h", 24):
            st, e = self.create(f["id"], completion_window=window)
            self.assertEqual(st, 400, e)
            self.assertEqual(e["error"], {"message": "Invalid value: '%s'. Supported values are: '24h'." %
                                          (window if isinstance(window, str) else "null"),
                                          "type": "invalid_request_error", "param": "completion_window",
                                          "code": "invalid_value"})
        st, _, e = self.d.request("POST", "/v1/batches", b"input_file_id=x", {"Content-Type": "text/plain"})
        self.assertEqual(st, 415)
        st, _, e = self.d.json("GET", "/v1/batches/batch_nope")
        self.assertEqual(st, 404)
        st, _, e = self.d.json("GET", "/v1/files/file-nope/content")
        self.assertEqual(st, 404)
        st, _, e = self.d.json("GET", "/v1/batches?limit=0")
        self.assertEqual(st, 400)

    def test_list_and_delete(self):
        f = self.upload_ok([line("a", "hello")])
        ids = [self.create(f["id"])[1]["id"] for _ in range(3)]
        for i in ids:
            self.wait(i)
        st, _, page = self.d.json("GET", "/v1/batches?limit=2")
        self.assertEqual(st, 200)
        self.assertEqual(page["object"], "list")
        self.assertEqual([b["id"] for b in page["data"]], ids[::-1][:2])
        self.assertTrue(page["has_more"])
        st, _, rest = self.d.json("GET", "/v1/batches?limit=2&after=" + page["last_id"])
        self.assertEqual(rest["data"][0]["id"], ids[0])
        st, _, files = self.d.json("GET", "/v1/files")
        self.assertIn(f["id"], [x["id"] for x in files["data"]])
        st, _, r = self.d.json("DELETE", "/v1/files/" + f["id"])
        self.assertEqual((st, r), (200, {"id": f["id"], "object": "file", "deleted": True}))
        st, _, r = self.d.json("GET", "/v1/files/" + f["id"])
        self.assertEqual(st, 404)
        st, _, r = self.d.json("DELETE", "/v1/files/" + f["id"])
        self.assertEqual(st, 404)


    def test_moactl_batch_server(self):
        """moactl batch --server: plain questions (blank lines keep their
        numbers), the same answers as the local moactl batch, exit 0; the
        job is then listed and shown."""
        tmp = self.d.dir
        src = os.path.join(tmp, "questions.txt")
        with open(src, "w") as f:
            f.write("What does a non-compete clause restrict?\n\nHow does compound interest work?\n")
        out, local = os.path.join(tmp, "server.jsonl"), os.path.join(tmp, "local.jsonl")
        rc, _, err = self.moactl("batch", "--server", src, "-o", out)
        self.assertEqual(rc, 0, err)
        self.assertIn("submitted (2 requests)", err)
        self.assertRegex(err, r"batch batch_[0-9a-f]+: completed, 2 of 2 done")
        rc, _, err = self.moactl("batch", src, "-o", local)
        self.assertEqual(rc, 0, err)
        with open(out) as f:
            server = {o["custom_id"]: o for o in map(json.loads, f)}
        with open(local) as f:
            client = {o["custom_id"]: o for o in map(json.loads, f)}
        self.assertEqual(sorted(server), ["line-1", "line-3"])
        self.assertEqual(sorted(client), sorted(server))
        for k in server:
            self.assertEqual(server[k]["response"]["body"]["choices"][0]["message"]["content"],
                             client[k]["response"]["body"]["choices"][0]["message"]["content"])
        batch_id = server["line-1"]["id"][len("batch_req_"):].rsplit("_", 1)[0]
        rc, listing, err = self.moactl("jobs")
        self.assertEqual(rc, 0, err)
        self.assertRegex(listing, r"batch_%s\s+completed\s+2/2\s+0\s" % batch_id)
        rc, show, err = self.moactl("jobs", "show", "batch_" + batch_id)
        self.assertEqual(rc, 0, err)
        self.assertIn("requests:       2 total, 2 answered, 0 failed", show)
        rc, _, err = self.moactl("jobs", "cancel", "batch_" + batch_id)
        self.assertEqual(rc, 1)
        self.assertIn("has already ended (completed)", err)
        # OUT is never overwritten
        rc, _, err = self.moactl("batch", "--server", src, "-o", out)
        self.assertEqual(rc, 2)
        self.assertIn("exists", err)

    def test_moactl_batch_server_failures(self):
        tmp = self.d.dir
        src = os.path.join(tmp, "partial.jsonl")
        with open(src, "w") as f:
            f.write(line("ok", "What is GDPR?") + "\n" + line("bad", "x", model="no-such-model") + "\n")
        out = os.path.join(tmp, "partial.out")
        rc, _, err = self.moactl("batch", "--server", "-q", src, "-o", out)
        self.assertEqual(rc, 6, err)
        self.assertEqual(err, "")
        with open(out) as f:
            got = {o["custom_id"]: o["response"]["status_code"] for o in map(json.loads, f)}
        self.assertEqual(got, {"ok": 200, "bad": 404})
        dup = os.path.join(tmp, "dup.jsonl")
        with open(dup, "w") as f:
            f.write(line("a", "x") + "\n\n" + line("a", "y") + "\n")
        rc, _, err = self.moactl("batch", "--server", dup, "-o", os.path.join(tmp, "dup.out"))
        self.assertEqual(rc, 1)
        self.assertIn("line 3: custom_id \"a\" already used on line 1", err)
        self.assertFalse(os.path.exists(os.path.join(tmp, "dup.out")))
        for args in (["jobs", "bogus"], ["jobs", "show"], ["batch", "--server", "--resume", dup, "-o", "x"]):
            rc, _, err = self.moactl(*args)
            self.assertEqual(rc, 2, (args, err))


class SlowUpstream(unittest.TestCase, JobsClient):
    """Every agent on the mock upstream, 300 ms per answer; lines name one
    agent, so each line is one upstream call."""
    model = "fixed-300"
    concurrency = 2

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.d = Daemon(config="jobs:\n  concurrency: %d\n" % cls.concurrency,
                       env={"OPENAI_BASE_URL": cls.mock.url, "OPENAI_MODEL": cls.model, "OPENAI_API_KEY": "sk-test"})

    @classmethod
    def tearDownClass(cls):
        try:
            finish(cls.d)
        finally:
            cls.mock.stop()

    def calls(self):
        return self.mock.stats()["calls"].get(self.model, 0)

    def test_cancel(self):
        """Cancelling stops the batch: the line in flight is dropped, no
        further line is asked, and the lines answered so far are kept."""
        self.mock.reset()
        f = self.upload_ok([line("c%d" % i, "question %d" % i, model="general") for i in range(8)])
        st, b = self.create(f["id"])
        self.wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 1)
        st, _, e = self.d.json("DELETE", "/v1/files/" + f["id"])
        self.assertEqual(st, 409, e)
        self.assertEqual(e["error"]["code"], "file_in_use")
        st, _, c = self.d.json("POST", "/v1/batches/%s/cancel" % b["id"])
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "cancelled")
        self.assertIsInstance(c["cancelling_at"], int)
        self.assertIsInstance(c["cancelled_at"], int)
        done = c["request_counts"]["completed"]
        self.assertGreaterEqual(done, 1)
        self.assertLess(done, 8)
        asked = self.calls()
        self.assertLessEqual(asked, done + self.concurrency)  # and at most the ones in flight
        out = self.content(c["output_file_id"])
        self.assertEqual(len(out), done)
        got = [o["custom_id"] for o in out]
        self.assertEqual(got, sorted(got, key=lambda c: int(c[1:])))  # input order
        self.assertTrue(set(got) <= {"c%d" % i for i in range(8)}, got)
        time.sleep(0.7)  # longer than a line takes: a runner that went on would have asked again
        self.assertEqual(self.calls(), asked)
        self.assertEqual(self.batch(b["id"])["status"], "cancelled")
        st, _, e = self.d.json("POST", "/v1/batches/%s/cancel" % b["id"])
        self.assertEqual(st, 409)

    def test_concurrency_bound(self):
        """jobs.concurrency lines at a time over all batches: the lines in
        flight, sampled while two batches run, reach the bound and never
        pass it."""
        self.mock.reset()
        ids = []
        for k in range(2):
            f = self.upload_ok([line("k%d-%d" % (k, i), "q %d" % i, model="general") for i in range(4)])
            ids.append(self.create(f["id"])[1]["id"])
        seen = set()
        end = time.time() + 60
        while time.time() < end:
            st, _, s = self.d.json("GET", "/v1/moa/status")
            seen.add(s["batch_inflight"])
            if all(self.batch(i)["status"] == "completed" for i in ids):
                break
            time.sleep(0.03)
        self.assertEqual(max(seen), self.concurrency, seen)
        self.assertEqual(self.calls(), 8)

    def test_moactl_jobs_cancel(self):
        f = self.upload_ok([line("m%d" % i, "question %d" % i, model="general") for i in range(8)])
        st, b = self.create(f["id"])
        self.wait(b["id"], cond=lambda x: x["status"] == "in_progress")
        rc, out, err = self.moactl("jobs", "cancel", b["id"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^cancelled %s: \d of 8 requests answered, 0 failed\n$" % b["id"])
        self.assertEqual(self.batch(b["id"])["status"], "cancelled")


class Priority(unittest.TestCase, JobsClient):
    """Interactive requests first: while one waits in the admission queue
    no batch line starts; the batch goes on once the queue is empty."""

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = agents_dir({"legal": "fixed-1500", "general": "fixed-20"})
        config = ("providers:\n  - name: mock\n    type: openai\n    base_url: %s\n    model: echo\n"
                  "    max_retries: 0\nlimits:\n  max_inflight: 1\n  max_queue: 8\njobs:\n  concurrency: 2\n"
                  % cls.mock.url)
        cls.d = Daemon(config=config, agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        try:
            finish(cls.d)
        finally:
            cls.mock.stop()
            shutil.rmtree(cls.agents, ignore_errors=True)

    def status(self):
        st, _, s = self.d.json("GET", "/v1/moa/status")
        self.assertEqual(st, 200)
        return s

    def test_batch_waits_for_queued_questions(self):
        ask = lambda: self.d.chat("What is a tort?", model="legal")
        slow = [threading.Thread(target=ask) for _ in range(2)]
        slow[0].start()
        end = time.time() + 10
        while self.mock.stats()["calls"].get("fixed-1500", 0) < 1 and time.time() < end:
            time.sleep(0.01)
        slow[1].start()  # the one slot is taken: this one waits in the queue
        while self.status()["queued"] < 1 and time.time() < end:
            time.sleep(0.01)
        self.assertEqual(self.status()["queued"], 1)
        f = self.upload_ok([line("b%d" % i, "question %d" % i, model="general") for i in range(4)])
        st, b = self.create(f["id"])
        self.assertEqual(st, 200, b)
        time.sleep(0.5)  # 25 times what a line takes: a runner that did not wait would be done
        held = self.mock.stats()["calls"].get("fixed-20", 0)
        still_queued = self.status()["queued"]
        self.assertEqual(still_queued, 1, "the interactive request left the queue too early for this check")
        self.assertEqual(held, 0)
        self.assertEqual(self.batch(b["id"])["request_counts"]["completed"], 0)
        for t in slow:
            t.join(30)
        done = self.wait(b["id"])
        self.assertEqual(done["request_counts"], {"total": 4, "completed": 4, "failed": 0})
        self.assertEqual(self.mock.stats()["calls"]["fixed-20"], 4)


class Restart(unittest.TestCase, JobsClient):
    """SIGKILL in the middle of a batch; the restarted daemon finishes it."""
    model = "fixed-300"

    def test_sigkill_and_resume(self):
        mock = Mock()
        env = {"OPENAI_BASE_URL": mock.url, "OPENAI_MODEL": self.model, "OPENAI_API_KEY": "sk-test"}
        config = "jobs:\n  concurrency: 2\n"
        n = 12
        self.d = Daemon(config=config, env=env)
        first = self.d
        try:
            f = self.upload_ok([line("r%d" % i, "question %d" % i, model="general") for i in range(n)])
            st, queued = self.create(self.upload_ok([line("q", "later", model="general")])["id"])
            st, b = self.create(f["id"])
            self.assertEqual(st, 200, b)
            # the first batch is small: let it finish, then kill during the second
            self.wait(queued["id"])
            mid = self.wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 3)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            done_before = mid["request_counts"]["completed"]
            calls_before = mock.stats()["calls"][self.model]

            # what an upload interrupted by the kill could leave behind
            stray = [os.path.join(first.state, "jobs-files", n) for n in ("file-0123456789abcdef01234567.tmp",
                                                                          "file-0123456789abcdef01234567")]
            for p in stray:
                with open(p, "w") as fh:
                    fh.write("partial")
            self.d = Daemon(config=config, env=env, args=("--state-dir", first.state))
            self.assertEqual([p for p in stray if os.path.exists(p)], [])
            self.assertTrue(os.path.exists(os.path.join(first.state, "jobs-files", f["id"])))
            try:
                after = self.batch(b["id"])
                self.assertGreaterEqual(after["request_counts"]["completed"], done_before)
                self.assertEqual(self.batch(queued["id"])["status"], "completed")
                end = self.wait(b["id"])
                self.assertEqual(end["status"], "completed")
                self.assertEqual(end["request_counts"], {"total": n, "completed": n, "failed": 0})
                out = self.content(end["output_file_id"])
                self.assertEqual(sorted(o["custom_id"] for o in out), sorted("r%d" % i for i in range(n)))
                for o in out:
                    self.assertEqual(o["response"]["status_code"], 200)
                    self.assertIn("fixed answer", o["response"]["body"]["choices"][0]["message"]["content"])
                # Every line asked once, except those in flight at the kill
                # (at most jobs.concurrency): finished lines are not asked again.
                calls = mock.stats()["calls"][self.model]
                self.assertGreaterEqual(calls, n + 1)
                self.assertLessEqual(calls, n + 1 + 2)
                self.assertLessEqual(calls_before, n + 1)
                self.assertIn("resuming", self.d.read_log())
            finally:
                finish(self.d)
        finally:
            first.log.close()
            shutil.rmtree(first.dir, ignore_errors=True)
            mock.stop()


class Expiry(unittest.TestCase, JobsClient):
    """jobs.batch_window_seconds shortens the completion window ("24h"):
    a batch not finished in it ends "expired", its answered lines in the
    output file and every other line in the error file as OpenAI writes
    them (code batch_expired), also when moad was down as the window ended."""
    model = "fixed-300"
    n = 20  # 20 lines one at a time at 300 ms each: far longer than the window

    def setUp(self):
        self.mock = Mock()
        self.env = {"OPENAI_BASE_URL": self.mock.url, "OPENAI_MODEL": self.model, "OPENAI_API_KEY": "sk-test"}

    def tearDown(self):
        self.mock.stop()

    def calls(self):
        return self.mock.stats()["calls"].get(self.model, 0)

    def check_expired(self, b, answered_at_least):
        """The batch ended expired: answered lines kept, the rest expired."""
        self.assertEqual(b["status"], "expired")
        self.assertIsInstance(b["expired_at"], int)
        self.assertGreaterEqual(b["expired_at"], b["expires_at"])
        counts = b["request_counts"]
        self.assertGreaterEqual(counts["completed"], answered_at_least)
        self.assertLess(counts["completed"], self.n)
        self.assertEqual(counts["completed"] + counts["failed"], self.n)
        out = self.content(b["output_file_id"])
        self.assertEqual(len(out), counts["completed"])
        for o in out:
            self.assertEqual(o["response"]["status_code"], 200)
            self.assertIn("fixed answer", o["response"]["body"]["choices"][0]["message"]["content"])
        errs = self.content(b["error_file_id"])
        self.assertEqual(len(errs), counts["failed"])
        for e in errs:
            self.assertTrue(e["id"].startswith("batch_req_"))
            self.assertIsNone(e["response"])
            self.assertEqual(e["error"], {"code": "batch_expired", "message": "This request could not be "
                                          "executed before the completion window expired."})
        ids = [o["custom_id"] for o in out] + [e["custom_id"] for e in errs]
        self.assertEqual(sorted(ids), sorted("x%d" % i for i in range(self.n)))
        return counts["completed"]

    def test_expires_while_running(self):
        self.d = Daemon(config="jobs:\n  concurrency: 1\n  batch_window_seconds: 2\n", env=self.env)
        try:
            f = self.upload_ok([line("x%d" % i, "question %d" % i, model="general") for i in range(self.n)])
            st, b = self.create(f["id"])
            self.assertEqual(st, 200, b)
            self.assertEqual(b["completion_window"], "24h")
            self.assertEqual(b["expires_at"] - b["created_at"], 2)
            b = self.wait(b["id"], until=("completed", "expired", "failed", "cancelled"))
            done = self.check_expired(b, 1)
            # Nothing is asked after the expiry but what was in flight then.
            asked = self.calls()
            self.assertLessEqual(asked, done + 1)
            time.sleep(0.7)  # longer than a line takes: a runner that went on would have asked again
            self.assertEqual(self.calls(), asked)
            st, _, e = self.d.json("POST", "/v1/batches/%s/cancel" % b["id"])
            self.assertEqual(st, 409, e)
            rc, out, err = self.moactl("jobs", "show", b["id"])
            self.assertEqual(rc, 0, err)
            self.assertIn("status:         expired\n", out)
            self.assertRegex(out, r"requests: +%d total, %d answered, %d failed\n" % (self.n, done, self.n - done))
            self.assertRegex(out, r"expired: +\d{4}-\d\d-\d\d [\d:]{8} UTC\n")
        finally:
            finish(self.d)

    def test_expires_while_moad_is_down(self):
        config = "jobs:\n  concurrency: 1\n  batch_window_seconds: 3\n"
        first = self.d = Daemon(config=config, env=self.env)
        try:
            f = self.upload_ok([line("x%d" % i, "question %d" % i, model="general") for i in range(self.n)])
            st, b = self.create(f["id"])
            self.assertEqual(st, 200, b)
            mid = self.wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 1)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            asked = self.calls()
            # Down until the window is over (by the wall clock, as expires_at is).
            while time.time() < b["expires_at"] + 1:
                time.sleep(0.1)
            self.d = Daemon(config=config, env=self.env, args=("--state-dir", first.state))
            try:
                end = self.wait(b["id"], until=("completed", "expired", "failed", "cancelled"))
                self.check_expired(end, mid["request_counts"]["completed"])
                self.assertEqual(self.calls(), asked)  # no line was asked after the restart
                self.assertIn("batch %s expired" % b["id"], self.d.read_log())
            finally:
                finish(self.d)
        finally:
            first.log.close()
            shutil.rmtree(first.dir, ignore_errors=True)


class IngestJobsFixture(JobsClient):
    """A tree root/docs below jobs.ingest_roots (self.config), a directory
    outside it, and the calls of the ingest-jobs API (also used by
    test_ingest_convert.py). A mixin: name it before unittest.TestCase, so
    its setUp/tearDown are the ones that run."""

    def setUp(self):
        self.top = tempfile.mkdtemp(prefix="moad-ingest-")
        self.root = os.path.join(self.top, "root")
        self.outside = os.path.join(self.top, "outside")
        os.makedirs(os.path.join(self.root, "docs", "sub"))
        os.makedirs(self.outside)
        self.config = "jobs:\n  ingest_roots: [%s]\n" % self.root
        self.d = None

    def tearDown(self):
        try:
            if self.d:
                finish(self.d)
        finally:
            shutil.rmtree(self.top, ignore_errors=True)

    def write(self, rel, text, base=None):
        path = os.path.join(base or self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        return path

    def submit(self, path, agent="finance"):
        st, _, j = self.d.json("POST", "/v1/moa/ingest-jobs", {"agent": agent, "path": path})
        return st, j

    def job(self, job_id):
        st, _, j = self.d.json("GET", "/v1/moa/ingest-jobs/" + job_id)
        self.assertEqual(st, 200, j)
        return j

    def wait_job(self, job_id, cond=None, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            j = self.job(job_id)
            if (cond and cond(j)) or (not cond and j["status"] in ("completed", "failed", "cancelled")):
                return j
            time.sleep(0.05)
        self.fail("ingest job %s did not get there: %r" % (job_id, j))

    def docs(self, agent="finance"):
        """Every page of the listing (1000 documents a page)."""
        out, after = {}, ""
        while True:
            st, _, r = self.d.json("GET", "/v1/moa/agents/%s/documents?after=%s" % (agent, urllib.parse.quote(after)))
            self.assertEqual(st, 200, r)
            out.update((d["title"], d) for d in r["documents"])
            if not r["has_more"]:
                return out
            after = r["documents"][-1]["title"]


class IngestJobs(IngestJobsFixture, unittest.TestCase):
    """Server-side ingest/sync of a directory (POST /v1/moa/ingest-jobs,
    moactl ingest --sync DIR --server): admin only, only below
    jobs.ingest_roots (resolved: symlinks cannot escape), counts, cancel,
    and a restart that goes on without redoing acknowledged files."""

    def test_config_errors(self):
        """The new jobs keys are checked when the configuration loads."""
        cfg = os.path.join(self.top, "moad.yaml")
        for config, words in (("jobs:\n  batch_window_seconds: 0\n", "jobs.batch_window_seconds"),
                              ("jobs:\n  batch_window_seconds: 86401\n", "jobs.batch_window_seconds"),
                              ("jobs:\n  ingest_roots: /srv\n", "jobs.ingest_roots")):
            with open(cfg, "w") as f:
                f.write(config)
            p = subprocess.run([MOAD, "--config", cfg, "--check-config"], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, MOAD_PLUGIN_DIR=os.path.join(BUILD, "plugins")))
            self.assertNotEqual(p.returncode, 0, config)
            self.assertIn(words, p.stderr, config)
            self.assertIn("moad.yaml:2:", p.stderr, config)

    def test_off_without_roots(self):
        self.d = Daemon()
        st, e = self.submit(self.root)
        self.assertEqual(st, 403, e)
        self.assertEqual(e["error"]["code"], "ingest_roots_unset")
        self.assertIn("server-side ingest is off: jobs.ingest_roots in moad.yaml lists no directory", e["error"]["message"])

    def test_sync_counts_and_confinement(self):
        docs = os.path.join(self.root, "docs")
        self.write("docs/a.md", "The zorbserver fee is five euros.\n")
        self.write("docs/sub/b.md", "Deep zorbserver text.\n")
        self.write("docs/gone.md", "Soon gone.\n")
        self.write("docs/c.bin", b"bin\0ary")
        secret = self.write("s.md", "Zorbsecret outside the roots.\n", base=self.outside)
        os.symlink(secret, os.path.join(docs, "link.md"))
        os.symlink(self.outside, os.path.join(self.root, "escape"))
        self.d = Daemon(config=self.config)

        # Outside the roots, also through a symlink: refused before anything runs.
        for path in (self.outside, os.path.join(self.root, "escape"), self.top):
            st, e = self.submit(path)
            self.assertEqual(st, 403, (path, e))
            self.assertEqual(e["error"]["code"], "path_not_allowed")
        for body in ({"agent": "finance", "path": "docs"}, {"agent": "finance", "path": docs + "/a.md"}):
            st, _, e = self.d.json("POST", "/v1/moa/ingest-jobs", body)
            self.assertEqual(st, 400, e)
        st, e = self.submit(docs, agent="no-such")
        self.assertEqual(st, 404, e)
        rc, _, err = self.moactl("ingest", "--agent", "finance", "--sync", self.outside, "--server")
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"^moactl: moad returned HTTP 403: '%s' \(%s\) is not below a directory of "
                              r"jobs.ingest_roots \(permission_error\) \[request [^]]+\]\n$" %
                         (re.escape(self.outside), re.escape(os.path.realpath(self.outside))))

        st, j = self.submit(docs)
        self.assertEqual(st, 200, j)
        self.assertEqual((j["object"], j["agent"], j["path"]), ("moa.ingest_job", "finance", os.path.realpath(docs)))
        j = self.wait_job(j["id"])
        self.assertEqual(j["status"], "completed", j)
        self.assertEqual(j["total"], 5)
        self.assertEqual(j["counts"], {"added": 3, "replaced": 0, "unchanged": 0, "removed": 0, "refused": 2,
                                       "failed": 0})
        have = self.docs()
        for t in ("a.md", "sub/b.md", "gone.md"):
            self.assertIn(t, have)
            self.assertEqual(have[t]["source"], os.path.realpath(os.path.join(docs, t)))
        self.assertNotIn("link.md", have)  # the symlink leads outside the roots
        self.assertNotIn("c.bin", have)
        log = self.d.read_log()
        self.assertIn("refused link.md: resolves outside jobs.ingest_roots", log)
        self.assertIn("refused c.bin: not text (binary data)", log)

        # Change one, remove one, add one: the next job syncs exactly that.
        self.write("docs/a.md", "The zorbserver fee is six euros.\n")
        os.unlink(os.path.join(docs, "gone.md"))
        self.write("docs/new.md", "A new zorbserver file.\n")
        rc, out, err = self.moactl("ingest", "--agent", "finance", "--sync", docs, "--server")
        self.assertEqual(rc, 1, err)  # two files refused
        self.assertRegex(err, r"^moactl: ingest job ingest_[0-9a-f]{24} submitted; 'moactl jobs show ingest_")
        self.assertTrue(err.endswith("finance: 1 added, 1 replaced, 1 unchanged, 2 refused, 1 removed\n"), err)
        have = self.docs()
        self.assertNotIn("gone.md", have)
        self.assertIn("new.md", have)
        job_id = re.search(r"ingest_[0-9a-f]{24}", err).group(0)
        rc, out, err = self.moactl("jobs")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^%s +completed +5/5 +2 " % job_id)
        rc, out, err = self.moactl("jobs", "show", job_id)
        self.assertEqual(rc, 0, err)
        self.assertIn("directory:      %s\n" % os.path.realpath(docs), out)
        self.assertIn("files:          5 of 5 done: finance: 1 added, 1 replaced, 1 unchanged, 2 refused, 1 removed\n",
                      out)
        st, _, e = self.d.json("POST", "/v1/moa/ingest-jobs/%s/cancel" % job_id)
        self.assertEqual(st, 409, e)

    def many(self, n):
        docs = os.path.join(self.root, "docs")
        for i in range(n):
            self.write("docs/many/f%04d.md" % i, "File %d about zorbmany number %d.\n" % (i, i))
        return docs

    def test_cancel(self):
        docs = self.many(1500)
        self.d = Daemon(config=self.config)
        st, j = self.submit(docs)
        self.assertEqual(st, 200, j)
        j = self.wait_job(j["id"], cond=lambda x: sum(x["counts"].values()) >= 1)
        st, _, c = self.d.json("POST", "/v1/moa/ingest-jobs/%s/cancel" % j["id"])
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "cancelled")
        self.assertIsInstance(c["cancelled_at"], int)
        time.sleep(0.5)  # a runner that went on would add more
        after = self.job(j["id"])
        done = after["counts"]["added"]
        self.assertGreaterEqual(done, 1)
        self.assertLess(done, 1500)
        self.assertEqual(after["status"], "cancelled")
        time.sleep(0.5)
        self.assertEqual(self.job(j["id"])["counts"]["added"], done)
        self.assertEqual(len([t for t in self.docs() if t.startswith("many/")]), done)

    def test_restart_resumes(self):
        n = 1500
        docs = self.many(n)
        first = self.d = Daemon(config=self.config)
        st, j = self.submit(docs)
        self.assertEqual(st, 200, j)
        mid = self.wait_job(j["id"], cond=lambda x: x["counts"]["added"] >= 20)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        try:
            self.d = Daemon(config=self.config, args=("--state-dir", first.state))
            end = self.wait_job(j["id"])
            self.assertEqual(end["status"], "completed", end)
            c = end["counts"]
            # Each file once: what was acknowledged was not asked again; only
            # a file read when moad died (ingested, not acknowledged) may
            # come back as unchanged.
            self.assertEqual(c["added"] + c["unchanged"], n, c)
            self.assertLessEqual(c["unchanged"], 1, c)
            m = re.search(r"ingest job %s: resuming, (\d+) file\(s\) acknowledged before" % j["id"],
                          self.d.read_log())
            self.assertTrue(m, self.d.read_log()[-3000:])
            self.assertGreaterEqual(int(m.group(1)), mid["counts"]["added"])
            self.assertEqual(len([t for t in self.docs() if t.startswith("many/")]), n)
        finally:
            first.log.close()
            shutil.rmtree(first.dir, ignore_errors=True)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv to act as another uid")
    def test_admin_only(self):
        self.d = Daemon(config=self.config)
        os.chmod(self.d.dir, 0o755)
        os.chmod(self.d.socket, 0o666)
        body = json.dumps({"agent": "finance", "path": self.root}).encode()
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", CLIENT,
               self.d.socket, "POST", "/v1/moa/ingest-jobs", "application/json"]
        p = subprocess.run(cmd, input=body, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        status, _, text = p.stdout.decode().partition(" ")
        self.assertEqual(int(status), 403, text)
        self.assertIn("server-side ingest needs admin rights", json.loads(text)["error"]["message"])


CLIENT = r"""
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
c = C("localhost", timeout=30)
method, path, ctype = sys.argv[2], sys.argv[3], sys.argv[4]
body = sys.stdin.buffer.read() or None
c.request(method, path, body=body, headers={"Content-Type": ctype} if body else {})
r = c.getresponse()
sys.stdout.write("%d %s" % (r.status, r.read().decode()))
"""


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv to act as another uid")
class Owners(unittest.TestCase, JobsClient):
    """Creating files and batches is an ask right; another user's job can be
    read or cancelled only with admin rights (root here)."""

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.d = Daemon(config="jobs:\n  concurrency: 1\n",
                       env={"OPENAI_BASE_URL": cls.mock.url, "OPENAI_MODEL": "fixed-300", "OPENAI_API_KEY": "x"})
        os.chmod(cls.d.dir, 0o755)
        os.chmod(cls.d.socket, 0o666)

    @classmethod
    def tearDownClass(cls):
        try:
            finish(cls.d)
        finally:
            cls.mock.stop()

    def as_user(self, uid, method, path, body=b"", ctype="application/json"):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
               sys.executable, "-c", CLIENT, self.d.socket, method, path, ctype]
        p = subprocess.run(cmd, input=body, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        status, _, text = p.stdout.decode().partition(" ")
        return int(status), json.loads(text) if text else None

    def test_owner_and_admin(self):
        nobody = 65534
        data = ("\n".join(line("n%d" % i, "q %d" % i, model="general") for i in range(30)) + "\n").encode()
        body, ctype = multipart({"purpose": "batch"}, {"file": ("n.jsonl", data)})
        st, f = self.as_user(nobody, "POST", "/v1/files", body, ctype)
        self.assertEqual(st, 200, f)
        req = json.dumps({"input_file_id": f["id"], "endpoint": ENDPOINT, "completion_window": "24h"}).encode()
        st, b = self.as_user(nobody, "POST", "/v1/batches", req)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["moa_owner"], "uid:%d" % nobody)
        # root's batch: nobody may neither see nor cancel it
        mine = self.upload_ok([line("r", "q", model="general")] * 1)
        st, rb = self.create(mine["id"])
        for method, path in [("GET", "/v1/batches/" + rb["id"]), ("POST", "/v1/batches/%s/cancel" % rb["id"]),
                             ("GET", "/v1/files/%s/content" % mine["id"]), ("DELETE", "/v1/files/" + mine["id"])]:
            st, e = self.as_user(nobody, method, path)
            self.assertEqual(st, 403, (method, path, e))
        st, _ = self.as_user(nobody, "POST", "/v1/batches", json.dumps(
            {"input_file_id": mine["id"], "endpoint": ENDPOINT, "completion_window": "24h"}).encode())
        self.assertEqual(st, 403)
        st, listing = self.as_user(nobody, "GET", "/v1/batches")
        self.assertEqual([x["id"] for x in listing["data"]], [b["id"]])
        # nobody's own batch: nobody may cancel it, and root (admin) may too
        st, c = self.as_user(nobody, "GET", "/v1/batches/" + b["id"])
        self.assertEqual(st, 200)
        st, _, c = self.d.json("POST", "/v1/batches/%s/cancel" % b["id"])
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "cancelled")
        self.assertIn("access denied to GET /v1/batches/%s" % rb["id"], self.d.read_log())


if __name__ == "__main__":
    unittest.main()
