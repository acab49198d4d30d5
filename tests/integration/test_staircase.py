"""Staircase streaming (docs/engine.md "Staircase streaming") against the
project's mock upstream (tests/mock-upstream.c): a layer starts on the
previous layer's partial text once its staircase quorum has streamed
staircase_min_chars characters. The proposers here are generic experts
(no plugin, so no review step) whose mock model streams the echoed
question one word per 100 ms; each agent has its own model name so that
GET /mock/last shows what each was sent."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from moadtest import MOAD, Daemon, parse_sse
from test_engine import Mock

QUESTION = "alpha bravo charlie delta echo foxtrot golf"
MIN_CHARS = 30

AGENTS = {
    # name: (provider, model)
    "alpha": ("mock", "stream-100"),
    "beta": ("mock", "stream-90"),
    "stuck": ("mock", "hang"),
    "local": ("builtin", None),
}

CONFIG = """
providers:
  - name: mock
    type: openai
    base_url: {url}
    model: echo
    max_retries: 0
    timeout_ms: 20000
  - name: mockagg
    type: openai
    base_url: {url}
    model: stream-21
    max_retries: 0
    timeout_ms: 20000
pipelines:
  - name: stair
    staircase: true
    staircase_min_chars: {min_chars}
    layers:
      - role: propose
        quorum: 1
      - role: aggregate
        agent: mockagg
  - name: stair3
    staircase: true
    staircase_min_chars: {min_chars}
    layers:
      - role: propose
        quorum: 1
      - role: refine
        quorum: 1
      - role: aggregate
        agent: mockagg
  - name: plain
    layers:
      - role: propose
        quorum: 1
      - role: aggregate
        agent: mockagg
  - name: stairq
    staircase: true
    staircase_quorum: 0.5
    staircase_min_chars: {min_chars}
    layers:
      - role: propose
        quorum: 1
      - role: aggregate
        agent: mockagg
  - name: stairdl
    deadline_ms: 600
    staircase: true
    staircase_min_chars: 1000
    layers:
      - role: propose
        quorum: 1
      - role: aggregate
        agent: mockagg
"""


def full_answer(model):
    """What the mock's echo streams for QUESTION, whole."""
    return "[%s] you said: %s" % (model, QUESTION)


def system_of(body):
    return next(m["content"] for m in body["messages"] if m["role"] == "system")


class StaircaseCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = tempfile.mkdtemp(prefix="moad-agents-")
        for name, (provider, model) in AGENTS.items():
            with open(os.path.join(cls.agents, name + ".yaml"), "w") as f:
                f.write("name: %s\ndescription: %s test expert\nprovider: %s\n" % (name, name, provider))
                if model:
                    f.write("model: %s\n" % model)
        cls.d = Daemon(config=CONFIG.format(url=cls.mock.url, min_chars=MIN_CHARS), agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        log = cls.d.read_log()
        cls.mock.stop()
        shutil.rmtree(cls.agents, ignore_errors=True)
        shutil.rmtree(cls.d.dir, ignore_errors=True)
        if rc != 0 or "AddressSanitizer" in log or "LeakSanitizer" in log or "runtime error:" in log:
            raise AssertionError("daemon exit %s:\n%s" % (rc, log[-5000:]))

    def ask(self, model, agents, stream=False, **moa):
        moa = dict(moa, agents=agents, trace=True, trace_content=True)
        st, _, data = self.d.chat(QUESTION, model=model, stream=stream, moa=moa)
        return st, data

    def trace(self, data):
        return json.loads(data)["moa"]

    def inflight(self):
        return self.d.json("GET", "/v1/moa/status")[2]["inflight"]

    def wait_idle(self):
        for _ in range(250):
            if self.inflight() == 0:
                return 0
            time.sleep(0.02)
        return self.inflight()


class Staircase(StaircaseCase):
    def test_aggregator_starts_on_partial_proposals(self):
        st, data = self.ask("stair", ["alpha", "beta"])
        self.assertEqual(st, 200, data)
        layers = self.trace(data)["layers"]
        self.assertEqual(len(layers), 2)
        agg = system_of(self.mock.last("stream-21"))
        for call in layers[0]:
            full = full_answer(AGENTS[call["agent"]][1])
            # cut while streaming: the aggregator saw a prefix, at least the minimum
            self.assertEqual(call["status"], "partial", call)
            saw = call["next_layer_saw"]
            self.assertFalse(saw["complete"])
            self.assertGreaterEqual(saw["chars"], MIN_CHARS)
            self.assertLess(saw["chars"], len(full))
            self.assertEqual(len(call["content"]), saw["chars"])
            self.assertTrue(full.startswith(call["content"]), call["content"])
            # the aggregator's prompt holds that partial text, marked as partial, not the whole answer
            self.assertIn("%s (weight 1.00; answer still in progress):\n%s …" % (call["agent"], call["content"]),
                          agg)
            self.assertNotIn(full, agg)
        self.assertIn("were still being written when you were asked", agg)
        self.assertEqual(layers[1][0]["status"], "ok")
        self.assertNotIn("next_layer_saw", layers[1][0])  # the last layer feeds nobody

    def test_without_staircase_the_order_is_unchanged(self):
        st, data = self.ask("plain", ["alpha", "beta"])
        self.assertEqual(st, 200, data)
        layers = self.trace(data)["layers"]
        agg = system_of(self.mock.last("stream-21"))
        for call in layers[0]:
            self.assertEqual(call["status"], "ok")
            self.assertNotIn("next_layer_saw", call)
            self.assertIn(full_answer(AGENTS[call["agent"]][1]), agg)  # whole answers, complete first
        self.assertNotIn("answer still in progress", agg)
        # proposers are not streamed upstream when nothing needs their partial text
        self.assertFalse(self.mock.last("stream-100").get("stream"))

    def test_proposers_stream_upstream_even_when_the_client_does_not(self):
        st, data = self.ask("stair", ["alpha"])
        self.assertEqual(st, 200, data)
        self.assertTrue(self.mock.last("stream-100")["stream"])
        self.assertFalse(self.mock.last("stream-21")["stream"])  # the client asked for no stream

    def test_streamed_answer_starts_before_proposers_finish(self):
        st, data = self.ask("stair", ["alpha", "beta"], stream=True, progress=True)
        self.assertEqual(st, 200, data)
        events = [json.loads(e) for e in parse_sse(data)[:-1]]
        progress = [e for e in events if e.get("object") == "moa.progress"]
        self.assertEqual(sorted((e["agent"], e["status"]) for e in progress), [("alpha", "partial"), ("beta", "partial")])
        first_token = next(i for i, e in enumerate(events) if e.get("object") == "chat.completion.chunk"
                           and e["choices"] and e["choices"][0]["delta"].get("content"))
        self.assertTrue(all(events.index(p) < first_token for p in progress))
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events
                       if e.get("object") == "chat.completion.chunk" and e["choices"])
        self.assertEqual(text, full_answer("stream-21"))
        layers = events[-1]["moa"]["layers"]
        self.assertTrue(all(not c["next_layer_saw"]["complete"] for c in layers[0]))

    def test_three_layers_each_start_on_partial_text(self):
        st, data = self.ask("stair3", ["alpha", "beta"])
        self.assertEqual(st, 200, data)
        layers = self.trace(data)["layers"]
        self.assertEqual(len(layers), 3)
        for layer in layers[:2]:
            for call in layer:
                self.assertEqual(call["status"], "partial", call)
                self.assertGreaterEqual(call["next_layer_saw"]["chars"], MIN_CHARS)
        # the refiner (alpha's last request) saw the partial proposals
        refine = system_of(self.mock.last("stream-100"))
        for call in layers[0]:
            self.assertIn("%s (weight 1.00; answer still in progress):\n%s …" % (call["agent"], call["content"]),
                          refine)
        agg = system_of(self.mock.last("stream-21"))
        for call in layers[1]:
            self.assertIn("answer still in progress):\n%s …" % call["content"], agg)

    def test_quorum_starts_without_a_silent_call(self):
        # staircase_quorum 0.5: alpha's partial text is enough; the hung call is cancelled, left out
        st, data = self.ask("stairq", ["alpha", "stuck"])
        self.assertEqual(st, 200, data)
        first = {c["agent"]: c for c in self.trace(data)["layers"][0]}
        self.assertEqual(first["alpha"]["status"], "partial")
        self.assertEqual(first["stuck"]["status"], "cancelled")
        self.assertIn("staircase", first["stuck"]["error"])
        self.assertEqual(first["stuck"]["next_layer_saw"], {"chars": 0, "complete": False})
        agg = system_of(self.mock.last("stream-21"))
        self.assertIn("alpha (weight", agg)
        self.assertNotIn("stuck (weight", agg)

    def test_builtin_provider_has_no_staircase(self):
        # the builtin provider answers at once: its answer is complete when the next layer starts
        st, data = self.ask("stair", ["local"])
        self.assertEqual(st, 200, data)
        call = self.trace(data)["layers"][0][0]
        self.assertEqual(call["status"], "ok")
        self.assertTrue(call["next_layer_saw"]["complete"])
        self.assertEqual(call["next_layer_saw"]["chars"], len(call["content"]))
        self.assertNotIn("answer still in progress", system_of(self.mock.last("stream-21")))


class StaircaseCancellation(StaircaseCase):
    def test_deadline_mid_staircase(self):
        # the proposers never reach 1000 characters; the deadline ends the request, nothing stays behind
        st, data = self.ask("stairdl", ["alpha", "beta"])
        self.assertEqual(st, 504, data)
        self.assertEqual(self.wait_idle(), 0)
        st, data = self.ask("stair", ["alpha"])
        self.assertEqual(st, 200, data)

    def raw_request(self, model, agents, stream):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.d.socket)
        body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": QUESTION}],
                           "moa": {"agents": agents}}).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        return s

    def test_disconnect_while_proposers_stream(self):
        # stuck never writes, so with staircase_quorum 1.0 the layer waits while alpha streams
        calls = self.mock.stats()["calls"]
        before, agg_before = calls.get("stream-100", 0), calls.get("stream-21", 0)
        s = self.raw_request("stair3", ["alpha", "stuck"], False)
        for _ in range(250):
            if self.mock.stats()["calls"].get("stream-100", 0) > before:
                break
            time.sleep(0.02)
        self.assertEqual(self.inflight(), 1)
        s.close()
        self.assertEqual(self.wait_idle(), 0)
        self.assertTrue(self.d.wait_log("client disconnected"))
        self.assertEqual(self.mock.stats()["calls"].get("stream-21", 0), agg_before)  # no aggregator was started

    def test_disconnect_while_the_answer_streams(self):
        s = self.raw_request("stair", ["alpha", "beta"], True)
        s.settimeout(30)
        got = b""
        while b'"content":"' not in got.replace(b'"content":""', b""):
            piece = s.recv(65536)
            self.assertTrue(piece, got)
            got += piece
        s.close()
        self.assertEqual(self.wait_idle(), 0)


class StaircaseConfig(unittest.TestCase):
    """What an operator sees from moad --check-config."""

    def check(self, pipeline):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("pipelines:\n  - name: s\n" + pipeline + "    layers: [{role: propose}, {role: aggregate}]\n")
        try:
            p = subprocess.run([MOAD, "--check-config", "--config", f.name], capture_output=True, text=True,
                               timeout=30)
        finally:
            os.unlink(f.name)
        return p, f.name

    def test_valid(self):
        p, _ = self.check("    staircase: true\n    staircase_quorum: 0.5\n    staircase_min_chars: 100\n")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_errors_name_file_line_column(self):
        for text, want in [
            ("    staircase: true\n    staircase_quorum: 2\n",
             ":4:23: 'pipelines[0].staircase_quorum' must be between 0 and 1"),
            ("    staircase: true\n    staircase_min_chars: 0\n",
             ":4:26: 'pipelines[0].staircase_min_chars' must be at least 1, not 0"),
            ("    staircase_min_chars: 50\n",
             ":3:5: 'staircase_min_chars' of pipeline 's' has no effect without 'staircase: true'"),
        ]:
            p, path = self.check(text)
            self.assertEqual(p.returncode, 1, text)
            self.assertIn(path + want, p.stderr)


if __name__ == "__main__":
    unittest.main()
