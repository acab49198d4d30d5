"""Listing an agent's documents and the agents (issue 12: nothing that can
take long runs on the event loop): pages of at most 1000 documents by
title in byte order (?limit, ?after, has_more), read on the reader
thread, so a locked database answers 503 database_busy while the loop
keeps answering; moactl docs follows the pages. test_pg.py runs Paging
again on PostgreSQL."""
import fcntl
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from moadtest import MOACTL, DaemonTestCase

AGENT = "code"
PATH = "/v1/moa/agents/%s/documents" % AGENT
# byte order puts upper case before lower case and UTF-8 after ASCII
TITLES = ["page-%02d.md" % i for i in range(23)] + ["Zeta.md", "a b.md", "a/b.md", "alpha.md", "\u00e9t\u00e9.md",
                                                    "\u65e5\u672c.md"]


def in_thread(fn, *args):
    out = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    return t, out


def ingest_all(d, titles, agent=AGENT):
    """Ingests one short document per title, 8 at a time."""
    def one(t):
        st, _, data = d.request("POST", "/v1/moa/agents/%s/documents" % agent,
                                {"title": t, "text": "Notes on %s: a quux widget." % t})
        return st, data
    with ThreadPoolExecutor(8) as ex:
        for st, data in ex.map(one, titles):
            if st != 200:
                raise AssertionError("ingest failed: %d %r" % (st, data))


class Paging(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ingest_all(cls.d, TITLES)

    def page(self, **q):
        st, h, j = self.d.json("GET", PATH + ("?" + urllib.parse.urlencode(q) if q else ""))
        self.assertEqual(st, 200, j)
        return j

    def test_pages_cover_the_listing_in_byte_order(self):
        full = self.page()
        titles = [d["title"] for d in full["documents"]]
        self.assertFalse(full["has_more"])
        self.assertEqual(titles, sorted(titles, key=lambda t: t.encode()))
        for t in TITLES:
            self.assertIn(t, titles)
        self.assertEqual(full["limits"]["max_title_bytes"], 512)
        got, after, pages = [], None, 0
        while True:
            j = self.page(limit=7, **({"after": after} if after is not None else {}))
            pages += 1
            self.assertLessEqual(len(j["documents"]), 7)
            self.assertEqual(j["agent"], AGENT)
            got += j["documents"]
            if not j["has_more"]:
                break
            self.assertEqual(len(j["documents"]), 7)
            after = j["documents"][-1]["title"]
        self.assertEqual(got, full["documents"])
        self.assertEqual(pages, (len(titles) + 6) // 7)

    def test_after_a_title_that_is_not_there(self):
        titles = [d["title"] for d in self.page()["documents"]]
        j = self.page(after="page-05.mdx", limit=2)
        self.assertEqual([d["title"] for d in j["documents"]], ["page-06.md", "page-07.md"])
        self.assertTrue(j["has_more"])
        j = self.page(after=titles[-1])
        self.assertEqual((j["documents"], j["has_more"]), ([], False))
        j = self.page(after="")
        self.assertEqual([d["title"] for d in j["documents"]], titles)

    def test_bad_paging_is_400(self):
        for lim in ["0", "1001", "abc", "-1", "+5", " 5", "", "1e3", "99999999999999999999"]:
            st, _, j = self.d.json("GET", PATH + "?limit=" + urllib.parse.quote(lim))
            self.assertEqual((st, j["error"]["param"]), (400, "limit"), lim)
            self.assertIn("from 1 to 1000", j["error"]["message"])
        st, _, j = self.d.json("GET", PATH + "?after=" + "x" * 513)
        self.assertEqual((st, j["error"]["param"]), (400, "after"))
        st, _, j = self.d.json("GET", PATH + "?after=" + "x" * 512)
        self.assertEqual(st, 200)

    def test_head_has_the_get_headers_and_no_body(self):
        st, h, data = self.d.request("HEAD", PATH + "?limit=1")
        self.assertEqual((st, data), (200, b""))
        self.assertEqual(h["content-type"], "application/json")

    def test_agents_count_the_documents(self):
        st, _, j = self.d.json("GET", "/v1/moa/agents")
        self.assertEqual(st, 200, j)
        counts = {a["name"]: a["documents"] for a in j["agents"]}
        for name, n in counts.items():
            st, _, docs = self.d.json("GET", "/v1/moa/agents/%s/documents" % name)
            self.assertEqual(n, len(docs["documents"]), name)
        self.assertGreaterEqual(counts[AGENT], len(TITLES))


class MoreThanAPage(DaemonTestCase):
    """1001 documents: the default page is the largest, 1000, and moactl
    docs (table and --json) and moactl ingest's comparison follow the
    pages to the last one."""

    N = 1001

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.titles = ["doc-%04d.md" % i for i in range(cls.N)]
        ingest_all(cls.d, cls.titles)

    def moactl(self, *args):
        return subprocess.run([MOACTL, "--socket", self.d.socket] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=120)

    def test_default_page_is_1000(self):
        st, _, j = self.d.json("GET", PATH)
        self.assertEqual(st, 200)
        self.assertEqual(len(j["documents"]), 1000)
        self.assertTrue(j["has_more"])
        st, _, j2 = self.d.json("GET", PATH + "?after=" + urllib.parse.quote(j["documents"][-1]["title"]))
        self.assertFalse(j2["has_more"])
        self.assertGreaterEqual(len(j2["documents"]), 1)

    def test_moactl_docs_lists_every_page(self):
        p = self.moactl("docs", "--agent", AGENT, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(p.stdout)
        titles = [d["title"] for d in j["documents"]]
        self.assertEqual(len(titles), len(set(titles)))
        for t in self.titles:
            self.assertIn(t, titles)
        self.assertFalse(j["has_more"])
        p = self.moactl("docs", "--agent", AGENT)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [l.split()[0] for l in p.stdout.splitlines()[1:] if l.strip()]
        self.assertIn("doc-0000.md", lines)
        self.assertIn("doc-%04d.md" % (self.N - 1), lines)
        self.assertEqual(len(lines), len(titles))

    def test_moactl_ingest_knows_documents_past_the_first_page(self):
        # the last title is on the second page: an unchanged file is not sent again
        st, _, j = self.d.json("GET", PATH)
        self.assertNotIn("doc-%04d.md" % (self.N - 1), [d["title"] for d in j["documents"]])
        with open(os.path.join(self.d.dir, "doc-%04d.md" % (self.N - 1)), "w") as f:
            f.write("Notes on doc-%04d.md: a quux widget." % (self.N - 1))
        p = self.moactl("ingest", "--agent", AGENT, os.path.join(self.d.dir, "doc-%04d.md" % (self.N - 1)))
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.moactl("ingest", "--agent", AGENT, os.path.join(self.d.dir, "doc-%04d.md" % (self.N - 1)))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("unchanged", p.stderr + p.stdout)


def lock_wal_readers(db, seconds):
    """Another process takes every WAL read lock of @db (bytes 123-127 of
    its -shm file, SQLite's documented WAL-index locks) for @seconds: no
    connection can begin a read, as during a long WAL recovery. Returns
    the process once the locks are held."""
    script = ("import fcntl, os, sys, time\n"
              "fd = os.open(sys.argv[1], os.O_RDWR)\n"
              "end = time.time() + 10\n"
              "while True:\n"
              "    try:\n"
              "        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 123)\n"
              "        break\n"
              "    except OSError:\n"
              "        if time.time() > end: sys.exit(1)\n"
              "        time.sleep(0.01)\n"
              "print('locked', flush=True)\n"
              "time.sleep(float(sys.argv[2]))\n")
    p = subprocess.Popen(["python3", "-c", script, db + "-shm", str(seconds)], stdout=subprocess.PIPE,
                         universal_newlines=True)
    line = p.stdout.readline().strip()
    p.stdout.close()
    if line != "locked":
        p.kill()
        p.wait()
        raise AssertionError("could not take the WAL read locks of " + db)
    return p


class ReadsOffLoop(DaemonTestCase):
    def test_a_locked_database_gives_503_and_the_loop_keeps_answering(self):
        db = os.path.join(self.d.state, "kb", AGENT + ".db")
        self.assertTrue(os.path.exists(db + "-shm"))
        p = lock_wal_readers(db, 30)
        try:
            tl, listed = in_thread(self.d.json, "GET", PATH)
            ta, agents = in_thread(self.d.json, "GET", "/v1/moa/agents")
            time.sleep(0.5)
            for _ in range(3):
                st, _, j = self.d.json("GET", "/healthz")
                self.assertEqual((st, j["status"]), (200, "ok"))
            # SQLite gives up after about 10 s of taken read locks; until
            # then both wait off the loop, which answered /healthz meanwhile
            self.assertTrue(tl.is_alive() and ta.is_alive(),
                            "a listing answered before /healthz: it did not wait for the lock")
            tl.join(60)
            ta.join(60)
        finally:
            p.kill()
            p.wait()
        for st, h, j in (listed[0], agents[0]):
            self.assertEqual((st, h.get("retry-after"), j["error"]["code"]), (503, "1", "database_busy"), j)
            self.assertIn("try again", j["error"]["message"])
            self.assertNotIn("nothing was", j["error"]["message"])
        # with the locks gone both answer again
        st, _, j = self.d.json("GET", PATH)
        self.assertEqual(st, 200, j)
        st, _, j = self.d.json("GET", "/v1/moa/agents")
        self.assertEqual(st, 200, j)
        self.assertIsInstance(j["agents"][0]["documents"], int)

    def test_a_full_reader_queue_gives_429(self):
        """One listing waits for the locks, 64 wait behind it; past them
        429 queue_full with Retry-After, and the rest are answered once
        the locks are gone."""
        db = os.path.join(self.d.state, "kb", AGENT + ".db")
        p = lock_wal_readers(db, 3)
        socks = []
        try:
            for _ in range(70):
                c = self.d.conn()
                c.request("GET", PATH + "?limit=1")
                socks.append(c)
            answers = []
            for c in socks:
                r = c.getresponse()
                body = json.loads(r.read())
                answers.append((r.status, r.getheader("Retry-After"), body))
        finally:
            for c in socks:
                c.close()
            p.wait()
        busy = [a for a in answers if a[0] == 429]
        # 64 queued, and the first one either running or still queued
        self.assertIn(len(busy), (70 - 65, 70 - 64), [a[0] for a in answers])
        for st, ra, body in busy:
            self.assertEqual((ra, body["error"]["code"]), ("1", "queue_full"))
        self.assertEqual([a[0] for a in answers if a[0] != 429], [200] * (70 - len(busy)))

    def test_a_client_gone_during_a_listing(self):
        """The listing's answer has nowhere to go: nothing leaks or
        crashes (ASan), and the daemon answers the next one."""
        db = os.path.join(self.d.state, "kb", AGENT + ".db")
        p = lock_wal_readers(db, 1.5)
        try:
            c = self.d.conn()
            c.request("GET", PATH)
            c2 = self.d.conn()
            c2.request("GET", "/v1/moa/agents")
            time.sleep(0.3)
            c.close()
            c2.close()
        finally:
            p.wait()
        st, _, j = self.d.json("GET", PATH)
        self.assertEqual(st, 200, j)


if __name__ == "__main__":
    unittest.main()
