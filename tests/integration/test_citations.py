"""moa.citations against the real daemon: the builtin provider's quotes are
found word for word in the answer and in the chunk they cite (read from the
agent's SQLite knowledge base), streamed and not; a model's answer (mock
upstream) is cited by the passages its prompt showed, numbered as the
prompt numbers them; moactl prints them."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import unittest

from moadtest import MOACTL, DaemonTestCase, Daemon, parse_sse
from test_engine import Mock, agents_dir

WRAPPED = """# Quux leases

The quux lease says that a landlord must return a quux deposit
within **fourteen days** after the tenant leaves the flat. Tenants can
claim twice the quux deposit when the landlord misses that deadline.
"""


def stop_checked(d):
    """Stop @d and fail on a non-zero exit or a sanitizer report in its log."""
    rc = d.stop()
    log = d.read_log()
    shutil.rmtree(d.dir, ignore_errors=True)
    if rc != 0 or "AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
        raise AssertionError("moad exit %s:\n%s" % (rc, log[-5000:]))


def ws(s):
    return re.sub(r"\s+", " ", s)


class Builtin(DaemonTestCase):
    # Both agents answer every time: under load the default quorum of one
    # half could end a layer without one of them, and the streamed and plain
    # answers compared below would then differ by timing, not by a bug.
    config = """\
pipelines:
  - name: moa
    layers:
      - {role: propose, quorum: 1}
      - {role: refine, quorum: 1}
      - {role: aggregate}
"""
    def chunk_text(self, agent, title, chunk):
        db = sqlite3.connect(os.path.join(self.d.state, "kb", agent + ".db"))
        try:
            row = db.execute("SELECT c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                             "WHERE d.title = ? AND c.idx = ?", (title, chunk)).fetchone()
        finally:
            db.close()
        self.assertIsNotNone(row, "%s chunk %d of %s" % (title, chunk, agent))
        return row[0]

    def ask(self, q, model="moa", stream=False, **moa):
        st, _, data = self.d.chat(q, model=model, stream=stream, moa=moa)
        self.assertEqual(st, 200, data)
        if not stream:
            j = json.loads(data)
            return j["choices"][0]["message"]["content"], j["moa"]
        text, moa_obj = "", None
        for ev in parse_sse(data):
            if ev == "[DONE]":
                continue
            c = json.loads(ev)
            for ch in c.get("choices", []):
                text += ch["delta"].get("content") or ""
                if ch.get("finish_reason") == "stop":
                    moa_obj = c.get("moa")
        return text, moa_obj

    def check_quotes(self, answer, cites, exact=True):
        """Every citation: its quote is in the answer as written, in its chunk
        (exactly, or with white space runs read as one), and its number is
        the Sources line naming its document and chunk."""
        self.assertTrue(cites, answer)
        sources = answer.split("\n\nSources:\n")[1]
        for c in cites:
            self.assertEqual(set(c), {"number", "agent", "document", "source", "chunk", "quote", "attached"})
            self.assertIsInstance(c["quote"], str, c)
            self.assertIn(c["quote"] + " [", answer)
            text = self.chunk_text(c["agent"], c["document"], c["chunk"])
            if exact:
                self.assertIn(c["quote"], text)
            else:
                self.assertIn(ws(c["quote"]), ws(text))
            self.assertRegex(sources, r"(?m)^\[%d\] %s, chunk %d( \(%s\))?$"
                             % (c["number"], re.escape(c["document"]), c["chunk"], c["agent"]))
            self.assertTrue(c["source"].endswith("/" + c["document"]), c)
        # one citation per quoted sentence: as many as markers in the body
        body = answer.split("\n\nSources:\n")[0]
        self.assertEqual(len(cites), len(re.findall(r" \[\d+\][.!?]", body)))

    def test_single_agent_quotes_exact(self):
        answer, moa = self.ask("What is a security deposit?", model="legal")
        self.check_quotes(answer, moa["citations"])

    def test_pipeline_two_agents_stream_equals_plain(self):
        q = "How does compound interest grow savings, and what makes a contract binding?"
        answer, moa = self.ask(q, agents=["legal", "finance"])
        self.check_quotes(answer, moa["citations"])
        self.assertEqual({c["agent"] for c in moa["citations"]} <= {"legal", "finance"}, True)
        s_answer, s_moa = self.ask(q, stream=True, agents=["legal", "finance"])
        self.assertEqual(s_answer, answer)
        self.assertEqual(s_moa["citations"], moa["citations"])

    def test_wrapped_document_and_emphasis(self):
        st, _, j = self.d.json("POST", "/v1/moa/agents/legal/documents",
                               {"title": "quux.md", "source": "/srv/quux.md", "text": WRAPPED})
        self.assertEqual(st, 200, j)
        try:
            answer, moa = self.ask("When must a landlord return the quux deposit?", model="legal")
            self.check_quotes(answer, moa["citations"], exact=False)
            quotes = [c["quote"] for c in moa["citations"] if c["document"] == "quux.md"]
            self.assertTrue(any("**fourteen days**" in q for q in quotes), quotes)
            self.assertEqual({c["source"] for c in moa["citations"] if c["document"] == "quux.md"},
                             {"/srv/quux.md"})
        finally:
            self.d.request("DELETE", "/v1/moa/agents/legal/documents/quux.md")

    def test_not_found_cites_nothing(self):
        answer, moa = self.ask("zorblax frobnication quantum?", model="legal")
        self.assertIn("has no passage", answer)
        self.assertEqual(moa["citations"], [])

    def test_no_moa_object_no_extension(self):
        st, _, data = self.d.chat("What is a security deposit?", model="legal")
        self.assertNotIn("moa", json.loads(data))

    def test_moactl(self):
        env = dict(os.environ, MOAD_SOCKET=self.d.socket)
        r = subprocess.run([MOACTL, "--json", "--model", "legal", "ask", "What is a security deposit?"],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        cites = json.loads(r.stdout)["moa"]["citations"]
        self.assertTrue(cites)
        r = subprocess.run([MOACTL, "--model", "legal", "ask", "What is a security deposit?"],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # the builtin answer lists its sources itself: moactl adds their files
        self.assertIn("\nSources:\n", r.stdout)
        tail = r.stdout.rsplit("\nFiles:\n", 1)[1]
        first = cites[0]
        self.assertIn("[%d] %s\n" % (first["number"], first["source"]), tail)
        # once per number, however often the passage is quoted
        self.assertEqual(len(tail.strip().splitlines()), len({(c["number"], c["agent"]) for c in cites}))


class Model(unittest.TestCase):
    """A model writes the answer: the citations are the passages of each
    agent's prompt, as numbered there."""

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = agents_dir({"legal": "echo", "finance": "echo"})
        cls.d = Daemon(config="providers:\n  - name: mock\n    type: openai\n    base_url: %s\n"
                              "    model: echo\n    max_retries: 0\n" % cls.mock.url,
                       agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.d)
        cls.mock.stop()
        shutil.rmtree(cls.agents, ignore_errors=True)

    def test_prompt_passages(self):
        st, _, data = self.d.chat("What is a security deposit?", model="legal", moa={})
        self.assertEqual(st, 200, data)
        cites = json.loads(data)["moa"]["citations"]
        prompt = self.mock.last("echo")["messages"][0]["content"]
        self.assertTrue(cites)
        self.assertEqual([c["number"] for c in cites], list(range(1, len(cites) + 1)))
        for c in cites:
            self.assertIsNone(c["quote"])
            self.assertEqual(c["agent"], "legal")
            # the legal plugin's prompt: "[n] title (source), part k+1"
            self.assertIn("[%d] %s (%s), part %d\n" % (c["number"], c["document"], c["source"], c["chunk"] + 1),
                          prompt)
        self.assertNotIn("[%d] " % (len(cites) + 1), prompt)


if __name__ == "__main__":
    unittest.main()
