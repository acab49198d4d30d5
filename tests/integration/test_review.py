"""Reviews (moa.review, moactl review) against the real daemon: each named
agent reviews an attached contract from its field (builtin provider:
extractive findings), one merged report with severities, agents and
citations into the contract and the agents' knowledge; a model's review
(mock upstream) gets the review instructions and is parsed the same way."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import unittest

from moadtest import MOACTL, SRC, Daemon, DaemonTestCase
from test_citations import stop_checked
from test_engine import Mock, agents_dir

CONTRACT_PATH = os.path.join(SRC, "docs", "examples", "service-agreement.md")
with open(CONTRACT_PATH) as f:
    CONTRACT = f.read()
SEVERITIES = ["high", "medium", "low"]


def ws(s):
    return re.sub(r"\s+", " ", s)


class Builtin(DaemonTestCase):
    # Every named agent is waited for: under load (ASan, -j2) the default
    # quorum of one half let the layer end with one of two reviewers.
    config = """\
pipelines:
  - name: moa
    layers:
      - {role: propose, quorum: 1}
      - {role: refine, quorum: 1}
      - {role: aggregate}
"""

    def review(self, agents, **extra):
        moa = {"agents": agents, "review": True, "trace": True,
               "documents": [{"title": "contract.md", "source": CONTRACT_PATH, "text": CONTRACT}]}
        moa.update(extra)
        st, _, j = self.d.json("POST", "/v1/chat/completions", {
            "model": "moa", "messages": [{"role": "user", "content": "Review the attached documents."}], "moa": moa})
        self.assertEqual(st, 200, j)
        return j["choices"][0]["message"]["content"], j["moa"]

    def chunk_text(self, agent, title, chunk):
        db = sqlite3.connect(os.path.join(self.d.state, "kb", agent + ".db"))
        try:
            return db.execute("SELECT c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                              "WHERE d.title = ? AND c.idx = ?", (title, chunk)).fetchone()[0]
        finally:
            db.close()

    def test_two_agents_one_report(self):
        report, moa = self.review(["legal", "finance"])
        findings = moa["findings"]
        self.assertTrue(findings, report)
        # every selected agent found something in its own field
        self.assertEqual({a for f in findings for a in f["agents"]}, {"legal", "finance"})
        # high first; each line of the report is a finding as listed
        ranks = [SEVERITIES.index(f["severity"]) for f in findings]
        self.assertEqual(ranks, sorted(ranks))
        lines = [l for l in report.split("\n") if l.startswith("- [")]
        self.assertEqual(len(lines), len(findings))
        for line, f in zip(lines, findings):
            self.assertEqual(line, "- [%s] (%s) %s" % (f["severity"], ", ".join(f["agents"]), f["text"]))
        # citations: into the contract (quoted verbatim) and the knowledge bases
        numbers = {c["number"] for c in moa["citations"]}
        for f in findings:
            self.assertTrue(f["citations"])
            self.assertLessEqual(set(f["citations"]), numbers)
        attached = [c for c in moa["citations"] if c["attached"]]
        known = [c for c in moa["citations"] if not c["attached"]]
        self.assertTrue(attached and known, moa["citations"])
        for c in moa["citations"]:
            self.assertIsNotNone(c["quote"], c)
            self.assertIn(c["quote"], report)
            if c["attached"]:
                self.assertEqual((c["document"], c["source"]), ("contract.md", CONTRACT_PATH))
                self.assertIn(ws(c["quote"]), ws(CONTRACT))
            else:
                self.assertIn(c["quote"], self.chunk_text(c["agent"], c["document"], c["chunk"]))
        # proposals then one merge: no refine layer in a review
        self.assertEqual([[c["role"] for c in l] for l in moa["layers"]],
                         [["propose", "propose"], ["aggregate"]])
        # never stored
        st, _, docs = self.d.json("GET", "/v1/moa/agents/legal/documents")
        self.assertNotIn("contract.md", [d["title"] for d in docs["documents"]])

    def test_single_agent(self):
        st, _, j = self.d.json("POST", "/v1/chat/completions", {
            "model": "legal", "messages": [{"role": "user", "content": "Review it."}],
            "moa": {"review": True, "documents": [{"title": "contract.md", "text": CONTRACT}]}})
        self.assertEqual(st, 200, j)
        findings = j["moa"]["findings"]
        self.assertTrue(findings)
        self.assertEqual({tuple(f["agents"]) for f in findings}, {("legal",)})

    def test_errors(self):
        for moa, code in (({"review": True}, "review_needs_documents"), ({"review": 1, "documents": [{"title": "a", "text": "b"}]}, "invalid_type")):
            st, _, j = self.d.json("POST", "/v1/chat/completions", {
                "model": "legal", "messages": [{"role": "user", "content": "x"}], "moa": moa})
            self.assertEqual(st, 400, j)
            self.assertEqual((j["error"]["code"], j["error"]["param"]), (code, "moa.review"))

    def moactl(self, *args):
        env = dict(os.environ, MOAD_SOCKET=self.d.socket)
        return subprocess.run([MOACTL] + list(args), capture_output=True, text=True, env=env, timeout=60)

    def test_moactl_review(self):
        r = self.moactl("review", "--agents", "legal,finance", CONTRACT_PATH)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertTrue(out.startswith("# Review of %s\n\nReviewed by: legal, finance\n" % CONTRACT_PATH), out)
        heads = re.findall(r"(?m)^## (High|Medium|Low)$", out)
        self.assertTrue(heads)
        self.assertEqual(heads, sorted(heads, key=lambda h: SEVERITIES.index(h.lower())))
        self.assertRegex(out, r"(?m)^- \*\*(legal|finance)(, (legal|finance))?\*\*: .+ \[\d+\]\.")
        self.assertRegex(out, r"(?m)^\[\d+\] %s, chunk \d+ \((legal|finance)\) - reviewed file$" % re.escape(CONTRACT_PATH))
        self.assertRegex(out, r"(?m)^\[\d+\] .+\.md, chunk \d+ \((legal|finance)\) - knowledge: /.+\.md$")
        self.assertIn("not legal advice", out)
        r = self.moactl("review", "-a", "legal", "--format", "json", CONTRACT_PATH)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(set(j), {"findings", "citations", "report"})
        self.assertTrue(j["findings"])
        self.assertEqual({a for f in j["findings"] for a in f["agents"]}, {"legal"})
        # usage errors and unreadable files
        for args, code, text in ((("review", CONTRACT_PATH), 2, "--agents"),
                                 (("review", "-a", "legal"), 2, "files to review"),
                                 (("review", "-a", "legal", "--format", "pdf", CONTRACT_PATH), 2, "markdown or json"),
                                 (("review", "-a", "legal", "/nonexistent.md"), 1, "cannot attach /nonexistent.md"),
                                 (("review", "-a", "astrology", CONTRACT_PATH), 1, "astrology")):
            r = self.moactl(*args)
            self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
            self.assertIn(text, r.stderr)


class Model(unittest.TestCase):
    """Model agents are told to review and how to write findings; the
    aggregator gets the review merge template; the report is parsed."""

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = agents_dir({"legal": "echo", "finance": "echo"})
        cls.d = Daemon(config="""
providers:
  - name: mock
    type: openai
    base_url: %s
    model: echo
    max_retries: 0
pipelines:
  - name: moa
    layers:
      - role: propose
      - role: refine
      - role: aggregate
        agent: mock
""" % cls.mock.url, agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.d)
        cls.mock.stop()
        shutil.rmtree(cls.agents, ignore_errors=True)

    def test_prompts_and_parsed_findings(self):
        # the echo model repeats the question: make it a finding line
        q = "Review.\n- [high] (legal, finance) The supplier may terminate at once [1][2].\n- [bogus] x"
        st, _, j = self.d.json("POST", "/v1/chat/completions", {
            "model": "moa", "messages": [{"role": "user", "content": q}],
            "moa": {"agents": ["legal", "finance"], "review": True, "trace": True,
                    "documents": [{"title": "contract.md", "text": CONTRACT}]}})
        self.assertEqual(st, 200, j)
        self.assertEqual(j["moa"]["findings"], [{"severity": "high", "agents": ["legal", "finance"],
                                                 "text": "The supplier may terminate at once [1][2].",
                                                 "citations": [1, 2]}])
        self.assertEqual(len(j["moa"]["layers"]), 2)
        last = self.mock.last("echo")
        system = last["messages"][0]["content"]
        # the last call to the model was the aggregator's
        self.assertIn("Merge them into one report", system)
        self.assertIn("- [severity] (agent) finding [n]", system)


class ModelAgentPrompt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = agents_dir({"legal": "echo"})
        cls.d = Daemon(config="providers:\n  - name: mock\n    type: openai\n    base_url: %s\n"
                              "    model: echo\n    max_retries: 0\n" % cls.mock.url, agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.d)
        cls.mock.stop()
        shutil.rmtree(cls.agents, ignore_errors=True)

    def test_agent_prompt(self):
        st, _, j = self.d.json("POST", "/v1/chat/completions", {
            "model": "legal", "messages": [{"role": "user", "content": "Review."}],
            "moa": {"review": True, "documents": [{"title": "contract.md", "text": CONTRACT}]}})
        self.assertEqual(st, 200, j)
        system = self.mock.last("echo")["messages"][0]["content"]
        self.assertIn("Review the attached documents", system)
        self.assertIn("- [high] finding [n]", system)
        # the legal plugin's terms chose the contract's liability clause
        self.assertIn("[1] contract.md", system)
        self.assertIn("liability", system.split("[1] contract.md", 1)[1].split("\n[", 1)[0].lower())
        self.assertTrue(j["moa"]["citations"][0]["attached"])


if __name__ == "__main__":
    unittest.main()
