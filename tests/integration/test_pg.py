"""The PostgreSQL knowledge backend (knowledge.backend: postgresql), on a
private server started for this suite (pgtest.py): the knowledge suite of
test_knowledge.py run again on it, two moad instances sharing one
database, and the password kept out of logs. Without PostgreSQL the suite
is skipped, loudly (a failure under CI=true)."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import pgtest
import test_knowledge
import test_listing
from moadtest import BUILD, MOAD, SRC, Daemon, cannot_run

PG = None


def setUpModule():
    global PG
    PG = pgtest.PgServer()


def tearDownModule():
    if PG:
        PG.stop()


class OnPostgres:
    """Mixed into a DaemonTestCase: its daemon keeps its knowledge in a new
    database of its own on the suite's server."""

    @classmethod
    def setUpClass(cls):
        db = "moa_" + cls.__name__.lower()
        PG.createdb(db)
        cls.db = db
        cls.config = PG.config(db)
        super().setUpClass()

    def test_backend_is_postgresql(self):
        """The documents this daemon lists are rows in PostgreSQL, and its
        log never holds the password."""
        rows = int(PG.psql("SELECT count(*) FROM moa_kb_documents WHERE agent = 'legal'", self.db))
        st, _, j = self.d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(st, 200)
        self.assertGreater(rows, 0)
        self.assertEqual(len(j["documents"]), rows)
        self.assertNotIn(PG.password, self.d.read_log())
        self.assertIn("postgresql:legal", self.d.read_log())


class Documents(OnPostgres, test_knowledge.Documents):
    pass


class Relevance(OnPostgres, test_knowledge.Relevance):
    pass


class Paging(OnPostgres, test_listing.Paging):
    """The same pages, byte order and 400s as SQLite (titles compared
    COLLATE "C")."""


class ReadsOffLoop(unittest.TestCase):
    """A listing and the agents' counts while another session holds the
    documents table locked: read on the reader thread, so /healthz is
    answered meanwhile; after statement_timeout both are 503 (the
    database did not answer in time), never 500; then 200 again."""

    @classmethod
    def setUpClass(cls):
        PG.createdb("moa_reads")
        cls.d = Daemon(config=PG.config("moa_reads").replace("statement_timeout_ms: 10000",
                                                            "statement_timeout_ms: 3000"))

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def locked(self, seconds):
        env = dict(os.environ, PGPASSWORD=PG.password)
        p = subprocess.Popen([os.path.join(PG.bin, "psql"), "-X", "-q", "-d", PG.conninfo("moa_reads"), "-c",
                              "BEGIN; LOCK TABLE moa_kb_documents IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(%d); "
                              "COMMIT;" % seconds],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
        end = time.time() + 10
        while time.time() < end:
            if PG.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'moa_kb_documents' AND l.mode = 'AccessExclusiveLock' AND l.granted",
                       "moa_reads") == "1":
                return p
            time.sleep(0.05)
        p.kill()
        self.fail("the lock was never taken: " + p.communicate()[0])

    def test_a_locked_table_gives_503_and_the_loop_keeps_answering(self):
        p = self.locked(8)
        try:
            tl, listed = test_listing.in_thread(self.d.json, "GET", "/v1/moa/agents/legal/documents")
            ta, agents = test_listing.in_thread(self.d.json, "GET", "/v1/moa/agents")
            time.sleep(0.5)
            st, _, j = self.d.json("GET", "/healthz")
            self.assertEqual((st, j["status"]), (200, "ok"))
            self.assertTrue(tl.is_alive() and ta.is_alive(),
                            "a listing answered before /healthz: it did not wait for the lock")
            tl.join(60)
            ta.join(60)
        finally:
            p.communicate(timeout=30)
        for st, _, j in (listed[0], agents[0]):
            self.assertEqual(st, 503, j)
            self.assertIn("unavailable", j["error"]["message"])
        st, _, j = self.d.json("GET", "/v1/moa/agents/legal/documents?limit=2")
        self.assertEqual((st, len(j["documents"]), j["has_more"]), (200, 2, True), j)
        st, _, j = self.d.json("GET", "/v1/moa/agents")
        self.assertEqual(st, 200, j)


ORBIX_DOC = """# Orbix lease rules

Under the Orbix lease rules a tenant must give the landlord ninety days notice before moving out of an orbix
flat. The orbix notice must be given in writing.
"""


class TwoInstances(unittest.TestCase):
    """Two moad processes on one database: what one ingests the other
    answers from at once, and a delete through either is seen by both."""

    @classmethod
    def setUpClass(cls):
        PG.createdb("moa_two")
        cfg = PG.config("moa_two")
        cls.a = Daemon(config=cfg)
        cls.b = Daemon(config=cfg)

    @classmethod
    def tearDownClass(cls):
        for d in (cls.a, cls.b):
            d.cleanup()

    def ask(self, d, q):
        st, _, data = d.chat(q, moa={"agents": ["legal"]})
        self.assertEqual(st, 200, data)
        return json.loads(data)["choices"][0]["message"]["content"]

    def test_ingest_on_a_answer_on_b(self):
        q = "How many days notice must a tenant give before leaving an orbix flat?"
        self.assertNotIn("ninety days", self.ask(self.b, q))
        st, _, j = self.a.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
        self.assertEqual(st, 200, j)
        answer = self.ask(self.b, q)
        self.assertIn("ninety days notice", answer)
        self.assertIn("orbix.md", answer)
        st, _, j = self.b.json("GET", "/v1/moa/agents/legal/documents")
        self.assertIn("orbix.md", [x["title"] for x in j["documents"]])
        # deleted through B: gone for A
        st, _, j = self.b.json("DELETE", "/v1/moa/agents/legal/documents/orbix.md")
        self.assertEqual(st, 200, j)
        self.assertNotIn("ninety days", self.ask(self.a, q))
        st, _, j = self.a.json("DELETE", "/v1/moa/agents/legal/documents/orbix.md")
        self.assertEqual(st, 404, j)

    def test_agents_are_isolated(self):
        """One database, one agent column: a document of legal is not in
        code's knowledge."""
        st, _, j = self.a.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "isolated.md", "text": ORBIX_DOC.replace("rbix", "rbaz"), "source": "t"})
        self.assertEqual(st, 200, j)
        try:
            st, _, j = self.b.json("GET", "/v1/moa/agents/code/documents")
            self.assertNotIn("isolated.md", [x["title"] for x in j["documents"]])
            st, _, data = self.b.chat("How many days notice for an orbaz flat?", moa={"agents": ["code"]})
            self.assertEqual(st, 200, data)
            self.assertNotIn("isolated.md", json.loads(data)["choices"][0]["message"]["content"])
        finally:
            self.assertEqual(self.a.json("DELETE", "/v1/moa/agents/legal/documents/isolated.md")[0], 200)


class PrunedSearch(unittest.TestCase):
    """knowledge.search_prune_chunks: a base of at least that many chunks
    is searched from its rarest terms (the chunks holding them, the best by
    ts_rank, scored exactly). Pruning every base (1) and none (0) on one
    database must cite the same passages for the same questions."""

    QUESTIONS = [
        "How many days notice must a tenant give before leaving an orbix flat?",
        "Can my landlord keep the deposit for normal wear and tear?",
        "What is consideration in a contract?",
        "Is GPL code allowed in a proprietary product?",
    ]

    @classmethod
    def setUpClass(cls):
        PG.createdb("moa_prune")
        cfg = PG.config("moa_prune")
        cls.pruned = Daemon(config=cfg + "  search_prune_chunks: 1\n")
        cls.exact = Daemon(config=cfg + "  search_prune_chunks: 0\n")
        st, _, j = cls.pruned.json("POST", "/v1/moa/agents/legal/documents",
                                   {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
        assert st == 200, j

    @classmethod
    def tearDownClass(cls):
        for d in (cls.pruned, cls.exact):
            d.cleanup()

    def cited(self, d, q):
        st, _, data = d.chat(q, moa={"agents": ["legal"]})
        self.assertEqual(st, 200, data)
        return [(c["document"], c["chunk"]) for c in json.loads(data)["moa"]["citations"]]

    def test_same_passages_pruned_or_not(self):
        for q in self.QUESTIONS:
            at = os.path.getsize(self.pruned.log_path)
            pruned = self.cited(self.pruned, q)
            with open(self.pruned.log_path, errors="replace") as f:
                f.seek(at)
                self.assertIn("pruned search", f.read(), q)
            self.assertEqual(pruned, self.cited(self.exact, q), q)
            self.assertTrue(pruned, q)
        with open(self.exact.log_path, errors="replace") as f:
            self.assertNotIn("pruned search", f.read())


class Atomicity(unittest.TestCase):
    """An ingest whose transaction fails half-way (its chunk statement over
    statement_timeout, held back by a lock another session takes) leaves
    nothing of the new version: a new title is absent, a replaced one keeps
    its old version."""

    @classmethod
    def setUpClass(cls):
        PG.createdb("moa_atomic")
        cls.d = Daemon(config=PG.config("moa_atomic").replace("statement_timeout_ms: 10000",
                                                             "statement_timeout_ms: 1000"))

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def ingest(self, title, text):
        return self.d.json("POST", "/v1/moa/agents/legal/documents", {"title": title, "text": text, "source": "t"})

    def locked(self):
        """A session holding a SHARE lock on the chunks for 4 s: other
        sessions can read them, but not insert or delete any."""
        env = dict(os.environ, PGPASSWORD=PG.password)
        p = subprocess.Popen([os.path.join(PG.bin, "psql"), "-X", "-q", "-d", PG.conninfo("moa_atomic"), "-c",
                              "BEGIN; LOCK TABLE moa_kb_chunks IN SHARE MODE; SELECT pg_sleep(4); COMMIT;"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
        end = time.time() + 10
        while time.time() < end:
            if PG.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'moa_kb_chunks' AND l.mode = 'ShareLock' AND l.granted",
                       "moa_atomic") == "1":
                return p
            time.sleep(0.05)
        p.kill()
        self.fail("the lock was never taken: " + p.communicate()[0])

    def rows(self, title):
        return PG.psql("SELECT count(*) FROM moa_kb_documents d JOIN moa_kb_chunks c ON c.doc_id = d.id "
                       "WHERE d.agent = 'legal' AND d.title = '%s'" % title, "moa_atomic")

    def test_failed_ingest_leaves_nothing(self):
        st, _, j = self.ingest("atom.md", ORBIX_DOC)
        self.assertEqual(st, 200, j)
        before = self.rows("atom.md")
        p = self.locked()
        try:
            st, _, j = self.ingest("atom.md", ORBIX_DOC.replace("ninety", "thirty"))
            self.assertEqual(st, 503, j)  # statement_timeout
            st, _, j = self.ingest("new.md", "A new lease document about the orbix deposit.")
            self.assertEqual(st, 503, j)
        finally:
            p.communicate(timeout=30)
        self.assertEqual(self.rows("atom.md"), before)
        self.assertEqual(self.rows("new.md"), "0")
        st, _, data = self.d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
        answer = json.loads(data)["choices"][0]["message"]["content"]
        self.assertIn("ninety days", answer)
        self.assertNotIn("thirty days", answer)
        # and the next ingest goes through
        self.assertEqual(self.ingest("new.md", "A new lease document about the orbix deposit.")[0], 200)
        self.assertNotEqual(self.rows("new.md"), "0")


def stop_clean(d):
    """Stops @d and fails unless it exited 0 with no sanitizer report (an
    ASan build reports leaks and errors at exit)."""
    rc = d.stop()
    log = d.read_log()
    shutil.rmtree(d.dir, ignore_errors=True)
    if rc != 0 or "Sanitizer" in log:
        raise AssertionError("moad exited with %s:\n%s" % (rc, log[-3000:]))


class Background:
    """A request on a thread of its own: result() waits for its answer."""

    def __init__(self, fn, *args, **kw):
        self.out = None
        self.error = None

        def run():
            try:
                self.out = fn(*args, **kw)
            except Exception as e:  # reported by result()
                self.error = e
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def done(self):
        return not self.thread.is_alive()

    def result(self, timeout=60):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("no answer within %d s" % timeout)
        if self.error:
            raise self.error
        return self.out


class NonBlocking(unittest.TestCase):
    """A knowledge search waits for the database off the event loop: while
    one waits (moa_kb_chunks locked by another session), the daemon
    answers everything else; past statement_timeout it gives up with the
    agent-drops-out answer (503 knowledge_unavailable) instead of hanging."""

    Q = "How many days notice must a tenant give before leaving an orbix flat?"

    @classmethod
    def setUpClass(cls):
        PG.createdb("moa_nonblock")
        cfg = PG.config("moa_nonblock")
        # a search waits for the lock as long as the test holds it
        cls.d = Daemon(config=cfg.replace("statement_timeout_ms: 10000", "statement_timeout_ms: 120000"))
        # a search gives up after 2 s
        cls.short = Daemon(config=cfg.replace("statement_timeout_ms: 10000", "statement_timeout_ms: 2000"))
        st, _, j = cls.d.json("POST", "/v1/moa/agents/legal/documents",
                              {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
        assert st == 200, j

    @classmethod
    def tearDownClass(cls):
        try:
            stop_clean(cls.d)
        finally:
            stop_clean(cls.short)

    def ask(self, d=None):
        return (d or self.d).chat(self.Q, moa={"agents": ["legal"]})

    def quick(self, method, path):
        """@path answered on a fresh connection, with a 5 s socket timeout:
        the lock is held until the test releases it, so a loop waiting for
        the search would never answer."""
        c = self.d.conn(timeout=5)
        try:
            return self.d.request(method, path, conn=c)
        finally:
            c.close()

    def test_loop_answers_while_a_search_waits(self):
        # The knowledge changed and its term statistics are due for a
        # re-read (every 2 s at most): the chat's routing re-reads them,
        # which must not make the loop wait for the lock either.
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "refresh.md", "text": "A plimsoll lease ends with the season.",
                                "source": "test"})
        self.assertEqual(st, 200, j)
        time.sleep(2.5)
        lock = PG.lock_chunks("moa_nonblock")
        try:
            chat = Background(self.ask)
            PG.wait_searches("moa_nonblock")
            st, _, body = self.quick("GET", "/healthz")
            self.assertEqual(st, 200, body)
            st, _, body = self.quick("GET", "/v1/models")
            self.assertEqual(st, 200, body)
            self.assertIn("legal", [m["id"] for m in json.loads(body)["data"]])
            # both answered while the search still waited for the lock
            self.assertEqual(PG.waiting_searches("moa_nonblock"), 1)
            self.assertFalse(chat.done())
        finally:
            PG.release(lock)
        st, _, data = chat.result()
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])

    def test_nothing_counted_on_the_loop(self):
        """moa_kb_documents locked: a chat no longer counts the agent's
        documents on the loop (the count named in a "no passage" answer is
        the one published by the last write or re-read), so the loop
        answers while the chat's search waits in the pool, and the chat
        answers once the lock is gone."""
        lock = PG.lock_chunks("moa_nonblock", "moa_kb_documents")
        try:
            chat = Background(self.ask)
            # the search (it joins moa_kb_documents) waits for the lock:
            # it was sent, so nothing before it waited on the loop
            PG.wait_searches("moa_nonblock")
            st, _, body = self.quick("GET", "/healthz")
            self.assertEqual(st, 200, body)
            self.assertFalse(chat.done())
        finally:
            PG.release(lock)
        st, _, data = chat.result()
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])

    def test_route_explanation_off_the_loop(self):
        """POST /v1/moa/route names the documents a search finds first; on
        PostgreSQL that search runs on the pool before the route is
        computed: with the chunks locked the route waits, the loop does not."""
        q = {"query": "How many days notice for an orbix flat?"}

        def legal_terms(j):
            return {a["name"]: a for a in j["agents"]}["legal"]["kb_terms"]
        st, _, j = self.d.json("POST", "/v1/moa/route", q)
        self.assertEqual(st, 200, j)
        self.assertIn("documents: orbix.md", legal_terms(j))
        lock = PG.lock_chunks("moa_nonblock")
        try:
            routed = Background(self.d.json, "POST", "/v1/moa/route", q)
            PG.wait_searches("moa_nonblock")
            st, _, body = self.quick("GET", "/healthz")
            self.assertEqual(st, 200, body)
            self.assertFalse(routed.done())
        finally:
            PG.release(lock)
        st, _, j = routed.result()
        self.assertEqual(st, 200, j)
        self.assertIn("documents: orbix.md", legal_terms(j))

    def test_search_past_the_deadline_drops_the_agent(self):
        lock = PG.lock_chunks("moa_nonblock")
        try:
            chat = Background(self.ask, self.short)
            # over statement_timeout (2 s): the server cancels it, the
            # agent drops out, and with it the only agent: 503
            st, _, data = chat.result(timeout=30)
            self.assertEqual(st, 503, data)
            j = json.loads(data)
            self.assertEqual(j["error"]["code"], "knowledge_unavailable", j)
            self.assertIn("legal: its knowledge database is unavailable", j["error"]["message"])
        finally:
            PG.release(lock)
        st, _, data = self.ask(self.short)
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])

    def test_stop_while_a_search_waits(self):
        """SIGTERM while a search waits: the request is aborted after the
        grace period, the connections close, and moad exits 0 without a
        leak or a use after free (an ASan build checks)."""
        d = Daemon(config=PG.config("moa_nonblock").replace("statement_timeout_ms: 10000",
                                                           "statement_timeout_ms: 120000")
                   + "limits:\n  shutdown_timeout_ms: 500\n")
        lock = PG.lock_chunks("moa_nonblock")
        try:
            chat = Background(self.ask, d)
            PG.wait_searches("moa_nonblock")
            stop_clean(d)
            try:
                st = chat.result(30)[0]
            except OSError:
                st = None  # closed unanswered
            self.assertNotEqual(st, 200)
        finally:
            PG.release(lock)

    def test_client_gone_mid_search(self):
        """A client that hangs up while its search waits: the search is
        cancelled (its answer dropped when it comes), the daemon goes on."""
        lock = PG.lock_chunks("moa_nonblock")
        try:
            c = self.d.conn(timeout=30)
            c.request("POST", "/v1/chat/completions",
                      json.dumps({"model": "moa", "messages": [{"role": "user", "content": self.Q}],
                                  "moa": {"agents": ["legal"]}}),
                      {"Content-Type": "application/json"})
            PG.wait_searches("moa_nonblock")
            c.close()
            self.d.wait_log("client disconnected", timeout=10)
        finally:
            PG.release(lock)
        st, _, data = self.ask()
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])


class RestrictedAnswers(unittest.TestCase):
    """moa.doc_filter on PostgreSQL: the search restricted to documents
    (title patterns as regular expressions) runs on the search pool."""

    @classmethod
    def setUpClass(cls):
        PG.createdb("moa_restricted")
        cls.d = Daemon(config=PG.config("moa_restricted"))
        for title, text in (("orbix.md", ORBIX_DOC),
                            ("glossary.md", "# Glossary\n\nAn orbix flat is one let with its furniture.\n")):
            st, _, j = cls.d.json("POST", "/v1/moa/agents/legal/documents",
                                  {"title": title, "text": text, "source": "test"})
            assert st == 200, j

    @classmethod
    def tearDownClass(cls):
        stop_clean(cls.d)

    def ask(self, q, **moa):
        st, _, data = self.d.chat(q, model="legal", moa=moa)
        self.assertEqual(st, 200, data)
        return json.loads(data)

    def test_doc_filter(self):
        j = self.ask("What is a security deposit?", doc_filter=["tenancy*"])
        self.assertEqual({c["document"] for c in j["moa"]["citations"]}, {"tenancy.md"})
        j = self.ask("How many days notice for an orbix flat?", doc_filter=["orb?x.md"])
        self.assertEqual({c["document"] for c in j["moa"]["citations"]}, {"orbix.md"})
        self.assertIn("ninety days notice", j["choices"][0]["message"]["content"])
        j = self.ask("What is a security deposit?", doc_filter=["no-such-*"])
        self.assertIn("has no passage", j["choices"][0]["message"]["content"])
        self.assertEqual(j["moa"]["citations"], [])


class Migration(unittest.TestCase):
    """moad --migrate-knowledge: SQLite to PostgreSQL and back, documents
    counted and checked, and what a user then sees from the new backend."""

    def migrate(self, config, state):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "moad.yaml")
            with open(path, "w") as f:
                f.write(config)
            p = subprocess.run([MOAD, "--config", path, "--state-dir", state, "--migrate-knowledge"],
                               capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn(PG.password, p.stdout + p.stderr)
        return p.stdout

    def legal_docs(self, d):
        st, _, j = d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(st, 200, j)
        return {x["title"]: x for x in j["documents"]}

    def test_sqlite_to_postgresql_and_back(self):
        sha = "cd" * 32
        a = Daemon()  # SQLite, the default
        try:
            st, _, j = a.json("POST", "/v1/moa/agents/legal/documents",
                              {"title": "orbix.md", "text": ORBIX_DOC, "source": "/srv/orbix.md", "sha256": sha,
                               "size": len(ORBIX_DOC), "mtime": 1700000000})
            self.assertEqual(st, 200, j)
            before = self.legal_docs(a)
        finally:
            a.stop()
        PG.createdb("moa_migrate")
        out = self.migrate(PG.config("moa_migrate"), a.state)
        self.assertIn("legal: %d documents copied from %s/kb/legal.db to postgresql:legal:english and checked"
                      % (len(before), a.state), out)
        self.assertEqual(int(PG.psql("SELECT count(*) FROM moa_kb_documents WHERE agent = 'legal'", "moa_migrate")),
                         len(before))
        b = Daemon(config=PG.config("moa_migrate"))
        try:
            after = self.legal_docs(b)
            self.assertEqual(sorted(after), sorted(before))
            for t in before:
                self.assertEqual((after[t]["sha256"], after[t]["chunks"], after[t]["bytes"], after[t]["source"]),
                                 (before[t]["sha256"], before[t]["chunks"], before[t]["bytes"], before[t]["source"]))
            self.assertEqual(after["orbix.md"]["sha256"], sha)
            st, _, data = b.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
            self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])
        finally:
            b.cleanup()
        # and back, into a fresh state directory's SQLite files
        back = tempfile.mkdtemp(prefix="moad-test-back-")
        try:
            out = self.migrate(PG.config("moa_migrate").replace("backend: postgresql", "backend: sqlite"), back)
            self.assertIn("legal: %d documents copied from postgresql:legal:english to %s/kb/legal.db and checked"
                          % (len(before), back), out)
            c = Daemon(args=("--state-dir", back))
            try:
                self.assertEqual(sorted(self.legal_docs(c)), sorted(before))
            finally:
                c.stop()
        finally:
            shutil.rmtree(back, ignore_errors=True)
            a.cleanup()

    def test_needs_conninfo(self):
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([MOAD, "--state-dir", d, "--migrate-knowledge"], capture_output=True, text=True,
                               timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--migrate-knowledge moves knowledge between SQLite and PostgreSQL: set knowledge.conninfo",
                      p.stdout)


class NotWaitingDaemon(Daemon):
    """A daemon that may start while its knowledge is unavailable: it waits
    for any answer of /readyz, not for 200."""

    def wait_ready(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("moad exited with %d:\n%s" % (self.proc.returncode, self.read_log()))
            if os.path.exists(self.socket):
                try:
                    self.request("GET", "/readyz")
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("moad not answering:\n" + self.read_log())


class Faults(unittest.TestCase):
    """The database down at start, down mid-request and back: clear errors,
    503s, never a hang or a crash, and recovery without a restart. A server
    of its own, since it is stopped and started."""

    def setUp(self):
        self.pg = pgtest.PgServer()
        self.pg.createdb("moa_faults")
        self.d = None

    def tearDown(self):
        if self.d:
            rc = self.d.stop()
            log = self.d.read_log()
            shutil.rmtree(self.d.dir, ignore_errors=True)
            self.assertEqual(rc, 0, log[-3000:])
            self.assertNotIn("Sanitizer", log)
            self.assertNotIn(self.pg.password, log)
        self.pg.stop()

    def wait_status(self, want, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            st, _, j = self.d.json("GET", "/readyz")
            if st == want:
                return j
            time.sleep(0.2)
        self.fail("/readyz never answered %d:\n%s" % (want, self.d.read_log()[-3000:]))

    def test_down_at_start_then_back(self):
        self.pg.pg_ctl("stop")
        self.d = NotWaitingDaemon(config=self.pg.config("moa_faults"))
        j = self.wait_status(503)
        self.assertEqual(j, {"status": "knowledge unavailable"})
        log = self.d.read_log()
        self.assertIn("cannot connect to PostgreSQL: connection to server on socket", log)
        self.assertIn("agent legal: knowledge database unavailable", log)
        st, _, j = self.d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(st, 503, j)
        self.assertIn("the knowledge database is unavailable", j["error"]["message"])
        self.pg.pg_ctl("start")
        self.wait_status(200)
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
        self.assertEqual(st, 200, j)
        st, _, data = self.d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])
        self.assertIn("search connections work again", self.d.read_log())

    def test_killed_mid_search_then_back(self):
        """The server dies while a search waits in it: 503 at once (not at
        the deadline), the rest of the daemon answers, and when the server
        is back the search pool reconnects without a restart of moad."""
        cfg = self.pg.config("moa_faults").replace("statement_timeout_ms: 10000", "statement_timeout_ms: 60000")
        self.d = Daemon(config=cfg)
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
        self.assertEqual(st, 200, j)
        lock = self.pg.lock_chunks("moa_faults")
        chat = Background(self.d.chat, "How many days notice for an orbix flat?", moa={"agents": ["legal"]})
        self.pg.wait_searches("moa_faults")
        self.pg.pg_ctl("stop", mode="immediate")
        self.pg.release(lock)
        # well before the 60 s statement_timeout
        st, _, data = chat.result(timeout=30)
        self.assertEqual(st, 503, data)
        j = json.loads(data)
        self.assertEqual(j["error"]["code"], "knowledge_unavailable", j)
        self.assertIn("legal: its knowledge database is unavailable", j["error"]["message"])
        self.assertEqual(self.d.json("GET", "/healthz")[0], 200)
        # down: the pool refuses at once rather than waiting
        st, _, data = self.d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
        self.assertEqual(st, 503, data)
        self.pg.pg_ctl("start")
        self.wait_status(200)
        # the pool waits at most KB_PG_BACKOFF_MAX_USEC (5 s) before it tries again
        end = time.time() + 30
        while True:
            st, _, data = self.d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
            if st == 200 or time.time() > end:
                break
            time.sleep(0.5)
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])
        self.assertIn("search connections work again", self.d.read_log())

    def test_down_mid_request_then_back(self):
        self.d = Daemon(config=self.pg.config("moa_faults"))
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
        self.assertEqual(st, 200, j)
        self.pg.pg_ctl("stop")
        st, _, j = self.d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(st, 503, j)
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "other.md", "text": "Some lease text.", "source": "test"})
        self.assertEqual(st, 503, j)
        self.assertIn("ingest of 'other.md' into legal failed", j["error"]["message"])
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/orbix.md")
        self.assertEqual(st, 503, j)
        # a question its knowledge cannot be searched for: 503, not a
        # false "has no passage" answer
        st, _, data = self.d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
        self.assertEqual(st, 503, data)
        j = json.loads(data)
        self.assertEqual(j["error"]["code"], "knowledge_unavailable", j)
        self.assertIn("legal: its knowledge database is unavailable", j["error"]["message"])
        self.assertEqual(self.d.json("GET", "/readyz")[0], 503)
        self.pg.pg_ctl("start")
        self.wait_status(200)
        st, _, j = self.d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(st, 200, j)
        titles = [x["title"] for x in j["documents"]]
        self.assertIn("orbix.md", titles)
        self.assertNotIn("other.md", titles)  # the failed ingest left nothing
        st, _, data = self.d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
        self.assertEqual(st, 200, data)
        self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])


class ReadConninfo(unittest.TestCase):
    """knowledge.read_conninfo takes the search pool's connections (a
    standby, in production; another database here, so where a search read
    shows in its answer), while ingests and listings keep conninfo."""

    def test_searches_read_there_writes_do_not(self):
        PG.createdb("moa_rw")
        PG.createdb("moa_ro")
        extra = "  read_conninfo: \"%s\"\n  pool_size: 1\n  pool_queue: 4\n" % PG.conninfo("moa_ro")
        d = Daemon(config=PG.config("moa_rw", extra))
        try:
            st, _, j = d.json("POST", "/v1/moa/agents/legal/documents",
                              {"title": "orbix.md", "text": ORBIX_DOC, "source": "test"})
            self.assertEqual(st, 200, j)
            st, _, j = d.json("GET", "/v1/moa/agents/legal/documents?limit=1000")
            self.assertEqual(st, 200, j)
            self.assertIn("orbix.md", [x["title"] for x in j["documents"]])
            st, _, data = d.chat("How many days notice for an orbix flat?", moa={"agents": ["legal"]})
            self.assertEqual(st, 200, data)
            answer = json.loads(data)["choices"][0]["message"]["content"]
            self.assertNotIn("ninety days notice", answer)
            self.assertIn("has no passage", answer)
            self.assertEqual(d.json("GET", "/readyz")[0], 200)
            # the pool made the tables it found missing there, and wrote nothing
            self.assertEqual(PG.psql("SELECT count(*) FROM moa_kb_documents", "moa_ro"), "0")
            self.assertNotEqual(PG.psql("SELECT count(*) FROM moa_kb_documents", "moa_rw"), "0")
        finally:
            stop_clean(d)


class PoolBounds(unittest.TestCase):
    """knowledge.pool_size and pool_queue: with one connection and one
    place in the queue, while a search holds the connection (the chunks
    locked), of two more chats one waits and the other is refused at once
    (503 knowledge_unavailable); the defaults (4 and 256) would refuse
    neither."""

    Q = "How many days notice for an orbix flat?"

    def test_one_connection_one_waiting(self):
        PG.createdb("moa_pool")
        cfg = PG.config("moa_pool", "  pool_size: 1\n  pool_queue: 1\n")
        d = Daemon(config=cfg.replace("statement_timeout_ms: 10000", "statement_timeout_ms: 120000"))
        try:
            # a title the question does not name: one search per chat (a
            # named document is searched again, engine.c call_search_named)
            st, _, j = d.json("POST", "/v1/moa/agents/legal/documents",
                              {"title": "tenancy-terms.md", "text": ORBIX_DOC, "source": "test"})
            self.assertEqual(st, 200, j)
            lock = PG.lock_chunks("moa_pool")
            try:
                first = Background(d.chat, self.Q, moa={"agents": ["legal"]})
                PG.wait_searches("moa_pool")
                more = [Background(d.chat, self.Q, moa={"agents": ["legal"]}) for _ in range(2)]
                end = time.time() + 30
                while not any(b.done() for b in more) and time.time() < end:
                    time.sleep(0.05)
                refused = [b for b in more if b.done()]
                self.assertEqual(len(refused), 1, "no chat was refused: the pool has more than one "
                                 "connection or more than one place in its queue")
                st, _, data = refused[0].result()
                self.assertEqual(st, 503, data)
                self.assertEqual(json.loads(data)["error"]["code"], "knowledge_unavailable", data)
                self.assertEqual(PG.waiting_searches("moa_pool"), 1)
            finally:
                PG.release(lock)
            for b in [first] + [b for b in more if b not in refused]:
                st, _, data = b.result()
                self.assertEqual(st, 200, data)
                self.assertIn("ninety days notice", json.loads(data)["choices"][0]["message"]["content"])
        finally:
            stop_clean(d)


class Evaluations(unittest.TestCase):
    """The project's evaluation sets on PostgreSQL, with the SQLite floors
    (tests/knowledge.cmake, tests/plugins.cmake): retrieval recall@5 of
    the Debian Policy questions, and routing accuracy."""

    def run_eval(self, tool, *args):
        exe = os.path.join(BUILD, "tests", tool)
        if not os.access(exe, os.X_OK):
            self.fail("%s is not built" % exe)
        p = subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def test_retrieval(self):
        manual = "/usr/share/doc/debian-policy/policy.txt.gz"
        if not os.access(manual, os.R_OK):
            cannot_run("the Debian Policy Manual is not installed (package debian-policy)")
        PG.createdb("moa_retrieval")
        out = self.run_eval("retrieval-eval", "--data", os.path.join(SRC, "tests/data/retrieval/policy-questions.tsv"),
                            "--knowledge-dir", os.path.join(SRC, "agents.d/knowledge"), "--rounds", "0",
                            "--pg-conninfo", PG.conninfo("moa_retrieval"), "--pg-password-file", PG.password_file,
                            "--min-test-recall", "0.62")
        self.assertRegex(out, r"test  n= 60  recall@5 0\.[6-9]")
        # the evaluation removes what it ingested
        self.assertEqual(PG.psql("SELECT count(*) FROM moa_kb_documents", "moa_retrieval"), "0")

    def test_routing(self):
        PG.createdb("moa_routing")
        out = self.run_eval("routing-eval", "--data", os.path.join(SRC, "tests/data/routing-eval.tsv"),
                            "--plugin-dir", os.path.join(BUILD, "plugins"), "--agents-dir", os.path.join(SRC, "agents.d"),
                            "--pg-conninfo", PG.conninfo("moa_routing"), "--pg-password-file", PG.password_file,
                            "--min-test-accuracy", "0.90")
        self.assertIn("116 knowledge documents", out)
        # the agents were seeded into PostgreSQL, not SQLite files
        self.assertEqual(PG.psql("SELECT count(*) FROM moa_kb_documents", "moa_routing"), "116")


class Config(unittest.TestCase):
    """What a user sees of a bad knowledge: section."""

    def start_fails(self, yaml):
        """moad --check-config's complaint (stderr) about @yaml."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "moad.yaml")
            with open(path, "w") as f:
                f.write(yaml)
            p = subprocess.run([MOAD, "--check-config", "--config", path], capture_output=True, text=True,
                               timeout=30)
        self.assertNotEqual(p.returncode, 0, yaml)
        self.assertIn("moad.yaml:", p.stderr)
        return p.stderr

    def test_password_in_conninfo_is_refused(self):
        msg = self.start_fails("knowledge:\n  backend: postgresql\n  conninfo: \"host=/tmp password=hunter2\"\n")
        self.assertIn("put the password in 'knowledge.password_file'", msg)
        self.assertNotIn("hunter2", msg)

    def test_postgresql_needs_conninfo(self):
        msg = self.start_fails("knowledge:\n  backend: postgresql\n")
        self.assertIn("needs 'knowledge.conninfo'", msg)

    def test_pool_bounds(self):
        msg = self.start_fails("knowledge:\n  pool_size: 0\n")
        self.assertIn("moad.yaml:2:14: 'knowledge.pool_size' must be at least 1, not 0", msg)
        msg = self.start_fails("knowledge:\n  pool_size: 65\n")
        self.assertIn("'knowledge.pool_size' is out of range (at most 64)", msg)
        msg = self.start_fails("knowledge:\n  pool_queue: 70000\n")
        self.assertIn("'knowledge.pool_queue' is out of range (at most 65536)", msg)
        msg = self.start_fails("knowledge:\n  search_prune_chunks: 2000000000\n")
        self.assertIn("'knowledge.search_prune_chunks' is out of range (at most 1000000000)", msg)

    def test_password_in_read_conninfo_is_refused(self):
        msg = self.start_fails("knowledge:\n  backend: postgresql\n  conninfo: \"host=/tmp\"\n"
                               "  read_conninfo: \"host=/tmp password=hunter2\"\n")
        self.assertIn("not in 'knowledge.read_conninfo'", msg)
        self.assertNotIn("hunter2", msg)
        msg = self.start_fails("knowledge:\n  read_conninfo: \"host=/tmp nosuchkey=1\"\n")
        self.assertIn("invalid 'knowledge.read_conninfo'", msg)

    def test_unknown_backend(self):
        msg = self.start_fails("knowledge:\n  backend: mysql\n")
        self.assertIn("invalid value 'mysql' for 'knowledge.backend' (expected sqlite or postgresql)", msg)


if __name__ == "__main__":
    unittest.main()
