#!/usr/bin/env python3
"""CPU per proxied request, alternating builds (issue 13 item 2).

    bench/cpu-profile.py --build BUILD [--before OTHER_BUILD] [-n 600] [--rounds 3]
                         [--strace] [--perf SECONDS] [--out FILE]

Starts tests/mock-upstream and one moad per build (bench.py's own classes)
with two agents on the mock's fixed-20 model, and drives them with
bench/moabench at concurrency 1 over the Unix socket:

  pass   no plugin, no knowledge, no prompt of its own beyond the generic
         expert's: the pass-through case;
  legal  the legal plugin with the legal sample knowledge: retrieval.

For each build, agent and round: moad's CPU per request from
/proc/PID/task/*/schedstat (ns; utime+stime from /proc/PID/stat as a
cross-check), and p50 latency. --callgrind then starts each build's moad
again under valgrind's callgrind and counts its user-space instructions
per request over 200 requests (after 40 uncounted): deterministic where
time on a shared machine is not, but blind to the kernel (system calls). With --before, the two builds' daemons run
side by side and alternate round by round, so drift on a shared machine
hits both. --strace counts syscalls per request (strace -c -f, one extra
run per agent, after the timed rounds: strace slows everything, so no
timing is taken from it). --perf records `perf record --call-graph dwarf`
for that many seconds of pass and of legal load and prints the top of
`perf report --children` (user-space functions at 3% or more).
Writes a plain-text summary to stdout (and --out).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

AGENTS = {
    "pass": "name: pass\nprovider: mock\nmodel: fixed-20\ndescription: pass-through\n",
    "legal": "name: legal\nplugin: legal\nprovider: mock\nmodel: fixed-20\nknowledge: [%s]\n"
             % os.path.join(bench.KNOWLEDGE, "legal"),
}

CONFIG = """\
log_level: info
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
limits:
  max_connections: 4096
  max_inflight: 1024
  max_queue: 8192
"""


def body(agent):
    return bench.chat_body(agent)


def run_load(build, moad, agent, n, warmup=20):
    """@n requests (+@warmup) at concurrency 1: (CPU ms/request from schedstat, from utime+stime,
    p50 ms, ok, errors)."""
    cmd = [os.path.join(build, "bench", "moabench"), "--url", "http://localhost/v1/chat/completions",
           "--unix", moad.socket, "-n", str(n), "-c", "1", "--warmup", str(warmup),
           "--max-seconds", "120", "--timeout-ms", "30000", "--body", body(agent), "--expect", '"choices"']
    run0, st0 = moad.sched()[0], moad.cpu_s()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    run1, st1 = moad.sched()[0], moad.cpu_s()
    if out.returncode != 0:
        raise RuntimeError("moabench failed: %s" % out.stderr)
    r = json.loads(out.stdout)
    total = n + warmup
    lat = sorted(r["lat_us"])
    p50 = bench.pct(lat, 50) / 1000.0 if lat else float("nan")
    return ((run1 - run0) / 1e6 / total, (st1 - st0) * 1000.0 / total, p50, r.get("ok", 0), r.get("errors", 0))


def strace_counts(build, moad, agent, n):
    """Syscalls per request over n requests: {name: calls/request}."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as f:
        st = subprocess.Popen(["strace", "-c", "-f", "-o", f.name, "-p", str(moad.proc.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        run_load(build, moad, agent, n)
        st.send_signal(signal.SIGINT)
        st.wait(30)
        text = open(f.name).read()
    counts = {}
    for line in text.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if m and m.group(2) != "total":
            counts[m.group(2)] = int(m.group(1)) / float(n + 20)
    return counts


def perf_top(build, moad, agent, seconds, outdir):
    data = os.path.join(outdir, "perf-%s-%s.data" % (os.path.basename(os.path.dirname(build)), agent))
    pf = subprocess.Popen(["perf", "record", "-q", "-g", "--call-graph", "dwarf,16384", "-F", "2000",
                           "-o", data, "-p", str(moad.proc.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    end = time.time() + seconds
    while time.time() < end:
        run_load(build, moad, agent, 200)
    pf.send_signal(signal.SIGINT)
    pf.wait(60)
    return perf_report(data)


def perf_report(data):
    """Inclusive shares (children) of the named user-space functions >= 3%."""
    rep = subprocess.run(["perf", "report", "-i", data, "--children", "--stdio", "-g", "none",
                          "--percent-limit", "3", "--sort", "symbol"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = [" ".join(x.split()[:4]) for x in rep.stdout.splitlines()
             if x.strip() and not x.startswith("#") and "[k]" not in x and "0x0000" not in x]
    return lines[:60]


def callgrind_build(build, outdir, label):
    """A build tree whose daemon/moad runs the real one under callgrind;
    everything else is a symbolic link to @build."""
    fake = os.path.join(outdir, "callgrind-" + label)
    os.makedirs(os.path.join(fake, "daemon"))
    for d in ("plugins", "bench", "tests"):
        os.symlink(os.path.join(build, d), os.path.join(fake, d))
    wrapper = os.path.join(fake, "daemon", "moad")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind -q --tool=callgrind --callgrind-out-file=%s/cg.%%p "
                "%s \"$@\"\n" % (fake, os.path.join(build, "daemon", "moad")))
    os.chmod(wrapper, 0o755)
    return fake


KEEP = None  # --keep-perf: where perf data and callgrind dumps are kept


def callgrind_control(build, moad, agent, what):
    """Asks callgrind for @what (-z zero, -d dump). Valgrind reads the
    command only while moad runs code, so one request wakes it up."""
    ctl = subprocess.Popen(["callgrind_control", what, str(moad.proc.pid)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    run_load(build, moad, agent, 1, warmup=0)
    ctl.wait(60)


def callgrind_count(build, moad, agent, n):
    """User-space instructions per request of @moad (started by
    callgrind_build) over @n requests (+1, the one that wakes the dump)."""
    fake = os.path.dirname(os.path.dirname(moad.proc.args[0]))
    run_load(build, moad, agent, 20, warmup=20)
    callgrind_control(build, moad, agent, "-z")
    run_load(build, moad, agent, n, warmup=0)
    callgrind_control(build, moad, agent, "-d")
    dumps = sorted((os.path.join(fake, x) for x in os.listdir(fake) if x.startswith("cg.")),
                   key=os.path.getmtime)
    for path in reversed(dumps):
        with open(path) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    if KEEP:
                        shutil.move(path, os.path.join(KEEP, "callgrind-%s-%s.out" % (os.path.basename(fake), agent)))
                    else:
                        os.unlink(path)
                    return int(line.split()[1]) / float(n + 1)
    raise RuntimeError("callgrind wrote no dump with totals in " + fake)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--before", help="a second build tree, alternated with --build")
    ap.add_argument("-n", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--callgrind", action="store_true",
                    help="also run each build's moad under callgrind: user-space instructions per request "
                         "(deterministic, unlike time on a shared machine; no kernel time)")
    ap.add_argument("--perf", type=float, default=0)
    ap.add_argument("--agents", default="pass,legal")
    ap.add_argument("--out")
    ap.add_argument("--keep-perf", help="directory to keep perf-*.data and callgrind dumps in")
    args = ap.parse_args()
    global KEEP
    KEEP = args.keep_perf
    builds = [("after", os.path.abspath(args.build))]
    if args.before:
        builds.insert(0, ("before", os.path.abspath(args.before)))
    agents = args.agents.split(",")
    lines = []

    def say(s):
        print(s, flush=True)
        lines.append(s)

    work = tempfile.mkdtemp(prefix="moad-cpu-")
    mock = None
    daemons = {}
    try:
        mock = bench.Mock(builds[-1][1])
        for label, build in builds:
            d = os.path.join(work, label)
            ad = os.path.join(d, "agents.d")
            os.makedirs(ad)
            for a in agents:
                with open(os.path.join(ad, a + ".yaml"), "w") as f:
                    f.write(AGENTS[a])
            daemons[label] = bench.Moad(build, d, CONFIG.format(url=mock.base), ad)
        say("cpu-profile: %s, n=%d per round, %d rounds, concurrency 1, load average %s" % (
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), args.n, args.rounds, bench.loadavg()))
        for label, build in builds:
            say("  %s: %s (moad pid %d)" % (label, build, daemons[label].proc.pid))
        res = {}
        for rnd in range(args.rounds):
            order = builds if rnd % 2 == 0 else builds[::-1]
            for a in agents:
                for label, build in order:
                    cpu, st, p50, ok, err = run_load(build, daemons[label], a, args.n)
                    res.setdefault((label, a), []).append((cpu, st, p50))
                    say("round %d %-6s %-6s cpu %.3f ms/req (utime+stime %.3f)  p50 %.3f ms  ok %d err %d" % (
                        rnd + 1, label, a, cpu, st, p50, ok, err))
        say("summary (median of rounds; min-max):")
        for a in agents:
            for label, _ in builds:
                v = res[(label, a)]
                cpus = sorted(x[0] for x in v)
                p50s = sorted(x[2] for x in v)
                say("  %-6s %-6s cpu %.3f ms/req (%.3f-%.3f)  p50 %.3f ms (%.3f-%.3f)" % (
                    label, a, cpus[len(cpus) // 2], cpus[0], cpus[-1], p50s[len(p50s) // 2], p50s[0], p50s[-1]))
        if args.strace:
            for label, build in builds:
                for a in agents:
                    c = strace_counts(build, daemons[label], a, 300)
                    tot = sum(c.values())
                    say("strace %s %s: %.1f syscalls per request: %s" % (label, a, tot, ", ".join(
                        "%s %.2f" % (k, v) for k, v in sorted(c.items(), key=lambda kv: -kv[1]) if v >= 0.05)))
        if args.callgrind:
            for label, build in builds:
                fake = callgrind_build(build, work, label)
                d = os.path.join(work, "cg-" + label)
                ad = os.path.join(d, "agents.d")
                os.makedirs(ad)
                for a in agents:
                    with open(os.path.join(ad, a + ".yaml"), "w") as f:
                        f.write(AGENTS[a])
                cg = bench.Moad(fake, d, CONFIG.format(url=mock.base), ad)
                try:
                    for a in agents:
                        say("callgrind %-6s %-6s %.0f instructions per request (user space, 200 requests)" % (
                            label, a, callgrind_count(build, cg, a, 200)))
                finally:
                    cg.stop()
        if args.perf:
            for label, build in builds:
                for a in agents:
                    say("perf %s %s (share of moad's samples in the function and its callees):" % (label, a))
                    for x in perf_top(build, daemons[label], a, args.perf, args.keep_perf or work):
                        say("  " + x)
    finally:
        for d in daemons.values():
            rc = d.stop()
            if rc != 0:
                print("moad exited %s" % rc, file=sys.stderr)
        if mock:
            mock.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
