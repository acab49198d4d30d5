#!/usr/bin/env python3
"""fake-moad.py — a stand-in for moad's HTTP API on a Unix socket, for
testing moactl without the daemon. Canned, deterministic replies; the
question text of a chat request picks a misbehaviour (split events, a
mid-stream error, garbage, oversized replies, ...). GET /_fake/last returns
the last request it received so tests can check what moactl sent.

Usage: fake-moad.py --socket PATH [--not-ready]
Prints "ready" on stdout once it listens.
"""
import argparse
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

AGENTS = [
    {"name": "legal", "plugin": "legal", "version": "1.0", "description": "Contracts and law",
     "weight": 1.0, "provider": "builtin", "model": "builtin", "documents": 2},
    {"name": "medical", "plugin": "medical", "version": "1.0", "description": "Health\x1b[31m",
     "weight": 0.8, "provider": "builtin", "model": "builtin", "documents": 0},
]


# Keys moactl looks for, so random replies reach deep into its parsing.
KEYS = ["error", "message", "type", "choices", "delta", "content", "index", "usage", "total_tokens",
        "prompt_tokens", "completion_tokens", "moa", "route", "layers", "agents", "name", "agent", "score",
        "plugin_score", "kb_score", "selected", "reason", "weight", "latency_ms", "status", "attempts",
        "provider", "role", "warnings", "pipeline", "data", "id", "owned_by", "documents", "title", "chunks",
        "bytes", "ingested_at", "source", "deleted", "state", "version", "uptime_s", "inflight", "queued",
        "requests_total", "pipelines", "replaced"]


def random_json(rng, depth=0):
    kinds = ["int", "float", "str", "bool", "null", "big"] + (["list", "obj", "obj"] if depth < 5 else [])
    k = rng.choice(kinds)
    if k == "int":
        return rng.choice([0, -1, 1, 2 ** 63 - 1, -2 ** 63, rng.randint(-1000, 1000)])
    if k == "float":
        return rng.choice([0.5, -1e308, 1e308, 1e-300, rng.random() * 1e6])
    if k == "big":
        return "x" * rng.choice([0, 1, 200, 5000])
    if k == "str":
        return "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 20)))
    if k == "bool":
        return rng.random() < 0.5
    if k == "null":
        return None
    if k == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 8))}


class State:
    def __init__(self, ready):
        self.ready = ready
        self.lock = threading.Lock()
        self.last = None
        self.docs = {"legal": {}}
        self.chaos = None  # (seed, kind) for the next request, set by POST /_fake/chaos


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-moad/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    # -- helpers -------------------------------------------------------
    def rid(self):
        return self.headers.get("x-request-id") or "fake-req-1"

    def send_json(self, status, obj, extra_headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", self.rid())
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, status, message, etype="invalid_request_error"):
        self.send_json(status, {"error": {"message": message, "type": etype, "param": None, "code": None}})

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def record(self, body):
        with self.server.state.lock:
            self.server.state.last = {"method": self.command, "path": self.path,
                                      "body": body.decode("utf-8", "replace"),
                                      "content_type": self.headers.get("Content-Type")}

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", self.rid())
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    # -- dispatch ------------------------------------------------------
    def chaos(self):
        """Answer the request with seeded garbage if a test asked for it."""
        import random
        st = self.server.state
        with st.lock:
            c, st.chaos = st.chaos, None
        if not c:
            return False
        seed, kind = c
        rng = random.Random(seed)
        self.close_connection = True
        if kind == "raw":
            self.raw(bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 3000))))
        elif kind == "json":
            body = json.dumps(random_json(rng)).encode()
            self.send_response(rng.choice([200, 200, 200, 201, 400, 404, 500, 503]))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.raw(body)
        elif kind == "shape":
            # An object with the right top-level keys but random values.
            body = json.dumps({k: random_json(rng) for k in rng.sample(KEYS, 12)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.raw(body)
        elif kind == "sse-shape":
            # Well-formed events whose chunks, usage and trace have random values.
            self.start_stream()
            out = b""
            for _ in range(rng.randint(1, 6)):
                ev = {"choices": rng.choice([[{"index": 0, "delta": {"content": random_json(rng)}}],
                                             random_json(rng)]),
                      "usage": random_json(rng),
                      "moa": {"route": random_json(rng), "layers": rng.choice(
                          [random_json(rng), [[random_json(rng) for _ in range(3)] for _ in range(2)],
                           [{"role": "x", "agents": random_json(rng)}]]),
                              "warnings": random_json(rng), "pipeline": random_json(rng)}}
                out += b"data: " + json.dumps(ev).encode() + b"\n\n"
            self.raw(out + b"data: [DONE]\n\n")
        else:  # sse
            self.start_stream()
            out = b""
            for _ in range(rng.randint(0, 12)):
                r = rng.random()
                if r < 0.6:
                    ev = {"choices": [{"index": 0, "delta": random_json(rng)}]} if rng.random() < 0.5 \
                        else random_json(rng)
                    out += b"data: " + json.dumps(ev).encode() + b"\n\n"
                elif r < 0.8:
                    out += bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 200)))
                else:
                    out += rng.choice([b"\n", b"\r\n", b":c\n", b"data:\n\n", b"event: x\n", b"id: 1\n",
                                       b"data: [DONE]\n\n"])
            try:
                self.raw(out)
            except (BrokenPipeError, ConnectionResetError):
                pass
        return True

    def do_GET(self):
        if self.chaos():
            return
        if self.path != "/_fake/last":
            self.record(b"")
        st = self.server.state
        path = self.path
        if path == "/healthz":
            return self.send_json(200, {"status": "ok"})
        if path == "/readyz":
            return self.send_json(200 if st.ready == "ready" else 503, {"status": st.ready})
        if path == "/v1/models":
            return self.send_json(200, {"object": "list", "data": [
                {"id": "moa", "object": "model", "created": 1, "owned_by": "moad"},
                {"id": "moa-lite", "object": "model", "created": 1, "owned_by": "moad"},
                {"id": "legal", "object": "model", "created": 1, "owned_by": "moad"}]})
        if path == "/v1/moa/agents":
            return self.send_json(200, {"agents": AGENTS})
        if path == "/v1/moa/status":
            return self.send_json(200, {"version": "0.1.0", "uptime_s": 3723, "inflight": 2, "queued": 1,
                                        "requests_total": 42, "agents": 5, "pipelines": ["moa", "moa-lite"],
                                        "state": st.ready, "kb_bytes": 1234})
        if path == "/metrics":
            body = b"# TYPE moad_requests_total counter\nmoad_requests_total 42\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        if path == "/_fake/last":
            with st.lock:
                return self.send_json(200, st.last or {})
        parts = path.split("/")
        if len(parts) == 6 and parts[1:4] == ["v1", "moa", "agents"] and parts[5] == "documents":
            agent = urllib.parse.unquote(parts[4])
            if agent not in st.docs:
                return self.send_error_json(404, "no such agent: " + agent, "not_found_error")
            docs = [{"title": t, "source": d["source"], "chunks": d["chunks"], "bytes": len(d["text"]),
                     "ingested_at": 1764088250, "sha256": d.get("sha256"), "size": d.get("size"),
                     "mtime": d.get("mtime")} for t, d in sorted(st.docs[agent].items())]
            return self.send_json(200, {"documents": docs})
        return self.send_error_json(404, "unknown path " + path, "not_found_error")

    def do_DELETE(self):
        if self.chaos():
            return
        self.record(b"")
        st = self.server.state
        parts = self.path.split("/")
        if len(parts) == 7 and parts[1:4] == ["v1", "moa", "agents"] and parts[5] == "documents":
            agent = urllib.parse.unquote(parts[4])
            title = urllib.parse.unquote(parts[6])
            if title in st.docs.get(agent, {}):
                del st.docs[agent][title]
                return self.send_json(200, {"deleted": True})
            return self.send_error_json(404, "no document '%s' in agent %s" % (title, agent), "not_found_error")
        return self.send_error_json(405, "method not allowed")

    def do_POST(self):
        body = self.read_body()
        st = self.server.state
        path = self.path
        if path == "/_fake/chaos":
            c = json.loads(body)
            with st.lock:
                st.chaos = (c["seed"], c["kind"])
            return self.send_json(200, {})
        if self.chaos():
            return
        self.record(body)
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            return self.send_error_json(400, "body is not JSON")
        if path == "/v1/chat/completions":
            return self.chat(req)
        if path == "/v1/moa/route":
            return self.send_json(200, {"query": req.get("query"), "agents": [
                {"name": "legal", "score": 0.71, "plugin_score": 0.8, "learned_score": 0.9, "kb_score": 0.5,
                 "reason": "keywords: contract", "learned_terms": "contract, signs",
                 "kb_terms": "contract (in 3 of 40 chunks); documents: contracts.md", "selected": True},
                {"name": "medical", "score": 0.05, "plugin_score": 0.0, "learned_score": None, "kb_score": 0.1,
                 "reason": "", "learned_terms": "", "kb_terms": "", "selected": False}], "selected": ["legal"]})
        if path == "/v1/moa/reload":
            if st.ready != "ready":
                return self.send_error_json(400, "/etc/moad/moad.yaml:3:5: unknown key 'listen'")
            return self.send_json(200, {"status": "reloaded"})
        parts = path.split("/")
        if len(parts) == 6 and parts[1:4] == ["v1", "moa", "agents"] and parts[5] == "documents":
            agent = urllib.parse.unquote(parts[4])
            if agent not in st.docs:
                return self.send_error_json(404, "no such agent: " + agent, "not_found_error")
            if self.headers.get("Content-Type") != "application/json":
                return self.send_error_json(415, "need application/json")
            title, text = req.get("title"), req.get("text")
            if not isinstance(title, str) or not isinstance(text, str) or not title:
                return self.send_error_json(400, "title and text are required")
            if "reject" in title:
                return self.send_error_json(413, "document too large")
            if "forbidden" in title:
                return self.send_json(403, {"error": {"message": "not allowed: admin endpoints need a permitted "
                                                                 "user or group", "type": "permission_error",
                                                      "param": None, "code": "forbidden"}})
            replaced = title in st.docs[agent]
            chunks = len(text) // 100 + 1
            st.docs[agent][title] = {"source": req.get("source"), "text": text, "chunks": chunks,
                                     "sha256": req.get("sha256"), "size": req.get("size"), "mtime": req.get("mtime")}
            return self.send_json(200, {"agent": agent, "title": title, "chunks": chunks, "replaced": replaced})
        return self.send_error_json(404, "unknown path " + path, "not_found_error")

    # -- chat ----------------------------------------------------------
    def chat(self, req):
        msgs = req.get("messages") or [{}]
        q = msgs[-1].get("content", "")
        moa = req.get("moa") or {}
        agents = moa.get("agents") or []
        answer = ["Echo: ", q, " [agents=%s]" % ",".join(agents)]
        # The shape moad's engine produces (daemon/engine.c call_to_json()).
        trace = {"route": [{"name": "legal", "score": 0.71, "plugin_score": 0.8, "kb_score": 0.5,
                            "selected": True, "reason": "contract"}],
                 "layers": [[{"agent": "legal", "role": "propose", "weight": 1.0, "latency_ms": 12,
                              "status": "ok", "usage": {"total_tokens": 30}, "attempts": 1, "provider": "builtin"},
                             {"agent": "finance", "role": "propose", "weight": 0.5, "latency_ms": 3000,
                              "status": "error", "error": "timed out", "attempts": 3, "provider": "vllm"}],
                            [{"agent": "aggregator", "role": "aggregate", "weight": 1.0, "latency_ms": 20,
                              "status": "ok", "usage": {"total_tokens": 50}, "attempts": 1,
                              "provider": "builtin"}]],
                 "pipeline": "moa-lite",
                 "warnings": ["finance failed: timed out"]}
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

        if q == "error404":
            return self.send_error_json(404, "unknown model 'nope'", "not_found_error")
        if q == "error500-noerror":
            return self.send_json(500, {"oops": True})
        if q == "garbage":
            self.close_connection = True
            return self.raw(b"this is not HTTP at all\r\n\r\n")
        if q == "close":
            self.close_connection = True
            return
        if q == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(100 * 1024 * 1024))
            self.end_headers()
            self.close_connection = True
            return self.raw(b"{" * 1024)
        if q == "hugechunked":
            self.start_stream()
            # 65 MiB of SSE comments: never an event, only bytes.
            block = b":" + b"x" * (1024 * 1024 - 2) + b"\n"
            try:
                for _ in range(66):
                    self.wfile.write(block)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if q == "slow":
            time.sleep(5)

        if not req.get("stream"):
            reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": req.get("model"),
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(answer)},
                                  "finish_reason": "stop"}], "usage": usage}
            if moa.get("trace"):
                reply["moa"] = trace
            return self.send_json(200, reply)

        def chunk(delta, finish=None, **kw):
            c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": req.get("model"),
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            c.update(kw)
            return ("data: " + json.dumps(c) + "\n\n").encode()

        self.start_stream()
        if q == "badjson":
            return self.raw(chunk({"role": "assistant"}) + b"data: {not json\n\n")
        if q == "bigevent":
            return self.raw(b"data: " + b"a" * (2 * 1024 * 1024))
        if q == "midstream-error":
            return self.raw(chunk({"role": "assistant"}) + chunk({"content": "partial answer"}) +
                            b'data: {"error":{"message":"upstream provider failed","type":"server_error"}}\n\n')
        if q == "no-done":
            return self.raw(chunk({"role": "assistant"}) + chunk({"content": "cut"}))
        if q == "escape":
            return self.raw(chunk({"content": "red\x1b[31mtext\n"}) + b"data: [DONE]\n\n")

        stream = chunk({"role": "assistant"})
        for piece in answer:
            stream += chunk({"content": piece})
        last = {}
        if moa.get("trace"):
            last["moa"] = trace
        stream += chunk({}, "stop", **last)
        stream += ("data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                                          "model": req.get("model"), "choices": [], "usage": usage}) +
                   "\n\n").encode()
        # A comment and other fields moactl must ignore.
        stream = b": keep-alive\n\n" + stream + b"data: [DONE]\n\n"
        if q == "split":
            # Every event cut at awkward places: one byte at a time, with CRLF line ends.
            stream = stream.replace(b"\n", b"\r\n")
            for i in range(len(stream)):
                self.raw(stream[i:i + 1])
            return
        self.raw(stream)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # moactl hanging up on a garbage or oversized reply is expected.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--not-ready", action="store_true")
    args = ap.parse_args()
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    state = State("starting" if args.not_ready else "ready")
    srv = Server(args.socket, Handler)
    srv.state = state
    print("ready", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        os.unlink(args.socket)


if __name__ == "__main__":
    sys.exit(main())
