#!/usr/bin/env python3
"""moad and the Portkey gateway side by side, in one run (issue 13 item 1).

    bench/peer.sh [--quick] [--rounds R] [--no-write] [--keep]   (runs this)

One mock upstream (tests/mock-upstream), one load generator
(bench/moabench), three targets, all over TCP on 127.0.0.1:

  direct   the mock itself: the baseline;
  moad     a pass-through agent (no plugin, no knowledge: the generic
           expert's short prompt) on moad's listen.tcp listener;
  portkey  the Portkey gateway (Node), told the mock is its OpenAI host
           by headers (x-portkey-provider, x-portkey-custom-host).

The client sends the same body to all three (the model name picks the
mock's behaviour; for moad it names the agent, whose model is the same).
Measured, the targets interleaved in R rounds (order rotated every round)
so that drift on the shared machine hits all alike:

  1. latency at 1, 16, 64 and 256 clients with a 20 ms upstream (fixed-20):
     p50/p99 of each target, overhead = target's statistic - direct's;
  2. throughput ceiling: an upstream that answers at once (echo), 64
     clients, each run bounded by time;
  3. time to first token when streaming (stream-20, one client);
  4. RSS of moad and of the gateway's node process: idle, peak, after.

CPU time per request comes from /proc/PID/task/*/schedstat around each
run; "background" is the machine's busy time minus the mock, the load
generator, moad and node. Loopback only: the gateway is preloaded with
bench/peer/loopback.mjs (its server binds every interface otherwise) and
the run stops unless its port listens on 127.0.0.1 alone. Everything is
bounded by request counts, per-run time limits and a budget. Writes
bench/results/<date>-<commit>-peer.md and .json."""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

PEER = os.path.join(HERE, "peer")
GATEWAY = os.path.join(PEER, "node_modules", "@portkey-ai", "gateway")
QUERY = "What happens when a contract is breached?"
AGENT = "pass"

CONFIG = """\
log_level: info
listen:
  tcp: "127.0.0.1:{tcp_port}"
router:
  fallback: {agent}
providers:
  - name: mock
    type: openai
    base_url: {url}/v1
    model: echo
    max_retries: 0
    timeout_ms: 30000
    max_concurrency: 1024
    max_queue: 8192
limits:
  max_connections: 4096
  max_inflight: 1024
  max_queue: 8192
"""


def package_version(path):
    try:
        with open(os.path.join(path, "package.json")) as f:
            return json.load(f).get("version", "?")
    except OSError:
        return "?"


def listening_addresses(port):
    """Local addresses of LISTEN sockets on @port (hex, as /proc/net/tcp{,6} has them)."""
    out = []
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/net/" + name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    addr, _, hport = p[1].rpartition(":")
                    if int(hport, 16) == port and p[3] == "0A":
                        out.append(addr)
        except OSError:
            pass
    return out


class Portkey:
    def __init__(self, port, log_path):
        entry = os.path.join(GATEWAY, "build", "start-server.js")
        env = {k: v for k, v in os.environ.items()
               if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "REDIS_CONNECTION_STRING", "NODE_OPTIONS")}
        env["NODE_ENV"] = "production"
        self.port = port
        self.log = open(log_path, "w")
        self.log_path = log_path
        self.proc = subprocess.Popen(["node", "--import", os.path.join(PEER, "loopback.mjs"), entry,
                                      "--port=%d" % port, "--headless"], cwd=PEER, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.time() + 60
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("the Portkey gateway exited %d:\n%s" % (self.proc.returncode, self.read_log()))
            addrs = listening_addresses(port)
            if addrs:
                if any(a != "0100007F" for a in addrs):
                    self.stop()
                    raise RuntimeError("the gateway listens beyond 127.0.0.1 (%s): stopped" % addrs)
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Portkey gateway did not start:\n" + self.read_log())

    def read_log(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()[-3000:]

    def sched(self):
        return bench.proc_sched(self.proc.pid)

    def mem_kib(self):
        return mem_kib(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def mem_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def body(model, stream=False):
    b = {"model": model, "messages": [{"role": "user", "content": QUERY}]}
    if stream:
        b["stream"] = True
    return json.dumps(b)


class Run:
    def __init__(self, args):
        self.args = args
        self.build = args.build
        self.moabench_bin = os.path.join(self.build, "bench", "moabench")
        self.t0 = time.monotonic()
        self.res = {"sections": {}, "problems": [], "skipped": []}

    def remaining(self):
        return self.args.budget - (time.monotonic() - self.t0)

    def problem(self, text):
        print("PROBLEM: " + text, flush=True)
        self.res["problems"].append(text)

    def target(self, name, model, stream=False):
        """moabench arguments for @name, the request of mock model @model."""
        if name == "direct":
            return ["--url", self.mock.base + "/v1/chat/completions", "--body", body(model, stream)]
        if name == "moad":
            # the agent's own model is the one asked of the mock
            return ["--url", "http://127.0.0.1:%d/v1/chat/completions" % self.moad_port,
                    "--body", body(AGENT + "-" + model, stream)]
        return ["--url", "http://127.0.0.1:%d/v1/chat/completions" % self.portkey.port, "--body", body(model, stream),
                "--header", "x-portkey-provider: openai",
                "--header", "x-portkey-custom-host: %s/v1" % self.mock.base,
                "--header", "Authorization: Bearer sk-bench-not-a-key"]

    def sched(self):
        return {"moad": self.moad.sched()[0], "portkey": self.portkey.sched()[0], "mock": bench.proc_sched(
            self.mock.proc.pid)[0]}

    def moabench(self, name, model, n, c, warmup, stream=False, max_s=60.0, expect=None):
        max_s = max(1.0, min(max_s, self.remaining() - 5))
        cmd = [self.moabench_bin] + self.target(name, model, stream) + [
            "-n", str(n), "-c", str(c), "--warmup", str(warmup), "--max-seconds", "%.1f" % max_s,
            "--timeout-ms", "30000"]
        if stream:
            cmd.append("--stream")
        if expect:
            cmd += ["--expect", expect]
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0, busy0, t0 = self.sched(), bench.system_busy_s(), time.monotonic()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=max_s + 60)
        span = time.monotonic() - t0
        s1, busy1 = self.sched(), bench.system_busy_s()
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode != 0:
            raise RuntimeError("moabench failed (%s): %s" % (name, out.stderr))
        r = json.loads(out.stdout)
        cpu = {k: (s1[k] - s0[k]) / 1e9 for k in s0}
        client = ch1.ru_utime + ch1.ru_stime - ch0.ru_utime - ch0.ru_stime
        r["span_s"] = span
        r["cpu_s"] = cpu
        r["client_cpu_s"] = client
        r["background_cpus"] = max(0.0, (busy1 - busy0) - sum(cpu.values()) - client) / span if span > 0 else 0
        r["gateway_cpu_ms_per_req"] = (cpu[name] * 1000 / (r["requests"] + warmup)) if name in cpu and (
            r["requests"] + warmup) else None
        if r["errors"]:
            self.problem("%s %s c=%d: %d of %d failed (%s)" % (name, model, c, r["errors"], r["requests"],
                                                               r["first_error"]))
        return r

    def pool(self, runs, key="lat_us"):
        s = bench.summary([x for r in runs for x in r[key]])
        s["requests"] = sum(r["requests"] for r in runs)
        s["errors"] = sum(r["errors"] for r in runs)
        s["rps"] = sum(r["requests"] for r in runs) / max(1e-9, sum(r["wall_s"] for r in runs))
        cpu = [r["gateway_cpu_ms_per_req"] for r in runs if r["gateway_cpu_ms_per_req"] is not None]
        s["cpu_ms_per_req"] = sorted(cpu)[len(cpu) // 2] if cpu else None
        s["background_cpus_max"] = max(r["background_cpus"] for r in runs)
        s["truncated_by_time"] = any(r["truncated_by_time"] for r in runs)
        return s

    def rounds(self, section, model, n_of, c, warmup, stream=False, max_s=60.0, expect=None, rounds=None):
        """Interleaved rounds of the three targets, the order rotated each round."""
        names = ["direct", "moad", "portkey"]
        runs = {k: [] for k in names}
        for i in range(rounds or self.args.rounds):
            for k in names[i % 3:] + names[:i % 3]:
                runs[k].append(self.moabench(k, model, n_of(k), c, warmup, stream, max_s, expect))
        return {k: self.pool(v, "ttft_us" if stream else "lat_us") for k, v in runs.items()}

    def latency(self):
        q = self.args.quick
        per = {1: 60 if q else 200, 16: 300 if q else 1000, 64: 600 if q else 2000, 256: 1000 if q else 4000}
        out = []
        for c in (1, 16, 64, 256):
            if self.remaining() < 40:
                self.res["skipped"].append("latency c=%d" % c)
                continue
            rec = self.rounds("latency", "fixed-20", lambda k: per[c], c, c, max_s=40, expect='"choices"')
            rec["concurrency"] = c
            for k in ("moad", "portkey"):
                rec[k]["overhead_ms"] = {p: rec[k][p] - rec["direct"][p] for p in ("p50", "p90", "p99")}
            print("  c=%-3d direct p50 %.2f | moad p50 %.2f p99 %.2f (+%.2f / +%.2f) %.0f req/s | "
                  "portkey p50 %.2f p99 %.2f (+%.2f / +%.2f) %.0f req/s" % (
                      c, rec["direct"]["p50"], rec["moad"]["p50"], rec["moad"]["p99"],
                      rec["moad"]["overhead_ms"]["p50"], rec["moad"]["overhead_ms"]["p99"], rec["moad"]["rps"],
                      rec["portkey"]["p50"], rec["portkey"]["p99"], rec["portkey"]["overhead_ms"]["p50"],
                      rec["portkey"]["overhead_ms"]["p99"], rec["portkey"]["rps"]), flush=True)
            out.append(rec)
        self.res["sections"]["latency"] = out

    def ceiling(self):
        if self.remaining() < 30:
            self.res["skipped"].append("ceiling")
            return
        secs = 2.0 if self.args.quick else 4.0
        rec = self.rounds("ceiling", "echo", lambda k: 1000000, 64, 64, max_s=secs, expect='"choices"',
                          rounds=min(self.args.rounds, 2))
        print("  ceiling (echo, 64 clients): direct %.0f, moad %.0f, portkey %.0f req/s" % (
            rec["direct"]["rps"], rec["moad"]["rps"], rec["portkey"]["rps"]), flush=True)
        self.res["sections"]["ceiling"] = rec

    def ttft(self):
        if self.remaining() < 40:
            self.res["skipped"].append("ttft")
            return
        n = 20 if self.args.quick else 50
        rec = self.rounds("ttft", "stream-20", lambda k: n, 1, 2, stream=True, max_s=30, expect="[DONE]")
        for k in ("moad", "portkey"):
            rec[k]["overhead_ms"] = {p: rec[k][p] - rec["direct"][p] for p in ("p50", "p90", "p99")}
        print("  TTFT stream-20: direct p50 %.2f | moad +%.2f (p99 +%.2f) | portkey +%.2f (p99 +%.2f)" % (
            rec["direct"]["p50"], rec["moad"]["overhead_ms"]["p50"], rec["moad"]["overhead_ms"]["p99"],
            rec["portkey"]["overhead_ms"]["p50"], rec["portkey"]["overhead_ms"]["p99"]), flush=True)
        self.res["sections"]["ttft"] = rec

    def run(self):
        work = tempfile.mkdtemp(prefix="moad-peer-")
        agents = os.path.join(work, "agents.d")
        os.mkdir(agents)
        self.mock = self.moad = self.portkey = None
        try:
            self.res["load_before"] = bench.loadavg()
            self.mock = bench.Mock(self.build)
            for model in ("fixed-20", "echo", "stream-20"):
                with open(os.path.join(agents, "%s-%s.yaml" % (AGENT, model)), "w") as f:
                    f.write("name: %s-%s\nprovider: mock\nmodel: %s\ndescription: pass-through\n"
                            % (AGENT, model, model))
            self.moad_port = bench.free_tcp_port()
            self.moad = bench.Moad(self.build, work, CONFIG.format(url=self.mock.base, tcp_port=self.moad_port,
                                                                   agent=AGENT + "-echo"), agents)
            self.portkey = Portkey(bench.free_tcp_port(), os.path.join(work, "portkey.log"))
            self.res["mem_idle"] = {"moad": self.moad.mem_kib(), "portkey": self.portkey.mem_kib()}
            # Not counted: lets node's JIT (and every cache) settle before anything is measured.
            print("== warm-up: %d requests to each target" % self.args.warmup, flush=True)
            for k in ("direct", "moad", "portkey"):
                self.moabench(k, "echo", self.args.warmup, 8, 0, max_s=30, expect='"choices"')
                self.moabench(k, "stream-20", 10, 1, 0, stream=True, max_s=10, expect="[DONE]")
            print("== 1. latency, 20 ms upstream", flush=True)
            self.latency()
            self.res["mem_after_latency"] = {"moad": self.moad.mem_kib(), "portkey": self.portkey.mem_kib()}
            print("== 2. throughput ceiling", flush=True)
            self.ceiling()
            print("== 3. time to first token", flush=True)
            self.ttft()
            time.sleep(1)
            self.res["mem_end"] = {"moad": self.moad.mem_kib(), "portkey": self.portkey.mem_kib()}
            self.res["load_after"] = bench.loadavg()
        finally:
            for name in ("portkey", "moad"):
                p = getattr(self, name)
                if p:
                    rc = p.stop()
                    if rc not in (0, None) and not (name == "portkey" and rc == -15):
                        self.problem("%s exited with %s" % (name, rc))
            if self.mock:
                self.mock.stop()
            if self.args.keep:
                print("work dir kept: " + work)
            else:
                shutil.rmtree(work, ignore_errors=True)
        self.res["duration_s"] = time.monotonic() - self.t0


def f(x, nd=2):
    return "-" if x is None else "%.*f" % (nd, x)


def render(res):
    m = res["machine"]
    L = ["# moad and the Portkey gateway, side by side (%s)" % res["started"], ""]
    L.append("Command: `%s`. Commit %s%s (build type %s), %s UTC." % (
        res["command"], m["commit"], " (uncommitted changes)" if m["dirty"] else "", res["build_type"],
        res["started"]))
    L.append("Machine: %d CPUs (%s), %s, Linux %s. Load average %s before, %s after." % (
        m["nproc"], m["cpu"], m["mem"], m["kernel"], res.get("load_before", "?"), res.get("load_after", "?")))
    L.append("Peer: @portkey-ai/gateway %s, @hono/node-server %s, node %s. One mock (tests/mock-upstream), one "
             "load generator (bench/moabench, closed loop), all three targets over TCP on 127.0.0.1; "
             "%d uncounted warm-up requests to each target first, then %d interleaved rounds." % (
                 res["versions"]["gateway"], res["versions"]["node_server"], res["versions"]["node"],
                 res["warmup"], res["rounds"]))
    L.append("")
    L.append("## 1. Latency, upstream fixed-20 (ms)")
    L.append("")
    L.append("| clients | target | requests | p50 | p99 | overhead p50 | overhead p99 | req/s | CPU ms/req "
             "| background CPUs (max) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for rec in res["sections"].get("latency", []):
        for k in ("direct", "moad", "portkey"):
            s = rec[k]
            o = s.get("overhead_ms", {})
            L.append("| %d | %s | %d%s | %s | %s | %s | %s | %.0f | %s | %.2f |" % (
                rec["concurrency"], k, s["requests"], (" (%d failed)" % s["errors"]) if s["errors"] else "",
                f(s["p50"]), f(s["p99"]), f(o.get("p50")), f(o.get("p99")), s["rps"], f(s["cpu_ms_per_req"], 3),
                s["background_cpus_max"]))
    c = res["sections"].get("ceiling")
    if c:
        L.append("")
        L.append("## 2. Throughput ceiling (upstream echo, 64 clients, time-bounded runs)")
        L.append("")
        L.append("| target | requests | req/s | p50 (ms) | p99 (ms) | CPU ms/req | background CPUs (max) |")
        L.append("|---|---|---|---|---|---|---|")
        for k in ("direct", "moad", "portkey"):
            s = c[k]
            L.append("| %s | %d%s | %.0f | %s | %s | %s | %.2f |" % (
                k, s["requests"], (" (%d failed)" % s["errors"]) if s["errors"] else "", s["rps"], f(s["p50"]),
                f(s["p99"]), f(s["cpu_ms_per_req"], 3), s["background_cpus_max"]))
    t = res["sections"].get("ttft")
    if t:
        L.append("")
        L.append("## 3. Time to first token, streaming (stream-20, one client, ms)")
        L.append("")
        L.append("| target | n | TTFT p50 | TTFT p99 | added p50 | added p99 |")
        L.append("|---|---|---|---|---|---|")
        for k in ("direct", "moad", "portkey"):
            s = t[k]
            o = s.get("overhead_ms", {})
            L.append("| %s | %d | %s | %s | %s | %s |" % (k, s["n"], f(s["p50"]), f(s["p99"]), f(o.get("p50")),
                                                       f(o.get("p99"))))
    L.append("")
    L.append("## 4. Memory (RSS, MiB)")
    L.append("")
    L.append("| process | idle | after section 1 | peak (VmHWM) | at the end | threads |")
    L.append("|---|---|---|---|---|---|")
    for k in ("moad", "portkey"):
        idle, mid, end = (res.get(x, {}).get(k, {}) for x in ("mem_idle", "mem_after_latency", "mem_end"))
        mib = lambda d, key: f(d[key] / 1024.0, 1) if key in d else "-"
        L.append("| %s | %s | %s | %s | %s | %s |" % (k if k == "moad" else "portkey (node)", mib(idle, "VmRSS"),
                                                      mib(mid, "VmRSS"), mib(end, "VmHWM"), mib(end, "VmRSS"),
                                                      end.get("Threads", "-")))
    if res["skipped"] or res["problems"]:
        L.append("")
        L.append("Skipped: %s. Problems: %s." % (", ".join(res["skipped"]) or "none",
                                                 "; ".join(res["problems"]) or "none"))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description="moad and the Portkey gateway side by side")
    ap.add_argument("--build", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small counts (about a minute); figures mean little")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    ap.add_argument("--warmup", type=int, default=3000, help="uncounted requests to each target first")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    a.rounds = max(1, min(a.rounds, 10))
    a.budget = max(30.0, min(a.budget, 1800.0))
    a.warmup = max(1, min(a.warmup, 100000))
    if not os.path.isfile(os.path.join(GATEWAY, "build", "start-server.js")):
        sys.exit("the Portkey gateway is not installed: run bench/peer.sh (npm ci in bench/peer)")
    for p in ("daemon/moad", "tests/mock-upstream", "bench/moabench"):
        if not os.access(os.path.join(a.build, p), os.X_OK):
            sys.exit("%s is missing in %s: build it first" % (p, a.build))
    build_type = "?"
    try:
        with open(os.path.join(a.build, "CMakeCache.txt")) as fh:
            for line in fh:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    build_type = line.split("=", 1)[1].strip()
    except OSError:
        pass
    r = Run(a)
    r.res.update({
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": "bench/peer.sh" + "".join(" " + x for x in sys.argv[1:] if not x.startswith("--build")
                                             and x != a.build),
        "machine": bench.machine(), "build_type": build_type, "rounds": a.rounds, "warmup": a.warmup,
        "versions": {"gateway": package_version(GATEWAY),
                     "node_server": package_version(os.path.join(PEER, "node_modules", "@hono", "node-server")),
                     "node": subprocess.run(["node", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip(),
                     "python": platform.python_version()},
    })
    r.run()
    text = render(r.res)
    print()
    print(text)
    if not a.no_write:
        os.makedirs(a.out, exist_ok=True)
        stem = os.path.join(a.out, "%s-%s-peer%s" % (r.res["started"][:10], r.res["machine"]["commit"],
                                                     "-quick" if a.quick else ""))
        with open(stem + ".md", "w") as fh:
            fh.write(text)
        with open(stem + ".json", "w") as fh:
            json.dump(r.res, fh, indent=1, sort_keys=True)
        print("wrote %s.md and .json" % stem)
    sys.exit(1 if r.res["problems"] else 0)


if __name__ == "__main__":
    main()
