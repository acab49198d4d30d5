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

    def test_replaced_under_concurrency(self):
        """Eight clients ingest one new title at once: exactly one adds it,
        the other seven replace it (issue 12 item 7: 'replaced' was decided
        on the loop before the queued write, so several said false)."""
        results = []
        lock = threading.Lock()

        def one(i):
            st, _, j = self.ingest("legal", "race.md", "Race document version %d about zorblax rules." % i)
            with lock:
                results.append((st, j))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([st for st, _ in results], [200] * 8, results)
        self.assertEqual(sorted(j["replaced"] for _, j in results), [False] + [True] * 7, results)
        self.assertEqual(list(self.docs("legal")).count("race.md"), 1)
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/legal/documents/race.md")
        self.assertEqual(st, 200, j)

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

    def test_file_metadata(self):
        """The optional file fields of an ingest (issue 10): stored, listed
        (null when unknown), validated; the listing says the upload limit."""
        sha = "AB" * 32
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "meta/a.md", "text": "Lease text.", "source": "/srv/meta/a.md",
                                "sha256": sha, "size": 1234, "mtime": 1700000000})
        self.assertEqual(st, 200, j)
        st, _, j = self.d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertEqual(j["limits"], {"max_ingest_bytes": 16777216, "max_title_bytes": 512})
        d = {x["title"]: x for x in j["documents"]}["meta/a.md"]
        self.assertEqual((d["sha256"], d["size"], d["mtime"], d["source"]),
                         (sha.lower(), 1234, 1700000000, "/srv/meta/a.md"))
        self.assertGreater(d["ingested_at"], 1700000000)
        self.assertEqual(self.ingest("legal", "meta/b.md", "Lease text.")[0], 200)
        d = self.docs("legal")["meta/b.md"]
        self.assertEqual((d["sha256"], d["size"], d["mtime"]), (None, None, None))
        for field, value in (("sha256", "abc"), ("sha256", "g" * 64), ("sha256", 5), ("size", -1),
                             ("size", "12"), ("size", 1.5), ("mtime", -5), ("mtime", 2 ** 41), ("source", 7),
                             ("source", "x" * 5000)):
            with self.subTest(field=field, value=value):
                st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                                       {"title": "meta/bad.md", "text": "x", field: value})
                self.assertEqual(st, 400, j)
                self.assertEqual(j["error"]["param"], field)
        self.assertNotIn("meta/bad.md", self.docs("legal"))
        for t in ("meta/a.md", "meta/b.md"):
            self.assertEqual(self.d.json("DELETE", "/v1/moa/agents/legal/documents/" +
                                         urllib.parse.quote(t, safe=""))[0], 200)

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


RSA_LICENCE = (
    "Copyright (C) 1991-2, RSA Data Security, Inc. Created 1991. All rights reserved.\n\n"
    "License to copy and use this software is granted provided that it is identified as the \"RSA Data "
    "Security, Inc. MD%d Message-Digest Algorithm\" in all material mentioning or referencing this software "
    "or this function. RSA Data Security, Inc. makes no representations concerning either the "
    "merchantability of this software or the suitability of this software for any particular purpose. "
    "These notices must be retained in any copies of any part of this documentation and/or software.\n")

TLS_DOC = """# TLS certificate verification

When a TLS client connects, the server sends its certificate chain. The client verifies that the chain leads
to a trusted root certificate authority, that every certificate is within its validity period, and that the
server certificate's subject alternative name matches the host name it connected to. If any check fails, the
TLS handshake is aborted. Pinning a certificate or public key restricts which certificates a client accepts.
"""

MIETE_DOC = """# Mietkaution

Die Mietkaution darf höchstens drei Nettokaltmieten betragen. Der Vermieter muss die Kaution getrennt von
seinem Vermögen anlegen. Die Kündigungsfrist für Mieter beträgt drei Monate.
"""

BAIL_DOC = """# Le dépôt de garantie

Le dépôt de garantie ne peut pas dépasser un mois de loyer hors charges. Le propriétaire doit restituer le
dépôt de garantie dans un délai de deux mois. Le bail d'habitation est conclu pour une durée de trois ans.
"""


class Relevance(DaemonTestCase):
    """What a user sees from the builtin provider: the passage that answers
    first, no filler, and a plain not-found sentence."""

    def ingest(self, agent, title, text):
        st, _, j = self.d.json("POST", "/v1/moa/agents/%s/documents" % agent,
                               {"title": title, "text": text, "source": "test"})
        self.assertEqual(st, 200, j)

    def delete(self, agent, title):
        st, _, j = self.d.json("DELETE", "/v1/moa/agents/%s/documents/%s" % (agent, urllib.parse.quote(title, safe="")))
        self.assertEqual(st, 200, j)

    def n_docs(self, agent):
        return len(self.d.json("GET", "/v1/moa/agents/%s/documents" % agent)[2]["documents"])

    def ask(self, q, agents, **moa):
        moa["agents"] = agents
        st, _, data = self.d.chat(q, moa=moa)
        self.assertEqual(st, 200, data)
        return json.loads(data)["choices"][0]["message"]["content"]

    @staticmethod
    def body(answer):
        """The answer without its Sources list and the plugin's notice."""
        return answer.split("\n\nSources:")[0].split("\n\n")[0]

    def test_not_found_after_delete(self):
        q = "When must a landlord return the blinvex deposit?"
        self.ingest("legal", "blinvex.md", DOC.replace("Zorblax", "Blinvex").replace("zorblax", "blinvex"))
        a = self.ask(q, ["legal"])
        self.assertTrue(a.startswith("The Blinvex tenancy rule says that a landlord must return a blinvex deposit "
                                     "within fourteen days"), a)
        self.assertIn("blinvex.md", a)
        self.delete("legal", "blinvex.md")
        a = self.ask(q, ["legal"])
        # one sentence, no filler from the tenancy page that shares "landlord", "deposit", "return"
        self.assertEqual(self.body(a), "The legal knowledge base (%d documents) has no passage about "
                         "\"blinvex deposit\"." % self.n_docs("legal"))
        self.assertNotIn("Sources:", a)

    def test_ambiguous_word_is_not_an_answer(self):
        titles = ["licence-md%d-%d.txt" % (i % 4 + 2, i) for i in range(12)]
        for i, t in enumerate(titles):
            self.ingest("legal", t, RSA_LICENCE % (i % 4 + 2))
        try:
            a = self.body(self.ask("What is a security deposit?", ["legal"]))
            self.assertNotIn("RSA", a)
            sentences = [x for x in a.split("]. ") if x]
            for x in sentences:
                self.assertRegex(x, r"(?i)deposit", a)
            self.assertTrue(a.startswith("Most landlords take a deposit") or "no passage about" in a, a)
        finally:
            for t in titles:
                self.delete("legal", t)

    def test_weak_agent_adds_nothing(self):
        # Pinned agents weigh the same; the router's score still says that
        # "general" is far weaker evidence for a TLS question than "code".
        self.ingest("code", "tls.md", TLS_DOC)
        self.ingest("general", "tls-gossip.md", "People say a TLS client verifies the server certificate by asking "
                    "a friend who knows the server.")
        try:
            q = "How does a TLS client verify the server certificate?"
            st, _, data = self.d.chat(q, moa={"agents": ["code", "general"], "trace": True, "trace_content": True})
            self.assertEqual(st, 200, data)
            j = json.loads(data)
            proposals = {c["agent"]: c.get("content", "") for c in j["moa"]["layers"][0]}
            self.assertIn("asking a friend", proposals["general"])  # its own answer has it ...
            a = j["choices"][0]["message"]["content"]
            self.assertNotIn("asking a friend", a, a)  # ... the merged answer does not
            body, sources = a.split("\n\nSources:\n")
            # every sentence comes from code's knowledge (the ingested TLS page
            # or code's own TLS notes), the best one first; none from general
            self.assertTrue(body.startswith("The client verifies that the chain leads to a trusted root "
                                            "certificate authority"), a)
            self.assertIn("tls.md, chunk", sources)
            self.assertEqual([l for l in sources.strip().split("\n") if not l.endswith("(code)")], [], a)
            self.assertLessEqual(len(body.split()), 200)
        finally:
            self.delete("code", "tls.md")
            self.delete("general", "tls-gossip.md")

    def test_german_and_french(self):
        self.ingest("legal", "miete.md", MIETE_DOC)
        self.ingest("legal", "bail.md", BAIL_DOC)
        try:
            a = self.body(self.ask("Wie hoch darf die Mietkaution sein?", ["legal"]))
            self.assertTrue(a.startswith("Die Mietkaution darf höchstens drei Nettokaltmieten betragen [1]."), a)
            self.assertNotIn("Kündigungsfrist", a)
            a = self.body(self.ask("Quand le propriétaire doit-il restituer le dépôt de garantie ?", ["legal"]))
            self.assertTrue(a.startswith("Le propriétaire doit restituer le dépôt de garantie dans un délai de deux "
                                         "mois [1]."), a)
            self.assertNotIn("bail d'habitation", a)
        finally:
            self.delete("legal", "miete.md")
            self.delete("legal", "bail.md")


if __name__ == "__main__":
    unittest.main()
