"""Jobs (Files and Batches) shared in PostgreSQL (knowledge.backend:
postgresql) by two moad instances on one database, on a private server
(pgtest.py): a batch created on A is seen, listed and cancelled on B; a
file uploaded to A is the input of a batch created on B; the instance
running a batch is killed (SIGKILL) and the other finishes it after the
lease runs out without asking a finished line again (upstream calls counted
per line); with the database down the job endpoints answer 503 and work
again once it is back, without a restart. Without PostgreSQL the suite is
skipped, loudly (a failure under CI=true)."""
import collections
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pgtest
from moadtest import Daemon
from test_pg import Background, NotWaitingDaemon
from test_jobs import ENDPOINT, JobsClient, finish

PG = None
LEASE = 3  # jobs.lease_seconds: a killed owner's batch is free again after this


def setUpModule():
    global PG
    PG = pgtest.PgServer()


def tearDownModule():
    if PG:
        PG.stop()


class Upstream:
    """An OpenAI-compatible upstream that takes @delay per answer and
    counts the calls per batch line (the "LINE-<n>" in the question)."""

    def __init__(self, delay=0.3):
        self.calls = collections.Counter()
        self.lock = threading.Lock()
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_error(self, *args):
                pass  # the instance killed mid-line hung up: nothing to report

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode(errors="replace")
                m = re.search(r"LINE-(\d+)", body)
                key = int(m.group(1)) if m else -1
                with up.lock:
                    up.calls[key] += 1
                time.sleep(delay)
                out = json.dumps({"id": "chatcmpl-up", "object": "chat.completion", "created": 0, "model": "up",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant",
                                                           "content": "answer to line %d" % key}}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the instance killed mid-line hung up

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/v1" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self):
        with self.lock:
            return dict(self.calls)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def line(i):
    body = {"model": "general", "messages": [{"role": "user", "content": "Please answer LINE-%d now." % i}]}
    return json.dumps({"custom_id": "c%d" % i, "method": "POST", "url": ENDPOINT, "body": body})


class Shared(unittest.TestCase):
    """Two instances, A and B, on one database and one slow upstream."""
    db = None
    extra = ""  # more of the jobs: section

    @classmethod
    def setUpClass(cls):
        cls.db = "moa_" + cls.__name__.lower()
        PG.createdb(cls.db)
        cls.up = Upstream()
        env = {"OPENAI_BASE_URL": cls.up.url, "OPENAI_MODEL": "up", "OPENAI_API_KEY": "sk-test"}
        cfg = PG.config(cls.db, "jobs:\n  concurrency: 1\n  lease_seconds: %d\n%s" % (LEASE, cls.extra))
        cls.a = Daemon(config=cfg, env=env)
        cls.b = Daemon(config=cfg, env=env)

    @classmethod
    def tearDownClass(cls):
        try:
            for d in (cls.a, cls.b):
                if d.proc.poll() is None:
                    finish(d)
        finally:
            cls.up.stop()

    def on(self, d):
        c = JobsClient()
        c.d = d
        for k in ("assertEqual", "fail", "assertIn"):
            setattr(c, k, getattr(self, k))
        return c

    def upload(self, d, n, first=0):
        st, f = self.on(d).upload(("\n".join(line(i) for i in range(first, first + n)) + "\n").encode())
        self.assertEqual(st, 200, f)
        return f

    def create(self, d, file_id):
        st, b = self.on(d).create(file_id)
        self.assertEqual(st, 200, b)
        return b

    def owner_pid(self, batch_id):
        """The pid in the lease_owner ("host:pid:random") of the batch."""
        end = time.time() + 20
        while time.time() < end:
            o = PG.psql("SELECT lease_owner FROM moa_jobs_batches WHERE id = '%s'" % batch_id, self.db)
            if o:
                return int(o.split(":")[1])
            time.sleep(0.05)
        self.fail("no instance claimed %s" % batch_id)


class TwoInstances(Shared):

    def test_created_on_a_seen_listed_and_cancelled_on_b(self):
        f = self.upload(self.a, 12, first=100)
        b = self.create(self.a, f["id"])
        got = self.on(self.b).batch(b["id"])
        self.assertEqual((got["id"], got["input_file_id"]), (b["id"], f["id"]))
        st, _, listed = self.b.json("GET", "/v1/batches")
        self.assertEqual(st, 200, listed)
        self.assertIn(b["id"], [x["id"] for x in listed["data"]])
        st, _, files = self.b.json("GET", "/v1/files")
        self.assertIn(f["id"], [x["id"] for x in files["data"]])
        self.on(self.b).wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 2)
        owner = self.owner_pid(b["id"])
        canceller = self.b if owner == self.a.proc.pid else self.a
        st, _, c = canceller.json("POST", "/v1/batches/%s/cancel" % b["id"])
        self.assertEqual(st, 200, c)
        # ended at once, by the instance asked, with the lines stored so far
        self.assertEqual(c["status"], "cancelled")
        self.assertIsInstance(c["cancelling_at"], int)
        self.assertIsInstance(c["cancelled_at"], int)
        done = c["request_counts"]["completed"]
        self.assertGreaterEqual(done, 2)
        self.assertLess(done, 12)
        # the owner lets it go at its next line (its result refused) or heartbeat
        owner_d = self.a if canceller is self.b else self.b
        end = time.time() + 2 * LEASE
        while "ended on another instance" not in owner_d.read_log() and time.time() < end:
            time.sleep(0.05)
        self.assertIn("batch %s was ended on another instance" % b["id"], owner_d.read_log())
        asked = sum(v for k, v in self.up.counts().items() if k >= 100)
        self.assertLessEqual(asked, done + 2)  # the line in flight, and at most one started meanwhile
        time.sleep(1.0)  # three answers' time: a runner that went on would have asked again
        self.assertEqual(sum(v for k, v in self.up.counts().items() if k >= 100), asked)
        after = self.on(self.a).batch(b["id"])
        self.assertEqual((after["status"], after["request_counts"]["completed"]), ("cancelled", done))
        out = self.on(self.a).content(c["output_file_id"])
        self.assertEqual([o["custom_id"] for o in out], ["c%d" % i for i in range(100, 100 + done)])
        self.assertTrue(all(o["response"]["status_code"] == 200 for o in out))
        st, _, e = self.b.json("POST", "/v1/batches/%s/cancel" % b["id"])
        self.assertEqual(st, 409, e)

    def test_file_uploaded_on_a_is_the_input_of_a_batch_on_b(self):
        f = self.upload(self.a, 3, first=200)
        st, _, data = self.b.request("GET", "/v1/files/%s/content" % f["id"])
        self.assertEqual(st, 200)
        self.assertEqual(data.decode().splitlines(), [line(i) for i in range(200, 203)])
        b = self.create(self.b, f["id"])
        done = self.on(self.a).wait(b["id"], timeout=60)
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["request_counts"], {"total": 3, "completed": 3, "failed": 0})
        out = self.on(self.a).content(done["output_file_id"])
        self.assertEqual([o["custom_id"] for o in out], ["c200", "c201", "c202"])
        for o in out:
            self.assertIn("answer to line %s" % o["custom_id"][1:],
                          o["response"]["body"]["choices"][0]["message"]["content"])
        # in use by nothing now: deleted through B, gone for A
        st, _, j = self.b.json("DELETE", "/v1/files/" + f["id"])
        self.assertEqual(st, 200, j)
        st, _, j = self.a.json("GET", "/v1/files/" + f["id"])
        self.assertEqual(st, 404, j)


class Takeover(Shared):

    def test_killed_owner_batch_finished_by_the_other_without_repeats(self):
        n = 16
        f = self.upload(self.a, n)
        b = self.create(self.a, f["id"])
        self.on(self.a).wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 3)
        pid = self.owner_pid(b["id"])
        victim, survivor = (self.a, self.b) if pid == self.a.proc.pid else (self.b, self.a)
        self.assertEqual(pid, victim.proc.pid)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        stored = {int(x) for x in PG.psql("SELECT line FROM moa_jobs_results WHERE batch_id = '%s'" % b["id"],
                                          self.db).split()}
        self.assertGreaterEqual(len(stored), 3)
        done = self.on(survivor).wait(b["id"], timeout=60)
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["request_counts"], {"total": n, "completed": n, "failed": 0})
        out = self.on(survivor).content(done["output_file_id"])
        self.assertEqual([o["custom_id"] for o in out], ["c%d" % i for i in range(n)])
        calls = self.up.counts()
        # a line answered before the kill is never asked again; only the
        # one in flight at the kill (jobs.concurrency 1) may be asked twice
        for i in stored:
            self.assertEqual(calls.get(i), 1, "line %d: %r" % (i, calls))
        self.assertTrue(all(calls.get(i, 0) >= 1 for i in range(n)), calls)
        self.assertLessEqual(sum(calls.get(i, 0) for i in range(n)), n + 1, calls)
        log = survivor.read_log()
        self.assertIn("claimed", log)
        self.assertRegex(log, r"batch %s: resuming, \d+ of %d lines already answered" % (b["id"], n))
        self.assertEqual(PG.psql("SELECT count(*) FROM moa_jobs_results WHERE batch_id = '%s'" % b["id"], self.db),
                         str(n))


class CleanStop(Shared):

    def test_a_stopping_owner_hands_its_batch_over_at_once(self):
        """SIGTERM: the owner releases its lease as it stops, so the other
        instance takes the batch at its next heartbeat instead of after
        the lease, and finishes it."""
        n = 10
        f = self.upload(self.a, n, first=600)
        b = self.create(self.a, f["id"])
        self.on(self.a).wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 2)
        pid = self.owner_pid(b["id"])
        owner, other = (self.a, self.b) if pid == self.a.proc.pid else (self.b, self.a)
        finish(owner)  # exits 0, no sanitizer report
        holder = PG.psql("SELECT coalesce(lease_owner, '-') FROM moa_jobs_batches WHERE id = '%s'" % b["id"],
                         self.db)
        # released, or already taken by the other (its heartbeat came first)
        self.assertTrue(holder == "-" or int(holder.split(":")[1]) == other.proc.pid, holder)
        done = self.on(other).wait(b["id"], timeout=60)
        self.assertEqual(done["request_counts"], {"total": n, "completed": n, "failed": 0})


class LeaseFence(Shared):

    def test_an_owner_whose_lease_was_taken_stores_nothing_more(self):
        """One instance at a time stores a batch's lines: when the lease
        passes to another owner (here set by hand, as after a partition
        longer than the lease), the old owner's next result is refused and
        it lets the batch go; once the lease is free again the batch is
        claimed and finished, each line stored once."""
        n = 10
        f = self.upload(self.a, n, first=500)
        b = self.create(self.a, f["id"])
        self.on(self.a).wait(b["id"], cond=lambda x: x["request_counts"]["completed"] >= 2)
        pid = self.owner_pid(b["id"])
        old = self.a if pid == self.a.proc.pid else self.b
        PG.psql("UPDATE moa_jobs_batches SET lease_owner = 'elsewhere:1:x', lease_expires = now() + interval '1 hour' "
                "WHERE id = '%s'" % b["id"], self.db)
        end = time.time() + 2 * LEASE
        # whichever it notices first: its next result refused, or its heartbeat
        gone = re.compile(r"batch %s(?: was ended on another instance, or taken over|: no longer held here "
                          r"\(lease lost\))" % b["id"])
        while not gone.search(old.read_log()):
            self.assertLess(time.time(), end, old.read_log()[-2000:])
            time.sleep(0.05)
        stored = PG.psql("SELECT count(*) FROM moa_jobs_results WHERE batch_id = '%s'" % b["id"], self.db)
        time.sleep(1.0)  # three answers' time: nothing more is stored while another holds it
        self.assertEqual(PG.psql("SELECT count(*) FROM moa_jobs_results WHERE batch_id = '%s'" % b["id"], self.db),
                         stored)
        self.assertLess(int(stored), n)
        PG.psql("UPDATE moa_jobs_batches SET lease_owner = NULL, lease_expires = NULL WHERE id = '%s'" % b["id"],
                self.db)
        done = self.on(self.a).wait(b["id"], timeout=60)
        self.assertEqual(done["request_counts"], {"total": n, "completed": n, "failed": 0})
        out = self.on(self.b).content(done["output_file_id"])
        self.assertEqual([o["custom_id"] for o in out], ["c%d" % i for i in range(500, 500 + n)])


class DatabaseDown(Shared):

    def test_503_while_down_and_back_without_restart(self):
        f = self.upload(self.a, 2, first=300)
        PG.pg_ctl("stop")
        try:
            for d in (self.a, self.b):
                for method, path in (("GET", "/v1/batches"), ("GET", "/v1/files"),
                                     ("GET", "/v1/files/" + f["id"]), ("GET", "/v1/batches/batch_x")):
                    st, _, e = d.json(method, path)
                    self.assertEqual(st, 503, (path, e))
                    self.assertEqual(e["error"]["code"], "jobs_database_unavailable")
                    self.assertIn("jobs database (PostgreSQL) is unavailable", e["error"]["message"])
                st, e = self.on(d).upload(line(300).encode() + b"\n")
                self.assertEqual(st, 503, e)
                self.assertIn("unavailable", e["error"]["message"])
                st, e = self.on(d).create(f["id"])
                self.assertEqual(st, 503, e)
                st, _, h = d.json("GET", "/healthz")
                self.assertEqual(st, 200, h)
        finally:
            PG.pg_ctl("start")
        # back without a restart (after at most a second of fail-fast)
        end = time.time() + 10
        while self.b.json("GET", "/v1/batches")[0] != 200 and time.time() < end:
            time.sleep(0.1)
        b = self.create(self.b, f["id"])
        done = self.on(self.a).wait(b["id"], timeout=60)
        self.assertEqual(done["request_counts"], {"total": 2, "completed": 2, "failed": 0})
        self.assertIn("connected to PostgreSQL again", self.a.read_log() + self.b.read_log())


    def test_down_at_start_then_back(self):
        """An instance started while the database is down runs; its job
        endpoints answer 503 until the database is back, then work."""
        PG.pg_ctl("stop")
        c = None
        try:
            c = NotWaitingDaemon(config=PG.config(self.db, "jobs:\n  concurrency: 1\n  lease_seconds: %d\n" % LEASE),
                                 env={"OPENAI_BASE_URL": self.up.url, "OPENAI_MODEL": "up",
                                      "OPENAI_API_KEY": "sk-test"})
            st, _, e = c.json("GET", "/v1/batches")
            self.assertEqual(st, 503, e)
            self.assertEqual(e["error"]["code"], "jobs_database_unavailable")
        finally:
            PG.pg_ctl("start")
        try:
            end = time.time() + 10
            while c.json("GET", "/v1/batches")[0] != 200 and time.time() < end:
                time.sleep(0.1)
            self.assertEqual(c.json("GET", "/v1/batches")[0], 200)
            self.assertIn("jobs: cannot connect to PostgreSQL", c.read_log())
            st, f = self.on(c).upload((line(400) + "\n").encode())
            self.assertEqual(st, 200, f)
            b = self.create(c, f["id"])
            done = self.on(c).wait(b["id"], timeout=60)
            self.assertEqual(done["request_counts"], {"total": 1, "completed": 1, "failed": 0})
        finally:
            finish(c)


class Bounded(Shared):
    """A jobs call never waits for the database longer than
    jobs.db_timeout_ms: with the batches table locked by another session
    for 8 s, listing batches answers 503 (not 200 after the lock), /healthz
    answers meanwhile, and the listing works again once the lock is gone."""
    extra = "  db_timeout_ms: 500\n"

    def test_locked_table_gives_503_not_a_wait(self):
        env = dict(os.environ, PGPASSWORD=PG.password)
        p = subprocess.Popen([os.path.join(PG.bin, "psql"), "-X", "-q", "-d", PG.conninfo(self.db), "-c",
                              "BEGIN; LOCK TABLE moa_jobs_batches IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8); "
                              "COMMIT;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, env=env)
        try:
            end = time.time() + 10
            while PG.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                          "WHERE c.relname = 'moa_jobs_batches' AND l.mode = 'AccessExclusiveLock' AND l.granted",
                          self.db) != "1":
                self.assertLess(time.time(), end, "the lock was never taken")
                time.sleep(0.05)
            st, _, e = self.a.json("GET", "/v1/batches")
            self.assertEqual(st, 503, e)
            self.assertEqual(e["error"]["code"], "jobs_database_unavailable")
            st, _, h = self.a.json("GET", "/healthz")
            self.assertEqual(st, 200, h)
            self.assertIsNone(p.poll(), "the lock was released before the checks: they prove nothing")
        finally:
            p.communicate(timeout=30)
        end = time.time() + 10
        while self.a.json("GET", "/v1/batches")[0] != 200 and time.time() < end:
            time.sleep(0.1)
        st, _, j = self.a.json("GET", "/v1/batches")
        self.assertEqual(st, 200, j)


class OffTheLoop(Shared):
    """With jobs on PostgreSQL no jobs call waits on the event loop: the
    store runs on a thread of its own. A jobs request held up by the
    database (its table locked by another session) leaves the daemon
    serving other requests meanwhile; the database stopped while such a
    request waits answers it 503, not a hang, and the instance recovers
    without a restart. jobs.db_timeout_ms is long (30 s) so that a loop
    waiting for the database could not answer the other requests in time."""
    extra = "  db_timeout_ms: 30000\n"

    LISTING = "SELECT b.id, b.owner%"  # the statement of GET /v1/batches

    def waiting(self, like=LISTING):
        """moad's jobs statements starting with @like waiting for a lock now."""
        return int(PG.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND "
                           "wait_event_type = 'Lock' AND query LIKE '%s'" % (self.db, like), self.db))

    def wait_waiting(self):
        end = time.time() + 30
        while self.waiting() < 1:
            self.assertLess(time.time(), end, "no jobs statement of moad waited for the lock")
            time.sleep(0.05)

    def quick(self, d, method, path, body=None):
        """@path answered on a fresh connection with a 5 s socket timeout:
        the lock is held until the test releases it, so a loop waiting for
        the database would not answer."""
        c = d.conn(timeout=5)
        try:
            return d.json(method, path, body, conn=c)
        finally:
            c.close()

    def test_a_request_waiting_for_the_database_does_not_block_the_loop(self):
        f = self.upload(self.a, 1, first=700)
        lock = PG.lock_chunks(self.db, "moa_jobs_batches")
        try:
            listed = Background(self.a.json, "GET", "/v1/batches")
            self.wait_waiting()
            # queued behind the listing on the API's store thread
            created = Background(self.a.json, "POST", "/v1/batches",
                                 {"input_file_id": f["id"], "endpoint": ENDPOINT, "completion_window": "24h"})
            st, _, h = self.quick(self.a, "GET", "/healthz")
            self.assertEqual(st, 200, h)
            st, _, m = self.quick(self.a, "GET", "/v1/models")
            self.assertEqual(st, 200, m)
            # a jobs request that needs no database answers too (a 404 of the router)
            st, _, e = self.quick(self.a, "GET", "/v1/batches/batch_x/nothing")
            self.assertEqual(st, 404, e)
            # answered while the jobs requests still waited for the lock
            self.assertGreaterEqual(self.waiting(), 1)
            self.assertFalse(listed.done())
            self.assertFalse(created.done())
        finally:
            PG.release(lock)
        st, _, j = listed.result()
        self.assertEqual(st, 200, j)
        st, _, b = created.result()
        self.assertEqual(st, 200, b)
        done = self.on(self.a).wait(b["id"], timeout=60)
        self.assertEqual(done["request_counts"], {"total": 1, "completed": 1, "failed": 0})

    def test_database_stopped_mid_request_answers_503_then_recovers(self):
        lock = PG.lock_chunks(self.db, "moa_jobs_batches")
        try:
            listed = Background(self.b.json, "GET", "/v1/batches")
            self.wait_waiting()
            st, _, h = self.quick(self.b, "GET", "/healthz")
            self.assertEqual(st, 200, h)
            self.assertFalse(listed.done())
            PG.pg_ctl("stop")  # fast: the waiting session is ended with the server
            try:
                st, _, e = listed.result(timeout=25)  # long before jobs.db_timeout_ms
                self.assertEqual(st, 503, e)
                self.assertEqual(e["error"]["code"], "jobs_database_unavailable")
                self.assertIn("jobs database (PostgreSQL) is unavailable", e["error"]["message"])
                st, _, h = self.quick(self.b, "GET", "/healthz")
                self.assertEqual(st, 200, h)
                st, _, e = self.quick(self.b, "GET", "/v1/files")
                self.assertEqual(st, 503, e)
            finally:
                PG.pg_ctl("start")
        finally:
            PG.release(lock)
        end = time.time() + 10
        while self.b.json("GET", "/v1/batches")[0] != 200 and time.time() < end:
            time.sleep(0.1)
        st, _, j = self.b.json("GET", "/v1/batches")
        self.assertEqual(st, 200, j)
        f = self.upload(self.b, 1, first=710)
        b = self.create(self.b, f["id"])
        done = self.on(self.b).wait(b["id"], timeout=60)
        self.assertEqual(done["request_counts"], {"total": 1, "completed": 1, "failed": 0})


if __name__ == "__main__":
    unittest.main()
