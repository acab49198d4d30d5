#!/usr/bin/env python3
"""What running plugin callbacks off the loop costs per request, two builds
side by side in one run (issue 13 item 2):

    bench/plugin-cost.py [--build DIR] [--before MOAD] [--tree NAME=SRCDIR]...
                         [--rounds R] [-n N] [--out FILE]

Starts one moad per binary (DIR/daemon/moad; --before: e.g. a copy of an
older build's moad, run with DIR's plugins; --tree: another checkout's
SRCDIR/build/daemon/moad with its own build/plugins and agents.d) with the
shipped agents (agents.d: five plugins, the builtin provider, no
upstream), then alternates the daemons in R rounds
(default 5) of N requests (default 300) per scenario, at concurrency 1 over
the Unix socket with bench/moabench:

  * POST /v1/moa/route, the router alone: five plugin score() calls;
  * a moa-lite chat: scores, a build_prompt per selected agent, reviews.

Alternating puts the machine's drift on both sides alike; each figure pools
the rounds. Prints p50/p90/p99, moad's CPU per request (schedstat of all its
threads, warm-up included) and its thread count, with the load average
before and after. Bounded: every moabench run has a time limit. Needs the
build tree's moabench and plugins; loopback and Unix sockets only."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (Moad, summary, machine, loadavg)

QUERY = "Can my landlord keep my deposit?"
SCENARIOS = [
    ("POST /v1/moa/route (5 agents scored)", "/v1/moa/route", json.dumps({"query": QUERY}), '"agents"'),
    ("chat, moa-lite (scores, prompts, reviews)", "/v1/chat/completions",
     json.dumps({"model": "moa-lite", "messages": [{"role": "user", "content": QUERY}]}), '"choices"'),
]


def start(moad_bin, plugins, agents, work):
    """A moad from @moad_bin on the shipped agents (bench.Moad wants a build tree)."""
    tree = os.path.join(work, "tree")
    os.makedirs(os.path.join(tree, "daemon"))
    os.symlink(os.path.abspath(moad_bin), os.path.join(tree, "daemon", "moad"))
    os.symlink(os.path.abspath(plugins), os.path.join(tree, "plugins"))
    return bench.Moad(tree, work, "log_level: info\n", agents)


def run(moabench, moad, path, body, expect, n):
    run0 = moad.sched()[0]
    cmd = [moabench, "--url", "http://localhost" + path, "--unix", moad.socket, "-n", str(n), "-c", "1",
           "--warmup", "20", "--max-seconds", "60", "--timeout-ms", "10000", "--body", body, "--expect", expect]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError("moabench failed: " + out.stderr)
    r = json.loads(out.stdout)
    if r["errors"] or r["ok"] != n:
        raise RuntimeError("%s: %d of %d ok (%s)" % (path, r["ok"], n, r["first_error"]))
    r["cpu_ms"] = (moad.sched()[0] - run0) / 1e6 / (n + 20)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(bench.SRC, "build"))
    ap.add_argument("--before", help="an older moad binary to compare with")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=SRCDIR",
                    help="another checkout to compare with (its build/ and agents.d)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--out", help="also write the report here")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    moabench = os.path.join(a.build, "bench", "moabench")
    agents = os.path.join(bench.SRC, "agents.d")
    plugins = os.path.join(a.build, "plugins")
    targets = []
    for t in a.tree:
        name, _, src = t.partition("=")
        targets.append((name, os.path.join(src, "build", "daemon", "moad"), os.path.join(src, "build", "plugins"),
                        os.path.join(src, "agents.d")))
    if a.before:
        targets.append(("before", a.before, plugins, agents))
    targets.append(("after", os.path.join(a.build, "daemon", "moad"), plugins, agents))
    work = tempfile.mkdtemp(prefix="moad-plugin-cost-")
    daemons = {}
    lines = []
    try:
        load0 = bench.loadavg()
        for name, path, plug, ag in targets:
            d = os.path.join(work, name)
            os.makedirs(d)
            daemons[name] = start(path, plug, ag, d)
        res = {(t[0], s[0]): [] for t in targets for s in SCENARIOS}
        for _ in range(max(1, min(a.rounds, 20))):
            for t, *_ in targets:
                for label, path, body, expect in SCENARIOS:
                    res[(t, label)].append(run(moabench, daemons[t], path, body, expect, max(1, min(a.n, 5000))))
        load1 = bench.loadavg()
        m = bench.machine()
        lines.append("# plugin-call cost: %d rounds x %d requests, concurrency 1, Unix socket" % (a.rounds, a.n))
        lines.append("")
        lines.append("commit %s%s; %s, %d CPUs, %s; load average %s before, %s after; %s UTC" % (
            m["commit"], " (dirty)" if m["dirty"] else "", m["cpu"], m["nproc"], m["mem"], load0, load1,
            time.strftime("%Y-%m-%d %H:%M", time.gmtime())))
        for t, path, *_ in targets:
            lines.append("%s: %s" % (t, os.path.abspath(path)))
        lines.append("")
        lines.append("| request | build | n | p50 (ms) | p90 (ms) | p99 (ms) | CPU per request (ms), per round "
                     "| threads after |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for label, _, _, _ in SCENARIOS:
            for t, *_ in targets:
                runs = res[(t, label)]
                s = bench.summary([x for r in runs for x in r["lat_us"]])
                cpu = sorted(r["cpu_ms"] for r in runs)
                lines.append("| %s | %s | %d | %.3f | %.3f | %.3f | median %.3f (%.3f-%.3f) | %d |" % (
                    label, t, s["n"], s["p50"], s["p90"], s["p99"], cpu[len(cpu) // 2], cpu[0], cpu[-1],
                    daemons[t].mem_kib().get("Threads", 0)))
        lines.append("")
        for label, _, _, _ in SCENARIOS:
            f = bench.summary([x for r in res[("after", label)] for x in r["lat_us"]])
            for t, *_ in targets[:-1]:
                b = bench.summary([x for r in res[(t, label)] for x in r["lat_us"]])
                lines.append("%s: p50 after/%s = %.2f" % (label, t, f["p50"] / b["p50"]))
    finally:
        for d in daemons.values():
            rc = d.stop()
            if rc != 0:
                lines.append("moad exited %s:\n%s" % (rc, d.read_log()[-2000:]))
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
