"""The layered engine against the project's mock OpenAI-compatible upstream
(tests/mock-upstream.c): parallel layers, weights, quorum, failures,
deadlines, streaming, cancellation, admission control. Each agent's
behaviour is chosen by its model name (see mock-upstream.c)."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from moadtest import MOCK, SRC, Daemon, parse_sse

KNOWLEDGE = os.path.join(SRC, "agents.d", "knowledge")


class Mock:
    def __init__(self):
        self.proc = subprocess.Popen([MOCK, "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d/v1" % self.port

    def stats(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/mock/stats" % self.port, timeout=10) as r:
            return json.load(r)

    def last(self, model):
        """The last chat request body the mock received for @model."""
        with urllib.request.urlopen("http://127.0.0.1:%d/mock/last?model=%s" % (self.port, model), timeout=10) as r:
            return json.load(r)

    def reset(self):
        req = urllib.request.Request("http://127.0.0.1:%d/mock/reset" % self.port, data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def agents_dir(models, weights=None):
    """A temporary agents.d: agent name -> mock model name (provider 'mock')."""
    d = tempfile.mkdtemp(prefix="moad-agents-")
    for name, model in models.items():
        with open(os.path.join(d, name + ".yaml"), "w") as f:
            f.write("name: %s\nplugin: %s\nweight: %s\nprovider: mock\nmodel: %s\nknowledge: [%s]\n"
                    % (name, name, (weights or {}).get(name, 1.0), model, os.path.join(KNOWLEDGE, name)))
    return d


CONFIG = """
providers:
  - name: mock
    type: openai
    base_url: {url}
    model: echo
    max_retries: {retries}
    retry_base_ms: 10
    timeout_ms: 5000
    fallbacks: {fallbacks}
  - name: mockfb
    type: openai
    base_url: {url}
    model: fixed-10
    max_retries: 0
  - name: mockagg
    type: openai
    base_url: {url}
    model: {agg}
    max_retries: 0
    timeout_ms: 5000
pipelines:
  - name: moa
    deadline_ms: {deadline}
    layers:
      - role: propose
        quorum: {quorum}
      - role: refine
        quorum: {quorum}
      - role: aggregate
        agent: mockagg
  - name: moa-lite
    deadline_ms: {deadline}
    early_aggregation: {early}
    layers:
      - role: propose
        quorum: {quorum}
      - role: aggregate
        agent: mockagg
  - name: self
    self_moa_samples: 3
    layers:
      - role: propose
      - role: aggregate
        agent: mockagg
limits:
  max_inflight: {inflight}
  max_queue: {queue}
"""


class EngineCase(unittest.TestCase):
    models = {"legal": "fixed-100", "medical": "fixed-200", "finance": "echo", "code": "echo", "general": "echo"}
    agg = "fixed-50"
    retries = 0
    deadline = 10000
    quorum = 1.0
    inflight = 64
    queue = 64
    fallbacks = "[]"
    early = False

    @classmethod
    def setUpClass(cls):
        cls.mock = Mock()
        cls.agents = agents_dir(cls.models)
        cfg = CONFIG.format(url=cls.mock.url, agg=cls.agg, retries=cls.retries, deadline=cls.deadline,
                            quorum=cls.quorum, inflight=cls.inflight, queue=cls.queue, fallbacks=cls.fallbacks,
                            early="true" if cls.early else "false")
        cls.d = Daemon(config=cfg, agents_dir=cls.agents)

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        log = cls.d.read_log()
        cls.mock.stop()
        shutil.rmtree(cls.agents, ignore_errors=True)
        shutil.rmtree(cls.d.dir, ignore_errors=True)
        if rc != 0 or "AddressSanitizer" in log or "runtime error:" in log:
            raise AssertionError("daemon exit %s:\n%s" % (rc, log[-5000:]))

    def ask(self, agents, model="moa", stream=False, q="What should I know?", **moa):
        moa = dict(moa)
        moa.setdefault("trace", True)
        moa["agents"] = agents
        return self.d.chat(q, model=model, stream=stream, moa=moa)


class Layers(EngineCase):
    def test_three_layers_call_count_and_weights(self):
        self.mock.reset()
        t0 = time.monotonic()
        st, _, data = self.ask(["legal", "medical"], trace_content=True)
        wall = time.monotonic() - t0
        self.assertEqual(st, 200, data)
        j = json.loads(data)
        layers = j["moa"]["layers"]
        self.assertEqual([len(l) for l in layers], [2, 2, 1])
        self.assertEqual([c["role"] for c in layers[1]], ["refine", "refine"])
        # 2 proposers + 2 refiners + 1 aggregator, no retries.
        self.assertEqual(self.mock.stats()["total"], 5)
        # The final answer is the aggregator's (the mock names the model).
        self.assertIn("[fixed-50]", j["choices"][0]["message"]["content"])
        # Refiners saw the proposals as numbered, weighted references.
        for c in layers[0] + layers[1]:
            self.assertEqual(c["status"], "ok")
        usage = j["usage"]
        self.assertEqual(usage["prompt_tokens"], sum(c["usage"]["prompt_tokens"] for l in layers for c in l))
        print("\n3-layer wall %.0f ms (per-layer maxima 200+200+50 = 450 ms)" % (wall * 1000))

    def test_refs_reach_the_aggregator(self):
        # The echo model repeats the last user message only; the trace shows the
        # aggregator ran after both layers, with weight labels in its prompt.
        st, _, data = self.ask(["finance", "code"], model="moa-lite")
        self.assertEqual(st, 200, data)
        self.assertEqual(len(json.loads(data)["moa"]["layers"]), 2)

    def test_stream_reaches_client(self):
        st, h, data = self.ask(["finance"], model="moa-lite", stream=True)
        self.assertEqual(st, 200, data)
        events = parse_sse(data)
        self.assertEqual(events[-1], "[DONE]")
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                       for e in events[:-1] if json.loads(e)["choices"])
        self.assertIn("[fixed-50]", text)


class Progress(EngineCase):
    def test_progress_events_opt_in(self):
        st, _, data = self.ask(["legal", "medical"], stream=True, progress=True)
        self.assertEqual(st, 200, data)
        events = [json.loads(e) for e in parse_sse(data)[:-1]]
        prog = [e for e in events if e.get("object") == "moa.progress"]
        # 2 proposers + 2 refiners finished before the aggregator answered
        self.assertEqual(sorted((e["layer"], e["agent"]) for e in prog),
                         [(1, "legal"), (1, "medical"), (2, "legal"), (2, "medical")])
        first_content = next(i for i, e in enumerate(events)
                             if e.get("object") == "chat.completion.chunk" and e["choices"]
                             and e["choices"][0]["delta"].get("content"))
        self.assertTrue(all(events.index(p) < first_content for p in prog))
        # without the flag: plain OpenAI chunks only
        st, _, data = self.ask(["legal"], stream=True)
        self.assertFalse(any(json.loads(e).get("object") == "moa.progress" for e in parse_sse(data)[:-1]))


class StreamingAggregator(EngineCase):
    agg = "stream-20"

    def test_tokens_arrive_incrementally(self):
        # Read the raw response as it arrives: several chunks before the end.
        # finance's plugin reviews answers, so text leaves a sentence at a
        # time (docs/engine.md): the question the mock echoes has several.
        c = self.d.conn()
        question = "Hello there. How are you today? Fine, thanks. It is sunny here. Bye for now."
        body = {"model": "moa-lite", "stream": True, "messages": [{"role": "user", "content": question}],
                "moa": {"agents": ["finance"]}}
        c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        arrivals = []
        buf = b""
        while True:
            piece = r.read1(65536)
            if not piece:
                break
            arrivals.append(time.monotonic())
            buf += piece
        c.close()
        events = parse_sse(buf)
        contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]
                    if json.loads(e)["choices"]]
        self.assertGreater(len([x for x in contents if x]), 3)
        self.assertGreater(len(arrivals), 3)  # more than one read: tokens were not batched at the end
        self.assertIn("[stream-20]", "".join(x for x in contents if x))


class Failures(EngineCase):
    models = {"legal": "status-500", "medical": "fixed-50", "finance": "status-400", "code": "hang",
              "general": "garbage"}
    agg = "status-500"
    deadline = 1500

    def test_one_proposer_fails_other_answers(self):
        st, _, data = self.ask(["legal", "medical"], model="moa-lite")
        self.assertEqual(st, 200, data)
        j = json.loads(data)
        first = {c["agent"]: c for c in j["moa"]["layers"][0]}
        self.assertEqual(first["legal"]["status"], "error")
        self.assertIn("500", first["legal"]["error"])
        self.assertEqual(first["medical"]["status"], "ok")
        # aggregator (status-500) failed: the best proposal comes back, with a warning
        self.assertIn("[fixed-50]", j["choices"][0]["message"]["content"])
        self.assertTrue(any("aggregator failed" in w for w in j["moa"]["warnings"]))

    def test_all_fail_is_502_naming_agents(self):
        st, _, data = self.ask(["legal", "finance", "general"], model="moa-lite")
        self.assertEqual(st, 502, data)
        e = json.loads(data)["error"]
        for name in ("legal", "finance", "general"):
            self.assertIn(name, e["message"])

    def test_all_hang_is_504(self):
        t0 = time.monotonic()
        st, _, data = self.ask(["code"], model="moa-lite")
        self.assertEqual(st, 504, data)
        self.assertIn("code", json.loads(data)["error"]["message"])
        self.assertLess(time.monotonic() - t0, 10)  # bounded by the 1.5 s deadline, not the 5 s call timeout

    def test_stream_failure_before_first_token_has_status(self):
        st, h, data = self.ask(["legal"], model="moa-lite", stream=True)
        self.assertEqual(st, 502, data)
        self.assertIn("error", json.loads(data))


class Quorum(EngineCase):
    models = {"legal": "fixed-50", "medical": "hang", "finance": "fixed-60", "code": "echo", "general": "echo"}
    agg = "echo"
    quorum = 0.5
    deadline = 20000

    def test_layer_proceeds_on_quorum_and_cancels_straggler(self):
        t0 = time.monotonic()
        st, _, data = self.ask(["legal", "medical"], model="moa-lite")
        wall = time.monotonic() - t0
        self.assertEqual(st, 200, data)
        first = {c["agent"]: c for c in json.loads(data)["moa"]["layers"][0]}
        self.assertEqual(first["legal"]["status"], "ok")
        self.assertNotEqual(first["medical"]["status"], "ok")
        self.assertIn("cancelled", first["medical"]["error"])
        self.assertLess(wall, 10)  # did not wait for the 5 s call timeout or 20 s deadline


class SelfMoA(EngineCase):
    agg = "echo"

    def test_best_agent_sampled_n_times(self):
        self.mock.reset()
        st, _, data = self.d.chat("What does a landlord owe a tenant?", model="self", moa={"trace": True})
        self.assertEqual(st, 200, data)
        layers = json.loads(data)["moa"]["layers"]
        self.assertEqual([c["agent"] for c in layers[0]], ["legal#1", "legal#2", "legal#3"])
        self.assertEqual(self.mock.stats()["calls"]["fixed-100"], 3)


class EarlyAggregation(EngineCase):
    models = {"legal": "fixed-30", "medical": "fixed-3000", "finance": "echo", "code": "echo", "general": "echo"}
    agg = "echo"
    quorum = 0.5
    early = True

    def test_aggregator_starts_at_quorum(self):
        st, _, data = self.ask(["legal", "medical"], model="moa-lite")
        self.assertEqual(st, 200, data)
        first = {c["agent"]: c for c in json.loads(data)["moa"]["layers"][0]}
        self.assertEqual(first["legal"]["status"], "ok")
        # the slow proposer did not hold the aggregator back: it was cut at the quorum
        self.assertNotEqual(first["medical"]["status"], "ok")
        self.assertIn("cancelled", first["medical"]["error"])
        self.assertLess(first["medical"]["latency_ms"], 3000)


class Retries(EngineCase):
    models = {"legal": "flaky-2", "medical": "status-429", "finance": "echo", "code": "echo", "general": "echo"}
    agg = "echo"
    retries = 2

    def test_flaky_upstream_retried(self):
        self.mock.reset()
        st, _, data = self.ask(["legal"], model="moa-lite")
        self.assertEqual(st, 200, data)
        first = json.loads(data)["moa"]["layers"][0][0]
        self.assertEqual(first["status"], "ok")
        self.assertEqual(first["attempts"], 3)
        self.assertEqual(self.mock.stats()["calls"]["flaky-2"], 3)


class Disconnect(EngineCase):
    models = {"legal": "hang", "medical": "echo", "finance": "echo", "code": "echo", "general": "echo"}
    agg = "stream-200"
    deadline = 60000

    def status(self):
        return self.d.json("GET", "/v1/moa/status")[2]

    def test_client_disconnect_cancels_calls(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.d.socket)
        body = json.dumps({"model": "moa-lite", "messages": [{"role": "user", "content": "q"}],
                           "moa": {"agents": ["legal"]}}).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        for _ in range(100):
            if self.status()["inflight"] == 1:
                break
            time.sleep(0.02)
        self.assertEqual(self.status()["inflight"], 1)
        s.close()
        for _ in range(250):
            if self.status()["inflight"] == 0:
                break
            time.sleep(0.02)
        self.assertEqual(self.status()["inflight"], 0)
        self.assertTrue(self.d.wait_log("client disconnected"))

    def test_disconnect_mid_stream(self):
        c = self.d.conn()
        body = {"model": "moa-lite", "stream": True, "messages": [{"role": "user", "content": "one two three four"}],
                "moa": {"agents": ["medical"]}}
        c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        r.read1(100)  # first bytes of the stream
        c.close()
        for _ in range(250):
            if self.status()["inflight"] == 0:
                break
            time.sleep(0.02)
        self.assertEqual(self.status()["inflight"], 0)


class Admission(EngineCase):
    models = {"legal": "fixed-1500", "medical": "echo", "finance": "echo", "code": "echo", "general": "echo"}
    agg = "echo"
    inflight = 1
    queue = 1

    def test_queue_then_429(self):
        import threading
        results = []

        def slow():
            results.append(self.ask(["legal"], model="moa-lite")[0])

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.2)
        st, h, data = self.ask(["medical"], model="moa-lite")
        self.assertEqual(st, 429, data)
        self.assertEqual(h.get("retry-after"), "1")
        self.assertEqual(json.loads(data)["error"]["type"], "rate_limit_error")
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(results), [200, 200])  # the queued one ran after the first


class Fallback(EngineCase):
    models = {"legal": "status-503", "medical": "fixed-10", "finance": "echo", "code": "echo", "general": "echo"}
    agg = "echo"
    fallbacks = "[mockfb]"

    def test_failed_provider_falls_back(self):
        self.mock.reset()
        st, _, data = self.ask(["legal"], model="moa-lite", trace_content=True)
        self.assertEqual(st, 200, data)
        first = json.loads(data)["moa"]["layers"][0][0]
        self.assertEqual(first["status"], "ok")
        self.assertEqual(first["provider"], "mockfb")
        self.assertIn("503", first["fallback"])
        self.assertIn("[fixed-10]", first["content"])
        calls = self.mock.stats()["calls"]
        self.assertEqual(calls["status-503"], 1 + self.retries)  # the provider's own retries first
        self.assertEqual(calls["fixed-10"], 1)


class Grounding(EngineCase):
    """What reaches a real model: whatever the plugin's own prompt says, the
    host tells it to ignore passages and references that do not bear on
    the question and to say when the context does not cover it."""
    models = {"legal": "rec-legal", "code": "rec-code"}
    agg = "rec-agg"

    def system_of(self, model):
        msgs = self.mock.last(model)["messages"]
        self.assertEqual(msgs[0]["role"], "system")
        return msgs[0]["content"]

    def test_propose_and_aggregate_prompts(self):
        st, _, data = self.ask(["legal", "code"], model="moa-lite", q="When must a landlord return a deposit?")
        self.assertEqual(st, 200, data)
        legal = self.system_of("rec-legal")
        self.assertIn("deposit", legal)  # its retrieved context
        self.assertIn("ignore the others", legal)
        self.assertIn("If they do not cover the question, say so plainly", legal)
        agg = self.system_of("rec-agg")
        self.assertIn("[1] ", agg)
        self.assertIn("do not use those. If no response answers the question, say so plainly", agg)

    def test_no_context(self):
        # nothing in the knowledge base matches: the model is told so
        st, _, data = self.ask(["code"], model="moa-lite", q="Zorblax quorvath?")
        self.assertEqual(st, 200, data)
        self.assertIn("No passage of the knowledge base matched this question. If you answer, say first that the "
                      "provided context does not cover it.", self.system_of("rec-code"))

    def test_refine_prompt(self):
        st, _, data = self.ask(["legal", "code"], model="moa", q="When must a landlord return a deposit?")
        self.assertEqual(st, 200, data)
        refine = self.system_of("rec-legal")  # its last call is the refine layer's
        self.assertIn("Responses from agents:", refine)
        self.assertIn("ignore the others", refine)
        self.assertIn("If no response answers the question, say so plainly", refine)


class QuickSwitch(unittest.TestCase):
    def test_openai_base_url_env(self):
        mock = Mock()
        try:
            d = Daemon(env={"OPENAI_BASE_URL": mock.url, "OPENAI_MODEL": "fixed-10", "OPENAI_API_KEY": "sk-secret-123"})
            try:
                st, _, data = d.chat("What is GDPR?", model="moa-lite", moa={"trace": True})
                self.assertEqual(st, 200, data)
                self.assertIn("[fixed-10]", json.loads(data)["choices"][0]["message"]["content"])
                self.assertNotIn("sk-secret-123", d.read_log())
            finally:
                d.cleanup()
        finally:
            mock.stop()

    def test_key_never_in_errors(self):
        mock = Mock()
        try:
            d = Daemon(env={"OPENAI_BASE_URL": mock.url, "OPENAI_MODEL": "leak-key", "OPENAI_API_KEY": "sk-secret-456"})
            try:
                st, _, data = d.chat("What is GDPR?", model="moa-lite", moa={"trace": True})
                self.assertNotIn(b"sk-secret-456", data)
                self.assertNotIn("sk-secret-456", d.read_log())
            finally:
                d.cleanup()
        finally:
            mock.stop()


if __name__ == "__main__":
    unittest.main()
