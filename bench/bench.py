#!/usr/bin/env python3
"""moad benchmark suite (run through bench/run.sh).

Starts tests/mock-upstream and one moad on loopback/Unix sockets, drives
them with bench/moabench (closed-loop, C, libcurl multi) and measures in one
run on one machine:

  1. gateway overhead: one pinned agent on mock `fixed-20` through moad vs
     the same request straight to the mock, at several concurrencies
     (interleaved rounds, samples pooled); the builtin provider (no
     upstream) and GET /healthz as the daemon's own request cost;
  2. a 3-layer pipeline (proposers 100/150/200 ms, refiners the same,
     aggregator 50 ms): wall time vs the sum of per-layer maxima, upstream
     calls per request (mock /mock/stats);
  3. TTFT: a streaming (stream-20) single agent and the streaming
     aggregator of the pipeline, minus the mock's own TTFT;
  4. moad CPU time per request (utime+stime from /proc/<pid>/stat around
     each measured run) and RSS (VmRSS/VmHWM).

Everything is bounded: request counts, a time limit per run, an overall
budget (remaining scenarios are skipped, and say so, when it is spent).
Only 127.0.0.1 and Unix sockets in a temporary directory are used.
Writes <out>/<date>-<gitshort>.md and .json and prints the tables.
"""
import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
KNOWLEDGE = os.path.join(SRC, "agents.d", "knowledge")
CLK_TCK = os.sysconf("SC_CLK_TCK")
QUERY = "What happens when a contract is breached?"


# ---------------------------------------------------------------- processes

class Mock:
    def __init__(self, build):
        self.proc = subprocess.Popen([os.path.join(build, "tests", "mock-upstream"), "--port", "0"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError("mock-upstream did not start: %r" % line)
        self.port = int(line.split()[1])
        self.base = "http://127.0.0.1:%d" % self.port

    def stats(self):
        with urllib.request.urlopen(self.base + "/mock/stats", timeout=10) as r:
            return json.load(r)

    def reset(self):
        req = urllib.request.Request(self.base + "/mock/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def unix_get(path, url, timeout=5, body=None):
    """One HTTP/1.1 request over a Unix socket (POST when @body is given): (status, body bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        if body is None:
            s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % url).encode())
        else:
            data = body.encode()
            s.sendall(("POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (url, len(data))).encode()
                      + data)
        data = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def proc_cpu_s(pid):
    """utime + stime of process @pid (all threads) so far, in seconds (1/CLK_TCK resolution)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_sched(pid):
    """(ns on a CPU, ns runnable but waiting for a CPU) summed over @pid's threads."""
    run = wait = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    a = f.read().split()
                run += int(a[0])
                wait += int(a[1])
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        pass
    return run, wait


def system_busy_s():
    """CPU seconds the whole machine spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


class Moad:
    def __init__(self, build, workdir, config, agents_dir):
        self.socket = os.path.join(workdir, "moad.sock")
        cfg = os.path.join(workdir, "moad.yaml")
        with open(cfg, "w") as f:
            f.write(config)
        env = dict(os.environ)
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "LISTEN_FDS", "LISTEN_PID",
                  "NOTIFY_SOCKET"):
            env.pop(k, None)
        env.setdefault("MOAD_PLUGIN_DIR", os.path.join(build, "plugins"))
        self.log_path = os.path.join(workdir, "moad.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(build, "daemon", "moad"), "--socket", self.socket,
                                      "--state-dir", os.path.join(workdir, "state"), "--config", cfg,
                                      "--agents-dir", agents_dir],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        end = time.time() + 60
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("moad exited %d:\n%s" % (self.proc.returncode, self.read_log()[-3000:]))
            if os.path.exists(self.socket):
                try:
                    if unix_get(self.socket, "/readyz")[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("moad not ready:\n" + self.read_log()[-3000:])

    def read_log(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def sched(self):
        return proc_sched(self.proc.pid)

    def mem_kib(self):
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        return out

    def stop(self):
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        else:
            rc = self.proc.returncode
        self.log.close()
        return rc


# ---------------------------------------------------------------- config

def write_agents(d, mock_port):
    """Agent files: name -> (plugin, provider, model, knowledge)."""
    agents = {
        "legal": ("legal", "mock", "fixed-20", "legal"),          # gateway overhead
        "legal-nokb": ("legal", "mock", "fixed-20", None),        # same, no knowledge base
        "legal-cap": ("legal", "mockcap", "fixed-20", "legal"),   # provider with default limits
        "legal-stream": ("legal", "mock", "stream-20", "legal"),  # single-agent TTFT
        "legal-builtin": ("legal", "builtin", None, "legal"),     # no upstream at all
        "p100": ("legal", "mock", "fixed-100", "legal"),          # pipeline proposers/refiners
        "p150": ("finance", "mock", "fixed-150", "finance"),
        "p200": ("medical", "mock", "fixed-200", "medical"),
    }
    for name, (plugin, provider, model, kb) in agents.items():
        with open(os.path.join(d, name + ".yaml"), "w") as f:
            f.write("name: %s\nplugin: %s\nprovider: %s\n" % (name, plugin, provider))
            if model:
                f.write("model: %s\n" % model)
            if kb:
                f.write("knowledge: [%s]\n" % os.path.join(KNOWLEDGE, kb))


CONFIG = """\
log_level: info
listen:
  tcp: "127.0.0.1:{tcp_port}"
router:
  fallback: legal
providers:
  - name: mock
    type: openai
    base_url: {url}/v1
    model: echo
    max_retries: 0
    timeout_ms: 30000
    max_concurrency: 1024
    max_queue: 8192
  - name: mockcap          # the provider defaults (concurrency 16, queue 256)
    type: openai
    base_url: {url}/v1
    model: echo
    max_retries: 0
    timeout_ms: 30000
  - name: agg-fixed
    type: openai
    base_url: {url}/v1
    model: fixed-50
    max_retries: 0
    timeout_ms: 30000
    max_concurrency: 1024
  - name: agg-stream
    type: openai
    base_url: {url}/v1
    model: stream-20
    max_retries: 0
    timeout_ms: 30000
    max_concurrency: 1024
pipelines:
  - name: bench3
    deadline_ms: 30000
    layers:
      - role: propose
        quorum: 1.0
      - role: refine
        quorum: 1.0
      - role: aggregate
        agent: agg-fixed
  - name: bench3s
    deadline_ms: 30000
    layers:
      - role: propose
        quorum: 1.0
      - role: refine
        quorum: 1.0
      - role: aggregate
        agent: agg-stream
limits:
  max_connections: 4096
  max_inflight: 1024
  max_queue: 8192
"""


def free_tcp_port():
    """A port that was free a moment ago on 127.0.0.1 (the kernel's pick)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def chat_body(model, stream=False, agents=None, query=QUERY):
    b = {"model": model, "messages": [{"role": "user", "content": query}]}
    if stream:
        b["stream"] = True
    if agents:
        b["moa"] = {"agents": agents}
    return json.dumps(b)


def filler_words(n):
    """@n words of real text (the legal sample knowledge), repeated as needed."""
    words = []
    d = os.path.join(KNOWLEDGE, "legal")
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), errors="replace") as f:
            words += f.read().split()
    words = words or ["lorem"]
    return " ".join(words[i % len(words)] for i in range(max(0, n)))


def direct_body(model, prompt_words, stream=False, query=QUERY):
    """The client's question plus a system message, so that the mock counts
    @prompt_words words, as it does for the prompt moad sends upstream."""
    b = {"model": model, "messages": [{"role": "system", "content": filler_words(prompt_words - len(query.split()))},
                                      {"role": "user", "content": query}]}
    if stream:
        b["stream"] = True
    return json.dumps(b)


# ---------------------------------------------------------------- statistics

def pct(sorted_v, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_v:
        return None
    k = max(0, min(len(sorted_v) - 1, math.ceil(p / 100.0 * len(sorted_v) - 1e-9) - 1))
    return sorted_v[k]


def summary(us):
    v = sorted(us)
    if not v:
        return {"n": 0}
    ms = lambda x: x / 1000.0
    return {"n": len(v), "min": ms(v[0]), "p50": ms(pct(v, 50)), "p90": ms(pct(v, 90)),
            "p99": ms(pct(v, 99)), "max": ms(v[-1]), "mean": ms(sum(v) / len(v))}


# ---------------------------------------------------------------- runner

class Suite:
    def __init__(self, args):
        self.args = args
        self.build = args.build
        self.bench = os.path.join(self.build, "bench", "moabench")
        self.t0 = time.monotonic()
        self.results = {"scenarios": [], "skipped": [], "problems": []}
        self.moad = None
        self.mock = None
        self.direct_words = len(QUERY.split())
        self.client_prefix = []

    def pin(self):
        """--pin: moad alone on the last CPU, the mock and the load generator on the others."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            self.problem("--pin needs at least 2 CPUs; not pinned")
            return
        moad_cpu, others = {cpus[-1]}, set(cpus[:-1])
        for t in os.listdir("/proc/%d/task" % self.moad.proc.pid):
            os.sched_setaffinity(int(t), moad_cpu)
        for t in os.listdir("/proc/%d/task" % self.mock.proc.pid):
            os.sched_setaffinity(int(t), others)
        self.client_prefix = ["taskset", "-c", ",".join(str(c) for c in sorted(others))]
        self.results["pinned"] = {"moad": sorted(moad_cpu), "mock_and_client": sorted(others)}
        print("pinned: moad on CPU %s, mock and load generator on CPU %s" % (
            sorted(moad_cpu), sorted(others)), flush=True)

    def remaining(self):
        return self.args.budget - (time.monotonic() - self.t0)

    def moabench(self, url, body=None, unix=None, n=100, c=1, warmup=0, stream=False, expect=None,
                 max_s=60):
        max_s = max(1.0, min(max_s, self.remaining() - 5))
        cmd = self.client_prefix + [self.bench, "--url", url, "-n", str(n), "-c", str(c), "--warmup", str(warmup),
               "--max-seconds", "%.1f" % max_s, "--timeout-ms", "30000"]
        if unix:
            cmd += ["--unix", unix]
        if body is not None:
            cmd += ["--body", body]
        if stream:
            cmd += ["--stream"]
        if expect:
            cmd += ["--expect", expect]
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu0, sch0 = self.moad.cpu_s(), self.moad.sched()
        mock0, sys0, t0 = proc_cpu_s(self.mock.proc.pid), system_busy_s(), time.monotonic()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=max_s + 60)
        wall = time.monotonic() - t0
        cpu1, sch1 = self.moad.cpu_s(), self.moad.sched()
        mock1, sys1 = proc_cpu_s(self.mock.proc.pid), system_busy_s()
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode != 0:
            raise RuntimeError("moabench failed: %s" % out.stderr)
        r = json.loads(out.stdout)
        r["client_cpu_s"] = (after_children.ru_utime + after_children.ru_stime
                             - before_children.ru_utime - before_children.ru_stime)
        r["mock_cpu_s"] = mock1 - mock0
        r["span_s"] = wall
        r["system_busy_s"] = sys1 - sys0
        r["moad_cpu_all_s"] = cpu1 - cpu0
        r["moad_run_s"] = (sch1[0] - sch0[0]) / 1e9
        r["moad_wait_s"] = (sch1[1] - sch0[1]) / 1e9
        if unix or url.startswith("http://127.0.0.1:%d/" % getattr(self, "tcp_port", -1)):
            r["moad_cpu_s"] = cpu1 - cpu0
        return r

    def pooled(self, label, runs):
        """Pool several moabench runs of one target into one record."""
        lat = [x for r in runs for x in r["lat_us"]]
        ttft = [x for r in runs for x in r["ttft_us"]]
        rec = {
            "label": label,
            "requests": sum(r["requests"] for r in runs),
            "ok": sum(r["ok"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "timeouts": sum(r["timeouts"] for r in runs),
            "status": {k: sum(r["status"][k] for r in runs) for k in runs[0]["status"]},
            "first_error": next((r["first_error"] for r in runs if r["first_error"]), ""),
            "wall_s": sum(r["wall_s"] for r in runs),
            "rounds": len(runs),
            "truncated_by_time": any(r["truncated_by_time"] for r in runs),
            "latency_ms": summary(lat),
            "ttft_ms": summary(ttft),
            "client_cpu_s": sum(r["client_cpu_s"] for r in runs),
            "mock_cpu_s": sum(r["mock_cpu_s"] for r in runs),
        }
        rec["rps"] = rec["requests"] / rec["wall_s"] if rec["wall_s"] > 0 else 0.0
        span = sum(r["span_s"] for r in runs)
        rec["span_s"] = span
        rec["moad_run_s"] = sum(r["moad_run_s"] for r in runs)
        rec["moad_runqueue_wait_s"] = sum(r["moad_wait_s"] for r in runs)
        # Machine load not caused by this benchmark: busy CPU time minus
        # moad, the mock and the load generator, in CPUs (cores) on average.
        other = sum(r["system_busy_s"] - r["moad_cpu_all_s"] - r["mock_cpu_s"] - r["client_cpu_s"] for r in runs)
        rec["background_cpus"] = max(0.0, other / span) if span > 0 else 0.0
        rec["moad_cpu_util"] = rec["moad_run_s"] / span if span > 0 else 0.0
        rec["moad_runqueue_wait_frac"] = rec["moad_runqueue_wait_s"] / span if span > 0 else 0.0
        if "moad_cpu_s" in runs[0]:
            rec["moad_cpu_s"] = sum(r["moad_cpu_s"] for r in runs)
            # schedstat run time has ns resolution; /proc/PID/stat ticks are kept as a cross-check.
            # Warm-up requests ran inside the same span: count them too.
            served = sum(r["requests"] + r["warmup"] for r in runs)
            rec["moad_cpu_ms_per_req"] = 1000.0 * rec["moad_run_s"] / max(1, served)
            rec["moad_cpu_ticks_ms_per_req"] = 1000.0 * rec["moad_cpu_s"] / max(1, served)
        if rec["errors"]:
            self.problem("%s: %d of %d requests failed (first: %s)" % (label, rec["errors"], rec["requests"],
                                                                      rec["first_error"]))
        if rec["truncated_by_time"]:
            self.problem("%s: stopped by its time limit after %d requests" % (label, rec["requests"]))
        return rec

    def problem(self, text):
        print("  ! " + text, flush=True)
        self.results["problems"].append(text)

    def skip(self, what):
        print("  - skipped (suite budget spent): " + what, flush=True)
        self.results["skipped"].append(what)

    def add(self, rec):
        self.results["scenarios"].append(rec)
        return rec

    # ------------------------------------------------------------ scenarios

    def overhead(self):
        a = self.args
        moad_url = "http://localhost/v1/chat/completions"
        mock_url = self.mock.base + "/v1/chat/completions"
        # moad sends the upstream a prompt with the plugin's system prompt and
        # retrieved passages; the direct baseline sends one of the same size.
        st, body = unix_get(self.moad.socket, "/v1/chat/completions", timeout=30, body=chat_body("legal"))
        words = json.loads(body)["usage"]["prompt_tokens"] if st == 200 else len(QUERY.split())
        self.results["upstream_prompt_words"] = words
        self.direct_words = words
        print("== 1. gateway overhead: agent 'legal' -> mock fixed-20, vs mock direct (size-matched prompt, "
              "%d words)" % words, flush=True)
        for c in a.levels:
            if self.remaining() < 20:
                self.skip("overhead c=%d" % c)
                continue
            n = a.n_overhead[c] if c in a.n_overhead else a.n_overhead_default
            per = max(c, n // a.rounds)
            direct, through = [], []
            mem0 = self.moad.mem_kib()
            for _ in range(a.rounds):
                direct.append(self.moabench(mock_url, direct_body("fixed-20", words), n=per, c=c, warmup=c,
                                            expect='"choices"', max_s=a.max_run_s))
                through.append(self.moabench(moad_url, chat_body("legal"), unix=self.moad.socket, n=per, c=c,
                                             warmup=c, expect='"choices"', max_s=a.max_run_s))
            d = self.pooled("direct mock fixed-20 c=%d" % c, direct)
            t = self.pooled("moad legal (fixed-20) c=%d" % c, through)
            t["rss_kib_after"] = self.moad.mem_kib()
            t["rss_kib_before"] = mem0
            rec = {"section": "overhead", "concurrency": c, "direct": d, "moad": t,
                   "overhead_ms": {k: t["latency_ms"][k] - d["latency_ms"][k] for k in ("p50", "p90", "p99", "max")
                                   if t["latency_ms"].get(k) is not None and d["latency_ms"].get(k) is not None}}
            self.add(rec)
            print("  c=%-4d direct p50 %.2f ms, moad p50 %.2f ms, overhead p50 %.2f p99 %.2f ms, "
                  "%.0f vs %.0f req/s, moad cpu %.3f ms/req" % (
                      c, d["latency_ms"]["p50"], t["latency_ms"]["p50"], rec["overhead_ms"].get("p50", 0),
                      rec["overhead_ms"].get("p99", 0), d["rps"], t["rps"], t["moad_cpu_ms_per_req"]), flush=True)

    def daemon_cost(self):
        a = self.args
        print("== 1b. daemon's own cost: no upstream (GET /healthz, builtin provider), no-KB agent, "
              "default provider cap", flush=True)
        cases = [
            ("healthz", "http://localhost/healthz", None, '"ok"', [1, 16], a.n_healthz),
            ("POST /v1/moa/route (router alone: 8 agents scored)", "http://localhost/v1/moa/route",
             json.dumps({"query": QUERY}), '"selected"', [1], a.n_builtin),
            ("legal-builtin (builtin provider)", "http://localhost/v1/chat/completions",
             chat_body("legal-builtin"), '"choices"', [1, 16], a.n_builtin),
            ("legal-nokb (fixed-20, no knowledge base)", "http://localhost/v1/chat/completions",
             chat_body("legal-nokb"), '"choices"', [1], a.n_overhead.get(1, a.n_overhead_default) // 2),
            ("GET /healthz over TCP (listen.tcp)", "http://127.0.0.1:%d/healthz" % self.tcp_port, None, '"ok"',
             [1], a.n_healthz),
            ("legal (fixed-20) over TCP (listen.tcp)", "http://127.0.0.1:%d/v1/chat/completions" % self.tcp_port,
             chat_body("legal"), '"choices"', [1], a.n_overhead.get(1, a.n_overhead_default) // 2),
            ("legal-cap (fixed-20, provider defaults: max_concurrency 16)", "http://localhost/v1/chat/completions",
             chat_body("legal-cap"), '"choices"', [128], a.n_cap),
        ]
        for name, url, body, expect, levels, n in cases:
            for c in levels:
                if self.remaining() < 15:
                    self.skip("%s c=%d" % (name, c))
                    continue
                r = self.moabench(url, body, unix=None if "TCP" in name else self.moad.socket, n=max(n, c), c=c, warmup=min(50, n),
                                  expect=expect, max_s=a.max_run_s)
                rec = self.pooled("%s c=%d" % (name, c), [r])
                rec.update({"section": "daemon", "name": name, "concurrency": c})
                self.add(rec)
                print("  %-60s c=%-4d p50 %.3f p99 %.3f max %.2f ms, %.0f req/s, cpu %.3f ms/req" % (
                    name, c, rec["latency_ms"]["p50"], rec["latency_ms"]["p99"], rec["latency_ms"]["max"],
                    rec["rps"], rec["moad_cpu_ms_per_req"]), flush=True)

    def pipeline(self):
        a = self.args
        agents = ["p100", "p150", "p200"]
        expected = 200 + 200 + 50
        calls_expected = len(agents) * 2 + 1
        print("== 2. 3-layer pipeline bench3: proposers+refiners 100/150/200 ms, aggregator 50 ms "
              "(sum of per-layer maxima %d ms)" % expected, flush=True)
        for c, n in ((1, a.n_pipe1), (16, a.n_pipe16)):
            if self.remaining() < 15 + n * 0.5 / c:
                self.skip("pipeline c=%d" % c)
                continue
            self.mock.reset()
            r = self.moabench("http://localhost/v1/chat/completions", chat_body("bench3", agents=agents),
                              unix=self.moad.socket, n=n, c=c, warmup=0, expect='"choices"', max_s=a.max_run_s)
            stats = self.mock.stats()
            rec = self.pooled("pipeline bench3 c=%d" % c, [r])
            rec.update({"section": "pipeline", "concurrency": c, "expected_ms": expected,
                        "upstream_calls": stats["total"], "upstream_calls_per_request":
                            stats["total"] / max(1, rec["requests"]),
                        "upstream_calls_expected_per_request": calls_expected,
                        "upstream_by_model": stats["calls"], "upstream_connections": stats.get("connections"),
                        "overhead_ms": {k: rec["latency_ms"][k] - expected for k in ("min", "p50", "p90", "p99",
                                                                                      "max")}})
            if rec["requests"] and stats["total"] != calls_expected * rec["requests"]:
                self.problem("pipeline c=%d: %d upstream calls for %d requests (expected %d each)" % (
                    c, stats["total"], rec["requests"], calls_expected))
            self.add(rec)
            print("  c=%-3d wall p50 %.1f p99 %.1f max %.1f ms -> overhead p50 %.1f ms; %.2f upstream calls/req; "
                  "moad cpu %.3f ms/req" % (c, rec["latency_ms"]["p50"], rec["latency_ms"]["p99"],
                                            rec["latency_ms"]["max"], rec["overhead_ms"]["p50"],
                                            rec["upstream_calls_per_request"], rec["moad_cpu_ms_per_req"]),
                  flush=True)

    def ttft(self):
        a = self.args
        print("== 3. time to first content token (streaming)", flush=True)
        if self.remaining() < 30:
            self.skip("ttft")
            return
        mock_url = self.mock.base + "/v1/chat/completions"
        moad_url = "http://localhost/v1/chat/completions"
        direct, single = [], []
        per = max(1, a.n_ttft // a.rounds)
        for _ in range(a.rounds):
            direct.append(self.moabench(mock_url, direct_body("stream-20", self.direct_words, stream=True), n=per, c=1, warmup=2,
                                        stream=True, expect="[DONE]", max_s=a.max_run_s))
            single.append(self.moabench(moad_url, chat_body("legal-stream", stream=True), unix=self.moad.socket,
                                        n=per, c=1, warmup=2, stream=True, expect="[DONE]", max_s=a.max_run_s))
        d = self.pooled("direct mock stream-20", direct)
        s = self.pooled("moad legal-stream (stream-20)", single)
        rec = {"section": "ttft", "name": "single agent", "direct": d, "moad": s,
               "overhead_ms": {k: s["ttft_ms"][k] - d["ttft_ms"][k] for k in ("p50", "p90", "p99", "max")
                               if s["ttft_ms"].get(k) is not None and d["ttft_ms"].get(k) is not None}}
        self.add(rec)
        print("  single agent: mock TTFT p50 %.2f ms, moad TTFT p50 %.2f ms -> overhead p50 %.2f p99 %.2f ms" % (
            d["ttft_ms"]["p50"], s["ttft_ms"]["p50"], rec["overhead_ms"].get("p50", 0),
            rec["overhead_ms"].get("p99", 0)), flush=True)

        if self.remaining() < 15 + a.n_ttft_pipe * 0.7:
            self.skip("ttft pipeline")
            return
        agents = ["p100", "p150", "p200"]
        earlier = 200 + 200
        self.mock.reset()
        r = self.moabench(moad_url, chat_body("bench3s", stream=True, agents=agents), unix=self.moad.socket,
                          n=a.n_ttft_pipe, c=1, warmup=1, stream=True, expect="[DONE]", max_s=a.max_run_s)
        stats = self.mock.stats()
        p = self.pooled("moad bench3s (aggregator stream-20)", [r])
        expected = earlier + d["ttft_ms"]["p50"]
        rec = {"section": "ttft", "name": "pipeline", "moad": p, "earlier_layers_ms": earlier,
               "aggregator_direct_ttft_p50_ms": d["ttft_ms"]["p50"], "expected_ms": expected,
               "upstream_calls_per_request": stats["total"] / max(1, p["requests"] + 1),
               "overhead_ms": {k: p["ttft_ms"][k] - expected for k in ("min", "p50", "p90", "p99", "max")
                               if p["ttft_ms"].get(k) is not None}}
        self.add(rec)
        print("  pipeline bench3s: TTFT p50 %.1f ms (earlier layers %d + aggregator TTFT %.1f = %.1f) "
              "-> overhead p50 %.1f ms" % (p["ttft_ms"]["p50"], earlier, d["ttft_ms"]["p50"], expected,
                                           rec["overhead_ms"]["p50"]), flush=True)

    # ------------------------------------------------------------ driver

    def run(self):
        work = tempfile.mkdtemp(prefix="moad-bench-")
        agents = os.path.join(work, "agents.d")
        os.mkdir(agents)
        try:
            self.mock = Mock(self.build)
            write_agents(agents, self.mock.port)
            self.tcp_port = free_tcp_port()
            self.moad = Moad(self.build, work, CONFIG.format(url=self.mock.base, tcp_port=self.tcp_port), agents)
            if self.args.pin:
                self.pin()
            self.results["moad_start_mem_kib"] = self.moad.mem_kib()
            self.results["moad_start_cpu_s"] = self.moad.cpu_s()
            self.overhead()
            self.daemon_cost()
            self.pipeline()
            self.ttft()
            self.results["moad_end_mem_kib"] = self.moad.mem_kib()
            self.results["moad_end_cpu_s"] = self.moad.cpu_s()
            try:
                st, body = unix_get(self.moad.socket, "/metrics")
                self.results["moad_metrics_lines"] = [l for l in body.decode().splitlines()
                                                      if l.startswith("moad_http_requests_total")]
            except OSError:
                pass
        finally:
            rc = self.moad.stop() if self.moad else None
            if self.mock:
                self.mock.stop()
            log = ""
            if self.moad:
                log = self.moad.read_log()
                self.results["moad_exit"] = rc
                self.results["moad_log_warnings"] = [l for l in log.splitlines()
                                                     if ": warning:" in l or ": err" in l][:20]
                self.results["moad_log_bytes"] = len(log)
            if self.args.keep:
                print("work dir kept: " + work)
            else:
                shutil.rmtree(work, ignore_errors=True)
        if self.results.get("moad_exit") not in (0, None):
            self.problem("moad exited with %s on SIGTERM" % self.results["moad_exit"])
        self.results["duration_s"] = time.monotonic() - self.t0


# ---------------------------------------------------------------- report

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass

    def git(*a):
        try:
            return subprocess.run(["git", "-C", SRC] + list(a), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem": mem, "kernel": platform.release(),
            "python": platform.python_version(), "commit": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "daemon", "plugins", "include",
                              "tests/mock-upstream.c", "bench"))}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def f2(x, nd=2):
    return "-" if x is None else ("%.*f" % (nd, x))


def render(res, args):
    m = res["machine"]
    L = []
    L.append("# moad benchmark — %s (%s%s)" % (res["date"], m["commit"], ", uncommitted changes in daemon/plugins/bench" if m["dirty"] else ""))
    L.append("")
    L.append("Mode: %s. Machine: %d CPUs, %s, %s RAM, Linux %s. Build: `%s` (%s)." % (
        "quick" if args.quick else "default", m["nproc"], m["cpu"], m["mem"], m["kernel"], args.build,
        args.build_type))
    if res.get("pinned"):
        L.append("Pinned (--pin): moad on CPU %s, mock and load generator on CPU %s." % (
            res["pinned"]["moad"], res["pinned"]["mock_and_client"]))
    L.append("moad, mock-upstream and the load generator (bench/moabench) share the machine. "
             "Latencies in ms over all requests of a row (rounds pooled); overhead = moad − direct of the "
             "same statistic. Suite wall time %.0f s." % res["duration_s"])
    L.append("")
    ov = [s for s in res["scenarios"] if s.get("section") == "overhead"]
    if ov:
        L.append("## 1. Gateway overhead (agent `legal` → mock `fixed-20`, vs mock direct)")
        L.append("")
        L.append("The direct requests carry a prompt of the same size as the one moad sends upstream for `legal` "
                 "(%s words: plugin system prompt + retrieved passages + question)." % res.get("upstream_prompt_words", "?"))
        L.append("")
        L.append("| conc | n | direct p50 | p90 | p99 | max | moad p50 | p90 | p99 | max | overhead p50 | p90 | p99 "
                 "| direct req/s | moad req/s | moad CPU ms/req | errors |")
        L.append("|" + "---|" * 17)
        for s in ov:
            d, t, o = s["direct"]["latency_ms"], s["moad"]["latency_ms"], s["overhead_ms"]
            L.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %.0f | %.0f | %s | %d/%d |" % (
                s["concurrency"], s["moad"]["requests"], f2(d.get("p50")), f2(d.get("p90")), f2(d.get("p99")),
                f2(d.get("max")), f2(t.get("p50")), f2(t.get("p90")), f2(t.get("p99")), f2(t.get("max")),
                f2(o.get("p50")), f2(o.get("p90")), f2(o.get("p99")), s["direct"]["rps"], s["moad"]["rps"],
                f2(s["moad"].get("moad_cpu_ms_per_req"), 3), s["direct"]["errors"], s["moad"]["errors"]))
        L.append("")
        L.append("errors column: direct/moad.")
        L.append("")
    dc = [s for s in res["scenarios"] if s.get("section") == "daemon"]
    if dc:
        L.append("## 1b. The daemon's own cost (no upstream), and variants")
        L.append("")
        L.append("| request | conc | n | p50 | p90 | p99 | max | req/s | moad CPU ms/req | errors |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for s in dc:
            l = s["latency_ms"]
            L.append("| %s | %d | %d | %s | %s | %s | %s | %.0f | %s | %d |" % (
                s["name"], s["concurrency"], s["requests"], f2(l.get("p50"), 3), f2(l.get("p90"), 3),
                f2(l.get("p99"), 3), f2(l.get("max"), 3), s["rps"], f2(s.get("moad_cpu_ms_per_req"), 3),
                s["errors"]))
        L.append("")
    pp = [s for s in res["scenarios"] if s.get("section") == "pipeline"]
    if pp:
        L.append("## 2. 3-layer pipeline (`bench3`: p100/p150/p200 propose and refine, aggregator fixed-50)")
        L.append("")
        L.append("Sum of per-layer maxima: 200 + 200 + 50 = 450 ms; expected upstream calls per request: 7.")
        L.append("")
        L.append("| conc | n | wall min | p50 | p90 | p99 | max | overhead p50 | overhead p99 | upstream calls/req "
                 "| req/s | moad CPU ms/req | errors |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in pp:
            l, o = s["latency_ms"], s["overhead_ms"]
            L.append("| %d | %d | %s | %s | %s | %s | %s | **%s** | %s | %.2f | %.1f | %s | %d |" % (
                s["concurrency"], s["requests"], f2(l.get("min"), 1), f2(l.get("p50"), 1), f2(l.get("p90"), 1),
                f2(l.get("p99"), 1), f2(l.get("max"), 1), f2(o.get("p50"), 1), f2(o.get("p99"), 1),
                s["upstream_calls_per_request"], s["rps"], f2(s.get("moad_cpu_ms_per_req"), 3), s["errors"]))
        L.append("")
    tt = [s for s in res["scenarios"] if s.get("section") == "ttft"]
    if tt:
        L.append("## 3. Time to first content token (streaming, concurrency 1)")
        L.append("")
        L.append("| what | n | TTFT p50 | p90 | p99 | max | expected (p50) | overhead p50 | overhead p99 | errors |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for s in tt:
            if s["name"] == "single agent":
                d = s["direct"]["ttft_ms"]
                L.append("| mock `stream-20` direct | %d | %s | %s | %s | %s | | | | %d |" % (
                    d["n"], f2(d.get("p50")), f2(d.get("p90")), f2(d.get("p99")), f2(d.get("max")),
                    s["direct"]["errors"]))
                t, o = s["moad"]["ttft_ms"], s["overhead_ms"]
                L.append("| moad, agent `legal-stream` (stream-20) | %d | %s | %s | %s | %s | = direct | **%s** | %s | %d |" % (
                    t["n"], f2(t.get("p50")), f2(t.get("p90")), f2(t.get("p99")), f2(t.get("max")),
                    f2(o.get("p50")), f2(o.get("p99")), s["moad"]["errors"]))
            else:
                t, o = s["moad"]["ttft_ms"], s["overhead_ms"]
                L.append("| moad, pipeline `bench3s` (aggregator stream-20) | %d | %s | %s | %s | %s | %s | **%s** | %s | %d |" % (
                    t["n"], f2(t.get("p50"), 1), f2(t.get("p90"), 1), f2(t.get("p99"), 1), f2(t.get("max"), 1),
                    f2(s["expected_ms"], 1), f2(o.get("p50"), 1), f2(o.get("p99"), 1), s["moad"]["errors"]))
        L.append("")
        L.append("Expected for the pipeline: proposers' max (200) + refiners' max (200) + the mock's own TTFT (p50).")
        L.append("")
    recs = []
    for sc in res["scenarios"]:
        for k in ("direct", "moad"):
            if isinstance(sc.get(k), dict) and "label" in sc[k]:
                recs.append(sc[k])
        if "label" in sc:
            recs.append(sc)
    if recs:
        L.append("## Run conditions")
        L.append("")
        L.append("moad CPU = its threads' run time / span; runqueue = time moad was runnable but waiting for a "
                 "CPU / span (from /proc/PID/task/*/schedstat); background = CPUs busy with processes other "
                 "than moad, the mock and the load generator (from /proc/stat), averaged over the span.")
        L.append("")
        L.append("| run | span s | moad CPU | moad runqueue | mock CPU s | client CPU s | background CPUs |")
        L.append("|---|---|---|---|---|---|---|")
        for r in recs:
            L.append("| %s | %.1f | %.0f%% | %.1f%% | %.2f | %.2f | %.2f |" % (
                r["label"], r["span_s"], 100 * r["moad_cpu_util"], 100 * r["moad_runqueue_wait_frac"],
                r["mock_cpu_s"], r["client_cpu_s"], r["background_cpus"]))
        L.append("")
    L.append("## 4. Memory and CPU")
    L.append("")
    s0, s1 = res.get("moad_start_mem_kib", {}), res.get("moad_end_mem_kib", {})
    L.append("moad RSS after start-up (knowledge bases seeded) %s MiB, at the end %s MiB, peak (VmHWM) %s MiB; "
             "threads %s. CPU time until ready %.2f s, in total %.2f s. CPU ms per request in the tables: "
             "moad's run time from /proc/PID/task/*/schedstat (ns) around each run, divided by the requests "
             "of the run including warm-up; utime+stime from /proc/PID/stat (%d Hz ticks) is kept in the "
             "JSON as a cross-check (`moad_cpu_ticks_ms_per_req`)." % (
                 f2(s0.get("VmRSS", 0) / 1024, 1), f2(s1.get("VmRSS", 0) / 1024, 1),
                 f2(s1.get("VmHWM", 0) / 1024, 1), s1.get("Threads", "?"), res.get("moad_start_cpu_s", 0),
                 res.get("moad_end_cpu_s", 0), CLK_TCK))
    L.append("")
    L.append("Load average before / after the suite: %s / %s." % (res.get("loadavg_start", "?"),
                                                                 res.get("loadavg_end", "?")))
    L.append("")
    if res["problems"] or res["skipped"]:
        L.append("## Problems seen in this run")
        L.append("")
        for p in res["problems"]:
            L.append("* " + p)
        for p in res["skipped"]:
            L.append("* skipped (budget): " + p)
        L.append("")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts (< 60 s)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny counts (about 10 s): checks that the harness runs, figures mean nothing")
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(SRC, "build-bench")))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-write", action="store_true", help="print only, write no result files")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (moad.log)")
    ap.add_argument("--pin", action="store_true",
                    help="pin moad to the last CPU and the mock + load generator to the others")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    for p in ("daemon/moad", "tests/mock-upstream", "bench/moabench"):
        if not os.access(os.path.join(args.build, p), os.X_OK):
            sys.exit("bench: %s/%s missing: build the tree first (cmake --build %s)" % (args.build, p, args.build))
    args.build_type = "?"
    try:
        with open(os.path.join(args.build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    args.build_type = line.split("=", 1)[1].strip()
    except OSError:
        pass
    args.levels = [1, 16, 128, 256]
    if args.smoke:
        args.levels = [1, 16]
        args.budget, args.max_run_s, args.rounds = 45, 3, 1
        args.n_overhead, args.n_overhead_default = {1: 20, 16: 64}, 64
        args.n_healthz, args.n_builtin, args.n_cap = 50, 20, 50
        args.n_pipe1, args.n_pipe16, args.n_ttft, args.n_ttft_pipe = 2, 16, 5, 2
    elif args.quick:
        args.budget, args.max_run_s, args.rounds = 55, 10, 1
        args.n_overhead, args.n_overhead_default = {1: 100, 16: 400}, 1000
        args.n_healthz, args.n_builtin, args.n_cap = 500, 200, 500
        args.n_pipe1, args.n_pipe16, args.n_ttft, args.n_ttft_pipe = 6, 32, 20, 4
    else:
        args.budget, args.max_run_s, args.rounds = 280, 40, 3
        args.n_overhead, args.n_overhead_default = {1: 600, 16: 3000}, 6000
        args.n_healthz, args.n_builtin, args.n_cap = 5000, 1000, 2000
        args.n_pipe1, args.n_pipe16, args.n_ttft, args.n_ttft_pipe = 30, 160, 90, 15
    if args.build_type not in ("RelWithDebInfo", "Release"):
        print("bench: warning: build type %s; figures are meaningful for RelWithDebInfo/Release only"
              % args.build_type, file=sys.stderr)

    # SIGTERM/SIGHUP unwind like Ctrl-C, so moad and the mock are always stopped.
    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    suite = Suite(args)
    now = datetime.datetime.now(datetime.timezone.utc)
    suite.results["date"] = now.strftime("%Y-%m-%d %H:%M UTC")
    suite.results["machine"] = machine()
    suite.results["mode"] = "smoke" if args.smoke else "quick" if args.quick else "default"
    suite.results["build_type"] = args.build_type
    suite.results["loadavg_start"] = loadavg()
    suite.run()
    suite.results["loadavg_end"] = loadavg()
    md = render(suite.results, args)
    print()
    print(md)
    if not args.no_write:
        os.makedirs(args.out, exist_ok=True)
        base = os.path.join(args.out, "%s-%s%s" % (now.strftime("%Y-%m-%d"), suite.results["machine"]["commit"],
                                                   ("-smoke" if args.smoke else "-quick" if args.quick else "") + ("-pinned" if args.pin else "")))
        with open(base + ".md", "w") as f:
            f.write(md)
        with open(base + ".json", "w") as f:
            json.dump(suite.results, f, indent=1, sort_keys=True)
            f.write("\n")
        print("written: %s.md %s.json" % (base, base))
    # A smoke run exists to show every scenario runs: a skip is a failure there.
    return 1 if suite.results["problems"] or (args.smoke and suite.results["skipped"]) else 0


if __name__ == "__main__":
    sys.exit(main())
