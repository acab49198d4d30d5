"""Knowledge workflows through the API: ingest, list, replace, delete,
route and ask with citations of the new document, and ingest that does not
block request serving."""
import json
import threading
import time
import unittest
import urllib.parse

from moadtest import DaemonTestCase

DOC = """# Zorblax tenancy rules

The Zorblax tenancy rule says that a landlord must return a zorblax deposit
within fourteen days after the tenant leaves. A zorblax deposit may only be
reduced for damage beyond normal wear and tear. Tenants can claim twice the
zorblax deposit when the landlord misses the deadline.
"""


class Documents(DaemonTestCase):
    def ingest(self, agent, title, text, source="test"):
        return self.d.json("POST", "/v1/moa/agents/%s/documents" % agent,
                           {"title": title, "text": text, "source": source})

    def docs(self, agent):
        st, _, j = self.d.json("GET", "/v1/moa/agents/%s/documents" % agent)
        self.assertEqual(st, 200)
        return {d["title"]: d for d in j["documents"]}

    def test_ingest_ask_cite_replace_delete(self):
        st, _, j = self.ingest("legal", "zorblax.md", DOC)
        self.assertEqual(st, 200, j)
        self.assertEqual(j["agent"], "legal")
        self.assertGreaterEqual(j["chunks"], 1)
        self.assertFalse(j["replaced"])
        self.assertIn("zorblax.md", self.docs("legal"))

        # the router sees the new evidence, the answer cites the new document
        st, _, r = self.d.json("POST", "/v1/moa/route", {"query": "When must a landlord return the zorblax deposit?"})
        self.assertIn("legal", r["selected"])
        st, _, data = self.d.chat("When must a landlord return the zorblax deposit?", moa={"agents": ["legal"]})
        self.assertEqual(st, 200, data)
        answer = json.loads(data)["choices"][0]["message"]["content"]
        self.assertIn("fourteen days", answer)
        self.assertIn("zorblax.md", answer)

        # same title again: replaced, not duplicated
        st, _, j = self.ingest("legal", "zorblax.md", DOC.replace("fourteen", "thirty"))
        self.assertEqual(st, 200, j)
        self.assertTrue(j["replaced"])
        self.assertEqual(list(self.docs("legal")).count("zorblax.md"), 1)
        st, _, data = self.d.chat("When must a landlord return the zorblax deposit?", moa={"agents": ["legal"]})
        answer = json.loads(data)["choices"][0]["message"]["content"]
        self.assertIn("thirty days", answer)
        self.assertNotIn("fourteen days", answer)

        # delete (title URL-encoded)
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/zorblax%2Emd")
        self.assertEqual(st, 200, j)
        self.assertNotIn("zorblax.md", self.docs("legal"))
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/zorblax.md")
        self.assertEqual(st, 404)
        # titles with spaces, percent signs and slashes round-trip through the URL
        for title in ("my notes.md", "50% off.md", "a%41.md", "dir/x.md"):
            self.assertEqual(self.ingest("legal", title, "Some text about a lease.")[0], 200)
            enc = urllib.parse.quote(title, safe="")
            st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/" + enc)
            self.assertEqual(st, 200, (title, j))
            self.assertEqual(j["title"], title)

    def test_bad_ingest_requests(self):
        self.assertEqual(self.ingest("astrology", "x", "y")[0], 404)
        self.assertEqual(self.ingest("legal", "", "y")[0], 400)
        self.assertEqual(self.ingest("legal", "x", "")[0], 400)
        self.assertEqual(self.ingest("legal", "x" * 600, "y")[0], 400)
        st, _, _ = self.d.request("POST", "/v1/moa/agents/legal/documents", b"not json",
                                  {"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        st, _, _ = self.d.request("POST", "/v1/moa/agents/legal/documents", b"{}", {"Content-Type": "text/plain"})
        self.assertEqual(st, 415)
        self.assertEqual(self.d.request("PUT", "/v1/moa/agents/legal/documents")[0], 405)
        self.assertEqual(self.d.request("GET", "/v1/moa/agents/legal/other")[0], 404)
        # non-UTF-8 is not valid JSON text: refused, nothing stored
        st, _, _ = self.d.request("POST", "/v1/moa/agents/legal/documents",
                                  b'{"title":"bad","text":"\xff\xfe"}', {"Content-Type": "application/json"})
        self.assertEqual(st, 400)
        self.assertNotIn("bad", self.docs("legal"))

    def test_batch_ingest_does_not_block_serving(self):
        # 60 documents of ~60 KB each into the code agent while questions are asked.
        body = ("The frobnicator library handles sockets and buffers. " * 1100)
        errors = []

        def ingest_all():
            for i in range(60):
                st, _, j = self.ingest("code", "bulk-%02d.md" % i, "# Bulk %d\n\n%s" % (i, body))
                if st != 200:
                    errors.append((st, j))

        t = threading.Thread(target=ingest_all)
        t.start()
        answered = 0
        while t.is_alive():
            st, _, _ = self.d.chat("What is a segmentation fault?", moa={"agents": ["code"]})
            self.assertEqual(st, 200)
            answered += 1
        t.join()
        self.assertEqual(errors, [])
        self.assertGreater(answered, 0)
        self.assertEqual(len([t for t in self.docs("code") if t.startswith("bulk-")]), 60)


if __name__ == "__main__":
    unittest.main()
