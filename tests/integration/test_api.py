"""The HTTP API of the real daemon over its Unix socket (builtin provider,
shipped agents and sample knowledge)."""
import json
import os
import socket
import unittest

from moadtest import DaemonTestCase, parse_sse


class ChatCompletions(DaemonTestCase):
    def test_non_stream_shape(self):
        st, h, data = self.d.chat("What is the difference between the MIT and the GPL licence?")
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("application/json"))
        j = json.loads(data)
        self.assertTrue(j["id"].startswith("chatcmpl-"))
        self.assertEqual(j["object"], "chat.completion")
        self.assertEqual(j["model"], "moa")
        self.assertIsInstance(j["created"], int)
        self.assertEqual(len(j["choices"]), 1)
        c = j["choices"][0]
        self.assertEqual(c["index"], 0)
        self.assertEqual(c["message"]["role"], "assistant")
        self.assertEqual(c["finish_reason"], "stop")
        u = j["usage"]
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        self.assertGreater(u["completion_tokens"], 0)
        # Real retrieval: the answer cites sources from the knowledge base.
        self.assertIn("Sources:", c["message"]["content"])
        self.assertRegex(c["message"]["content"], r"\[\d+\]")
        self.assertNotIn("moa", j)  # no trace unless asked

    def test_answer_is_deterministic(self):
        q = "How do index funds help with diversification?"
        a = json.loads(self.d.chat(q)[2])["choices"][0]["message"]["content"]
        b = json.loads(self.d.chat(q)[2])["choices"][0]["message"]["content"]
        self.assertEqual(a, b)

    def test_stream(self):
        st, h, data = self.d.chat("What are the symptoms of a heart attack?", stream=True,
                                  stream_options={"include_usage": True})
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        events = parse_sse(data)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        for ch in chunks:
            self.assertEqual(ch["object"], "chat.completion.chunk")
            self.assertTrue(ch["id"].startswith("chatcmpl-"))
            self.assertEqual(ch["id"], chunks[0]["id"])
        self.assertEqual(chunks[0]["choices"][0]["delta"].get("role"), "assistant")
        usage = chunks[-1]
        self.assertEqual(usage["choices"], [])
        self.assertGreater(usage["usage"]["completion_tokens"], 0)
        final = chunks[-2]
        self.assertEqual(final["choices"][0]["finish_reason"], "stop")
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
        self.assertGreater(len(text), 20)
        # More than one content delta: the answer is streamed, not sent at once
        # (the plugin's review releases it a sentence at a time at most).
        n_content = sum(1 for c in chunks[:-1] if c["choices"] and c["choices"][0]["delta"].get("content"))
        self.assertGreater(n_content, 1)
        # Same reviewed text as the non-streamed answer (medical's emergency
        # notice included); a notice that came after text was already sent
        # ends the stream instead of leading it.
        j = json.loads(self.d.chat("What are the symptoms of a heart attack?")[2])
        whole = j["choices"][0]["message"]["content"]
        self.assertIn("If this is an emergency", whole)
        notice, rest = whole.split("\n\n", 1)
        self.assertIn(text, (whole, rest + "\n\n" + notice), text)

    def test_stream_reviewed_for_every_plugin(self):
        # Each shipped plugin's review (disclaimers, notices, redaction)
        # applies to the streamed answer too: streamed and whole agree.
        cases = {"legal": "Can my landlord keep my deposit? Write to me at jane@example.com.",
                 "medical": "I have chest pain and my arm is numb, what should I do?",
                 "finance": "What is an index fund?",
                 "code": "What does HTTP 404 mean?",
                 "general": "Which is the longest river in the world?"}
        for agent, q in cases.items():
            with self.subTest(agent=agent):
                st, _, data = self.d.chat(q, model=agent, stream=True)
                self.assertEqual(st, 200, data)
                text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                               for e in parse_sse(data)[:-1] if json.loads(e)["choices"])
                whole = json.loads(self.d.chat(q, model=agent)[2])["choices"][0]["message"]["content"]
                head, _, rest = whole.partition("\n\n")
                self.assertIn(text, (whole, rest + "\n\n" + head), agent)

    def test_stream_without_usage(self):
        st, _, data = self.d.chat("What is compound interest?", stream=True)
        self.assertEqual(st, 200)
        events = parse_sse(data)
        self.assertEqual(events[-1], "[DONE]")
        self.assertFalse(any("usage" in json.loads(e) for e in events[:-1]))

    def test_trace(self):
        st, _, data = self.d.chat("Is ibuprofen safe with high blood pressure medication?",
                                  moa={"trace": True, "trace_content": True})
        self.assertEqual(st, 200, data)
        moa = json.loads(data)["moa"]
        self.assertTrue(any(a["selected"] for a in moa["route"]))
        self.assertEqual(len(moa["layers"]), 3)  # moa = propose, refine, aggregate
        for layer in moa["layers"]:
            for call in layer:
                for k in ("agent", "weight", "latency_ms", "usage", "status"):
                    self.assertIn(k, call)
                self.assertEqual(call["status"], "ok")
                self.assertIn("content", call)
        self.assertEqual(len(moa["layers"][-1]), 1)
        self.assertEqual(moa["layers"][-1][0]["role"], "aggregate")

    def test_pinned_agent(self):
        st, _, data = self.d.chat("Tell me something.", moa={"agents": ["finance"], "trace": True})
        self.assertEqual(st, 200, data)
        moa = json.loads(data)["moa"]
        self.assertEqual([c["agent"] for c in moa["layers"][0]], ["finance"])

    def test_single_agent_model(self):
        st, _, data = self.d.chat("What does a segmentation fault mean?", model="code",
                                  moa={"trace": True})
        self.assertEqual(st, 200, data)
        j = json.loads(data)
        self.assertEqual(j["model"], "code")
        self.assertEqual([[c["agent"] for c in l] for l in j["moa"]["layers"]], [["code"]])

    def test_layers_option(self):
        st, _, data = self.d.chat("What is a mortgage?", moa={"trace": True, "layers": 2})
        self.assertEqual(st, 200, data)
        roles = [l[0]["role"] for l in json.loads(data)["moa"]["layers"]]
        self.assertEqual(roles, ["propose", "aggregate"])
        st, _, data = self.d.chat("What is a mortgage?", moa={"trace": True, "layers": 1})
        self.assertEqual(st, 200, data)
        j = json.loads(data)
        self.assertEqual([l[0]["role"] for l in j["moa"]["layers"]], ["propose"])
        self.assertIn("Sources:", j["choices"][0]["message"]["content"])
        # streamed with several proposers: one coherent answer, not interleaved
        st, _, data = self.d.chat("Is ibuprofen safe with blood pressure pills, legally and medically?",
                                  stream=True, moa={"layers": 1, "agents": ["legal", "medical"]})
        self.assertEqual(st, 200)
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "")
                       for e in parse_sse(data)[:-1] if json.loads(e)["choices"])
        st, _, data = self.d.chat("Is ibuprofen safe with blood pressure pills, legally and medically?",
                                  moa={"layers": 1, "agents": ["legal", "medical"]})
        self.assertEqual(text, json.loads(data)["choices"][0]["message"]["content"])

    def test_lite_pipeline(self):
        st, _, data = self.d.chat("What is a mortgage?", model="moa-lite", moa={"trace": True})
        self.assertEqual(st, 200, data)
        self.assertEqual(len(json.loads(data)["moa"]["layers"]), 2)

    def test_array_content_parts(self):
        body = {"model": "moa", "messages": [{"role": "user", "content": [{"type": "text", "text": "What is inflation?"}]}]}
        st, _, data = self.d.request("POST", "/v1/chat/completions", body)
        self.assertEqual(st, 200, data)


class Errors(DaemonTestCase):
    config = "limits:\n  max_body_bytes: 65536\n  max_messages: 4\n"

    def error(self, st, h, data, status, code=None, param=None):
        self.assertEqual(st, status, data)
        self.assertTrue(h["content-type"].startswith("application/json"))
        e = json.loads(data)["error"]
        self.assertIsInstance(e["message"], str)
        self.assertTrue(e["message"])
        self.assertIn("type", e)
        self.assertIn("param", e)
        self.assertIn("code", e)
        if code:
            self.assertEqual(e["code"], code)
        if param:
            self.assertEqual(e["param"], param)
        self.assertIn("x-request-id", h)
        return e

    def post(self, body, ctype="application/json"):
        return self.d.request("POST", "/v1/chat/completions", body, {"Content-Type": ctype})

    def test_malformed_json(self):
        self.error(*self.post(b'{"model": "moa", "messages": ['), 400, "invalid_json")

    def test_not_an_object(self):
        self.error(*self.post(b'[1,2]'), 400, "invalid_json")

    def test_empty_body(self):
        self.error(*self.post(b''), 400, "invalid_json")

    def test_missing_messages(self):
        self.error(*self.post(b'{"model":"moa"}'), 400, "missing_required_parameter", "messages")

    def test_empty_messages(self):
        self.error(*self.post(b'{"model":"moa","messages":[]}'), 400, "empty_array", "messages")

    def test_messages_wrong_type(self):
        self.error(*self.post(b'{"model":"moa","messages":"hi"}'), 400, "invalid_type", "messages")

    def test_bad_role(self):
        self.error(*self.post(b'{"model":"moa","messages":[{"role":"wizard","content":"x"}]}'), 400,
                   "invalid_value", "messages")

    def test_no_user_message(self):
        self.error(*self.post(b'{"model":"moa","messages":[{"role":"system","content":"x"}]}'), 400,
                   "missing_user_message")

    def test_too_many_messages(self):
        msgs = [{"role": "user", "content": "q"}] * 5
        self.error(*self.post(json.dumps({"model": "moa", "messages": msgs}).encode()), 400, "too_many_messages")

    def test_missing_model_uses_default_pipeline(self):
        st, _, data = self.post(b'{"messages":[{"role":"user","content":"What is GDPR?"}]}')
        self.assertEqual(st, 200, data)
        self.assertEqual(json.loads(data)["model"], "moa")  # default_pipeline

    def test_wrong_types(self):
        base = {"model": "moa", "messages": [{"role": "user", "content": "x"}]}
        for field, value, param in (("stream", "yes", "stream"), ("temperature", "hot", "temperature"),
                                    ("temperature", 7, "temperature"), ("max_tokens", -1, "max_tokens"),
                                    ("model", 5, "model"), ("moa", [], "moa"),
                                    ("stream_options", {"include_usage": 1}, "stream_options.include_usage")):
            body = dict(base)
            body[field] = value
            self.error(*self.post(json.dumps(body).encode()), 400, param=param)

    def test_unknown_model(self):
        e = self.error(*self.post(b'{"model":"gpt-17","messages":[{"role":"user","content":"x"}]}'), 404,
                       "model_not_found", "model")
        self.assertIn("gpt-17", e["message"])

    def test_unknown_pinned_agent(self):
        self.error(*self.post(b'{"model":"moa","messages":[{"role":"user","content":"x"}],"moa":{"agents":["astrology"]}}'),
                   400, "agent_not_found")

    def test_body_too_large(self):
        big = json.dumps({"model": "moa", "messages": [{"role": "user", "content": "x" * 70000}]}).encode()
        self.error(*self.post(big), 413)

    def test_body_too_large_chunked(self):
        # No Content-Length: the limit is enforced while reading.
        c = self.d.conn()
        c.putrequest("POST", "/v1/chat/completions")
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        chunk = b"x" * 16384
        for _ in range(6):
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        self.assertEqual(r.status, 413)
        self.assertIn("error", json.loads(r.read()))
        c.close()

    def test_wrong_method(self):
        st, h, data = self.d.request("GET", "/v1/chat/completions")
        self.error(st, h, data, 405)
        self.assertIn("POST", h["allow"])
        st, h, data = self.d.request("DELETE", "/v1/models")
        self.error(st, h, data, 405)

    def test_wrong_content_type(self):
        self.error(*self.post(b'model=moa', "application/x-www-form-urlencoded"), 415)
        self.error(*self.post(b'{}', "text/plain"), 415)

    def test_json_content_type_with_charset(self):
        st, _, data = self.post(b'{"model":"moa","messages":[{"role":"user","content":"What is GDPR?"}]}',
                                "application/json; charset=utf-8")
        self.assertEqual(st, 200, data)

    def test_unknown_path(self):
        self.error(*self.d.request("GET", "/v2/nothing"), 404)

    def test_invalid_utf8(self):
        self.error(*self.post(b'{"model":"moa","messages":[{"role":"user","content":"\xff\xfe"}]}'), 400)

    def test_daemon_survives(self):
        st, _, _ = self.d.request("GET", "/healthz")
        self.assertEqual(st, 200)


class Misc(DaemonTestCase):
    def test_models(self):
        st, _, j = self.d.json("GET", "/v1/models")
        self.assertEqual(st, 200)
        self.assertEqual(j["object"], "list")
        ids = [m["id"] for m in j["data"]]
        for name in ("moa", "moa-lite", "legal", "medical", "finance", "code", "general"):
            self.assertIn(name, ids)
        for m in j["data"]:
            self.assertEqual(m["object"], "model")
            self.assertIsInstance(m["created"], int)
            self.assertEqual(m["owned_by"], "moad")

    def test_model_retrieve(self):
        st, _, j = self.d.json("GET", "/v1/models/legal")
        self.assertEqual(st, 200)
        self.assertEqual((j["id"], j["object"], j["owned_by"]), ("legal", "model", "moad"))
        st, _, j = self.d.json("GET", "/v1/models/moa")
        self.assertEqual(j["moa_kind"], "pipeline")
        st, _, j = self.d.json("GET", "/v1/models/gpt-9")
        self.assertEqual(st, 404)
        self.assertEqual(j["error"]["code"], "model_not_found")
        self.assertEqual(self.d.request("POST", "/v1/models/legal")[0], 405)

    def test_health_and_ready(self):
        self.assertEqual(self.d.json("GET", "/healthz")[2], {"status": "ok"})
        self.assertEqual(self.d.json("GET", "/readyz")[2], {"status": "ready"})

    def test_request_id_echoed_and_logged(self):
        st, h, _ = self.d.request("GET", "/healthz", headers={"x-request-id": "abc-123_test"})
        self.assertEqual(h["x-request-id"], "abc-123_test")
        self.assertTrue(self.d.wait_log("[abc-123_test] GET /healthz 200"), self.d.read_log()[-2000:])

    def test_request_id_generated(self):
        _, h1, _ = self.d.request("GET", "/healthz")
        _, h2, _ = self.d.request("GET", "/healthz")
        self.assertTrue(h1["x-request-id"])
        self.assertNotEqual(h1["x-request-id"], h2["x-request-id"])
        # An unsafe client id is replaced, not echoed.
        _, h3, _ = self.d.request("GET", "/healthz", headers={"x-request-id": "bad id\x7f"})
        self.assertNotEqual(h3["x-request-id"], "bad id\x7f")

    def test_keep_alive(self):
        c = self.d.conn()
        c.connect()
        sock = c.sock
        for q in ("What is GDPR?", "What is a kernel panic?", "What is a fever?"):
            st, _, data = self.d.request("POST", "/v1/chat/completions",
                                         {"model": "moa", "messages": [{"role": "user", "content": q}]}, conn=c)
            self.assertEqual(st, 200, data)
            self.assertIs(c.sock, sock)  # same connection reused
        st, _, data = self.d.request("POST", "/v1/chat/completions",
                                     {"model": "moa", "stream": True,
                                      "messages": [{"role": "user", "content": "What is inflation?"}]}, conn=c)
        self.assertEqual(st, 200)
        self.assertEqual(parse_sse(data)[-1], "[DONE]")
        st, _, _ = self.d.request("GET", "/healthz", conn=c)
        self.assertEqual(st, 200)
        self.assertIs(c.sock, sock)
        c.close()

    def test_no_accept_header_needed(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.d.socket)
        body = b'{"model":"moa","messages":[{"role":"user","content":"What is GDPR?"}]}'
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])

    def test_route(self):
        st, _, j = self.d.json("POST", "/v1/moa/route", {"query": "My kernel panics after a driver update"})
        self.assertEqual(st, 200, j)
        self.assertIn("code", j["selected"])
        self.assertEqual({a["name"] for a in j["agents"]}, {"legal", "medical", "finance", "code", "general"})
        st, _, j = self.d.json("POST", "/v1/moa/route", {"messages": [{"role": "user", "content": "Can my landlord keep my deposit?"}]})
        self.assertEqual(st, 200)
        self.assertIn("legal", j["selected"])
        st, _, j = self.d.json("POST", "/v1/moa/route", {"nothing": 1})
        self.assertEqual(st, 400)

    def test_agents(self):
        st, _, j = self.d.json("GET", "/v1/moa/agents")
        self.assertEqual(st, 200)
        names = {a["name"]: a for a in j["agents"]}
        self.assertEqual(set(names), {"legal", "medical", "finance", "code", "general"})
        for a in names.values():
            self.assertGreater(a["documents"], 0)

    def test_metrics(self):
        self.d.request("GET", "/healthz")
        self.d.chat("What is compound interest?", stream=True, moa={"agents": ["finance"]})
        st, h, data = self.d.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/plain"))
        text = data.decode()
        self.assertIn('moad_http_requests_total{endpoint="/healthz",status="200"}', text)
        self.assertRegex(text, r'moad_agent_calls_total\{agent="finance"\} [1-9]')
        self.assertRegex(text, r'moad_chat_requests_total\{pipeline="moa",status="200"\} [1-9]')
        self.assertRegex(text, r'moad_agent_tokens_total\{agent="finance",kind="completion"\} [1-9]')
        self.assertRegex(text, r'moad_agent_call_duration_seconds_count\{agent="finance"\} [1-9]')
        self.assertRegex(text, r'moad_time_to_first_token_seconds_count [1-9]')
        self.assertRegex(text, r'moad_overhead_seconds_count [1-9]')
        self.assertRegex(text, r'moad_inflight_requests 0')
        # histogram buckets are cumulative
        import re
        b = [int(x) for x in re.findall(r'moad_overhead_seconds_bucket\{le="[^"]+"\} (\d+)', text)]
        self.assertEqual(b, sorted(b))
        for line in text.splitlines():
            if line.startswith("#"):
                self.assertRegex(line, r"^# (HELP|TYPE) moad_\w+ ")
            else:
                self.assertRegex(line, r'^moad_\w+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$')
        # every sample's metric has a TYPE line
        types = set(re.findall(r'^# TYPE (\w+) ', text, re.M))
        for line in text.splitlines():
            if not line.startswith("#"):
                name = re.match(r'^(\w+)', line).group(1)
                base = re.sub(r'_(bucket|sum|count)$', '', name)
                self.assertTrue(name in types or base in types, line)


if __name__ == "__main__":
    unittest.main()
