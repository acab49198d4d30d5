"""Questions about attached documents (moa.documents, moactl ask -f) and
knowledge restricted to some documents (moa.doc_filter, --doc), against
the real daemon on the shipped agents and the builtin provider; the
prompt a model gets, against the mock upstream."""
import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from moadtest import MOACTL, Daemon, DaemonTestCase
from test_citations import stop_checked
from test_engine import Mock, agents_dir

CONTRACT = """# Service agreement

## 4. Payment

The customer pays each invoice within 45 days of receipt. Late payments carry interest at 8% per year
above the base rate of the central bank.

## 9. Termination

Either party may terminate this agreement with 90 days' written notice. The supplier may terminate at
once if an invoice is unpaid for more than 60 days.
"""


def ws(s):
    return re.sub(r"\s+", " ", s)


class Attached(DaemonTestCase):
    config = """
limits:
  max_ask_documents: 3
  max_ask_document_bytes: 4000
  max_ask_bytes: 6000
  max_body_bytes: 20000
"""

    def ask(self, q, model="legal", **moa):
        st, _, data = self.d.chat(q, model=model, moa=moa)
        return st, json.loads(data)

    def test_answer_quotes_the_file_which_is_not_stored(self):
        st, j = self.ask("How much notice is needed to terminate the agreement?",
                         documents=[{"title": "nda/contract.md", "source": "/srv/contract.md", "text": CONTRACT}])
        self.assertEqual(st, 200, j)
        answer = j["choices"][0]["message"]["content"]
        self.assertIn("90 days' written notice [1]", answer)
        self.assertIn("[1] nda/contract.md, chunk ", answer)
        att = [c for c in j["moa"]["citations"] if c["attached"]]
        self.assertTrue(att, j["moa"])
        for c in att:
            self.assertEqual((c["document"], c["source"], c["agent"]), ("nda/contract.md", "/srv/contract.md", "legal"))
            self.assertIn(c["quote"] + " [", answer)
            self.assertIn(ws(c["quote"]), ws(CONTRACT))
        # context for this question only: no agent stores it
        for agent in ("legal", "finance"):
            st, _, docs = self.d.json("GET", "/v1/moa/agents/%s/documents" % agent)
            self.assertNotIn("nda/contract.md", [d["title"] for d in docs["documents"]])
        st, j = self.ask("How much notice is needed to terminate the agreement?")
        self.assertNotIn("nda/contract.md", j["choices"][0]["message"]["content"])

    def test_each_specialist_retrieves_from_the_files(self):
        st, _, j = self.d.json("POST", "/v1/chat/completions", {
            "model": "moa", "messages": [{"role": "user", "content": "What interest is charged on late payments?"}],
            "moa": {"agents": ["legal", "finance"], "trace": True, "trace_content": True,
                    "documents": [{"title": "contract.md", "text": CONTRACT}]}})
        self.assertEqual(st, 200, j)
        proposals = {c["agent"]: c["content"] for c in j["moa"]["layers"][0]}
        self.assertEqual(set(proposals), {"legal", "finance"})
        for agent, text in proposals.items():
            self.assertIn("8% per year", text, agent)
            self.assertRegex(text, r"(?m)^\[\d+\] contract\.md, chunk \d+$", agent)
        self.assertIn("8% per year", j["choices"][0]["message"]["content"])

    def test_doc_filter(self):
        st, j = self.ask("What is a security deposit?", doc_filter=["tenancy*"])
        self.assertEqual(st, 200, j)
        docs = {c["document"] for c in j["moa"]["citations"]}
        self.assertEqual(docs, {"tenancy.md"})
        st, j = self.ask("What is a security deposit?", doc_filter=["contract-basics.md"])
        self.assertTrue(all(c["document"] == "contract-basics.md" for c in j["moa"]["citations"]), j)
        st, j = self.ask("What is a security deposit?", doc_filter=["no-such-*"])
        self.assertIn("has no passage", j["choices"][0]["message"]["content"])
        self.assertEqual(j["moa"]["citations"], [])

    def test_limits_and_validation(self):
        doc = {"title": "a.md", "text": "x " * 100}
        cases = [
            ({"documents": [doc] * 4}, 400, "too_many_documents", "max_ask_documents"),
            ({"documents": [{"title": "big.md", "text": "y" * 4001}]}, 413, "document_too_large",
             "'big.md' has 4001 bytes, more than limits.max_ask_document_bytes (4000)"),
            # past max_body_bytes too: the document's own limit is what is reported
            ({"documents": [{"title": "huge.md", "text": "y" * 21000}]}, 413, "document_too_large", "'huge.md'"),
            ({"documents": [{"title": "b%d.md" % i, "text": "z" * 3000} for i in range(3)]}, 413,
             "documents_too_large", "max_ask_bytes"),
            ({"documents": {"title": "a"}}, 400, "invalid_type", "moa.documents"),
            ({"documents": [{"text": "t"}]}, 400, "invalid_value", "title"),
            ({"documents": [{"title": "a", "text": ""}]}, 400, "invalid_value", "text"),
            ({"documents": [{"title": "a", "text": "t", "source": 3}]}, 400, "invalid_value", "source"),
            ({"doc_filter": "x"}, 400, "invalid_type", "moa.doc_filter"),
            ({"doc_filter": [""]}, 400, "invalid_value", "moa.doc_filter"),
        ]
        for moa, status, code, text in cases:
            st, j = self.ask("q", **moa)
            self.assertEqual(st, status, (moa, j))
            self.assertEqual(j["error"]["code"], code, j)
            self.assertIn(text, j["error"]["message"] + (j["error"]["param"] or ""), j)
        # without documents the body limit is max_body_bytes
        st, _, data = self.d.chat("q " * 12000, model="legal")
        self.assertEqual(st, 413, data)
        # with documents up to max_body_bytes + max_ask_bytes
        st, j = self.ask("How much notice is needed to terminate the agreement?",
                         documents=[{"title": "c.md", "text": CONTRACT}, {"title": "pad.md", "text": "w " * 1900}])
        self.assertEqual(st, 200, j)

    def moactl(self, *args, stdin=None):
        env = dict(os.environ, MOAD_SOCKET=self.d.socket)
        return subprocess.run([MOACTL] + list(args), capture_output=True, text=True, env=env, timeout=60,
                              input=stdin)

    def test_moactl_files(self):
        tmp = tempfile.mkdtemp(prefix="moactl-ask-")
        try:
            paths = {
                "contract.md.gz": gzip.compress(CONTRACT.encode()),
                "vertrag.txt": "Kündigung: Either party may terminate this agreement with 90 days' written notice.\n"
                               .encode("latin-1"),
                "page.html": ("<html><body><h1>Terms</h1><p>Either party may terminate this agreement with "
                              "90 days' written notice.</p></body></html>").encode(),
                "big.txt": b"Either party may terminate. " * 200,
                "bin": b"\x7fELF\x00\x00\x01\x02" * 10,
            }
            for name, data in paths.items():
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(data)
            q = "How much notice is needed to terminate the agreement?"
            for name in ("contract.md.gz", "vertrag.txt", "page.html"):
                p = os.path.join(tmp, name)
                r = self.moactl("--json", "-m", "legal", "ask", "-f", p, q)
                self.assertEqual(r.returncode, 0, r.stderr)
                j = json.loads(r.stdout)
                att = [c for c in j["moa"]["citations"] if c["attached"]]
                self.assertTrue(att, (name, j))
                self.assertEqual({(c["document"], c["source"]) for c in att}, {(p, p)})
                self.assertIn("90 days' written notice", j["choices"][0]["message"]["content"])
            # standard input, plain output with the Sources list
            r = self.moactl("-m", "legal", "ask", "-f", "-", q, stdin=CONTRACT)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"\nSources:\n\[1\] stdin, chunk \d+\n")
            self.assertRegex(r.stdout, r"\nFiles:\n\[1\] stdin \(attached\)\n")
            # refused before sending, saying which file and why
            r = self.moactl("ask", "-f", os.path.join(tmp, "bin"), q)
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot attach %s: not text" % os.path.join(tmp, "bin"), r.stderr)
            r = self.moactl("ask", "-f", os.path.join(tmp, "nope"), q)
            self.assertEqual(r.returncode, 1)
            self.assertIn("No such file", r.stderr)
            r = self.moactl("ask", "-f", "-", "-", stdin="x")
            self.assertEqual(r.returncode, 2, r.stderr)
            r = self.moactl("route", "-f", os.path.join(tmp, "nope"), q)
            self.assertEqual(r.returncode, 2)
            self.assertIn("-f is an option of ask only", r.stderr)
            # the daemon's limit, with its reason
            r = self.moactl("ask", "-f", os.path.join(tmp, "big.txt"), q)
            self.assertEqual(r.returncode, 1)
            self.assertIn("limits.max_ask_document_bytes (4000)", r.stderr)
            # --doc
            r = self.moactl("--json", "-m", "legal", "ask", "--doc", "tenancy*", "What is a security deposit?")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual({c["document"] for c in json.loads(r.stdout)["moa"]["citations"]}, {"tenancy.md"})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class ModelPrompt(unittest.TestCase):
    """A model gets the attached passages in its prompt, numbered, before
    its knowledge; the citations say which are attached."""

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = agents_dir({"legal": "echo"})
        cls.d = Daemon(config="providers:\n  - name: mock\n    type: openai\n    base_url: %s\n"
                              "    model: echo\n    max_retries: 0\n" % cls.mock.url,
                       agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.d)
        cls.mock.stop()
        shutil.rmtree(cls.agents, ignore_errors=True)

    def test_prompt(self):
        st, _, data = self.d.chat("How much notice is needed to terminate the agreement?", model="legal",
                                  moa={"documents": [{"title": "contract.md", "source": "/srv/c.md", "text": CONTRACT}]})
        self.assertEqual(st, 200, data)
        cites = json.loads(data)["moa"]["citations"]
        prompt = self.mock.last("echo")["messages"][0]["content"]
        self.assertIn("[1] contract.md (/srv/c.md), part ", prompt)
        self.assertIn("90 days' written notice", prompt)
        self.assertTrue(cites[0]["attached"])
        self.assertEqual((cites[0]["number"], cites[0]["document"]), (1, "contract.md"))
        self.assertEqual([c["attached"] for c in cites], sorted((c["attached"] for c in cites), reverse=True))


if __name__ == "__main__":
    unittest.main()
