"""Nothing stalls the loop (issue 12 item 4): knowledge-base writes run on
the ingest worker, and plugin callbacks run on threads with a time budget."""
import os
import sqlite3
import threading
import time
import unittest

from moadtest import DaemonTestCase


def in_thread(fn, *args):
    """Run fn(*args) on a thread; returns (thread, result list)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    return t, out


class DeleteOffLoop(DaemonTestCase):
    def kb(self, agent):
        return os.path.join(self.d.state, "kb", agent + ".db")

    def ingest(self, title, text):
        return self.d.json("POST", "/v1/moa/agents/legal/documents", {"title": title, "text": text})

    def test_busy_database_gives_503_and_the_loop_keeps_answering(self):
        st, _, _ = self.ingest("busy.md", "A document about a quorx clause.")
        self.assertEqual(st, 200)
        db = sqlite3.connect(self.kb("legal"), timeout=1, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # another writer holds the database
        try:
            t, out = in_thread(self.d.json, "DELETE", "/v1/moa/agents/legal/documents/busy.md")
            time.sleep(0.3)
            started = time.monotonic()
            st, _, h = self.d.json("GET", "/healthz")
            took = time.monotonic() - started
            self.assertEqual((st, h["status"]), (200, "ok"))
            # The delete waits for SQLite's 5 s busy timeout; it used to hold
            # the loop that long, so /healthz came after it.
            self.assertTrue(t.is_alive(), "the delete answered before /healthz: it did not wait for the lock")
            self.assertLess(took, 3.0)
            t.join(30)
        finally:
            db.execute("ROLLBACK")
            db.close()
        st, h, j = out[0]
        self.assertEqual(st, 503, j)
        self.assertEqual(h.get("retry-after"), "1")
        self.assertEqual(j["error"]["code"], "database_busy")
        self.assertIn("busy", j["error"]["message"])
        # nothing was deleted, and with the lock gone the delete succeeds
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/busy.md")
        self.assertEqual((st, j), (200, {"deleted": True, "title": "busy.md"}))
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/busy.md")
        self.assertEqual(st, 404)
        self.assertEqual(j["error"]["code"], "document_not_found")

    def test_delete_during_a_long_ingest(self):
        st, _, _ = self.ingest("gone.md", "A short document about a zwelt clause.")
        self.assertEqual(st, 200)
        big = " ".join("word%d clause tenancy deposit." % (i % 5000) for i in range(500000))
        ti, ing = in_thread(self.ingest, "big.md", big)
        time.sleep(0.2)
        td, dele = in_thread(self.d.json, "DELETE", "/v1/moa/agents/legal/documents/gone.md")
        time.sleep(0.1)
        answered_while_busy = 0
        for _ in range(5):
            st, _, _ = self.d.request("GET", "/healthz")
            self.assertEqual(st, 200)
            if ti.is_alive():
                answered_while_busy += 1
        st, _, r = self.d.json("POST", "/v1/moa/route", {"query": "deposit"})
        self.assertEqual(st, 200)
        if ti.is_alive():
            answered_while_busy += 1
        ti.join(120)
        td.join(120)
        self.assertEqual(ing[0][0], 200, ing[0][2])
        self.assertEqual(dele[0][0], 200, dele[0][2])
        self.assertGreater(answered_while_busy, 0, "the ingest ended before any other request: too short to show it")
        st, _, docs = self.d.json("GET", "/v1/moa/agents/legal/documents")
        titles = [d["title"] for d in docs["documents"]]
        self.assertIn("big.md", titles)
        self.assertNotIn("gone.md", titles)


if __name__ == "__main__":
    unittest.main()
