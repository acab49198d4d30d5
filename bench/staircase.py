#!/usr/bin/env python3
"""Staircase streaming (issue 13 item 4), measured against the mock upstream:

    bench/staircase.py [BUILD_DIR] [--requests N] [--min-chars A,B,...]

Starts tests/mock-upstream and one moad with three generic experts (no
plugin, so no review step holds text back) whose mock models (gen-<ms>)
write the echoed question one word per 50, 60 and 70 ms, streamed or not,
and an aggregator writing one word per 20 ms. The question has 27 words,
so an answer is 30 words (176 characters) and takes 1.5-2.1 s in full.
The same 3-layer pipeline (propose, refine, aggregate) runs without the
staircase and with `staircase: true` at each staircase_min_chars given
(default 60,120), N streamed requests each (default 12), interleaved
round by round so load drift hits every mode alike. Reports per mode:
time to first token (client-measured, p50/p90), total time (p50), and
completeness: the share of each answer's full text that the next layer
saw (next_layer_saw.chars / full length, from the trace), averaged over the
proposals (what the refiners saw) and over the refinements (what the
aggregator saw). Only 127.0.0.1 and a Unix socket in a temporary directory
are used. Needs Python 3 only."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from unixhttp import UnixConn, pct, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUESTION = ("Explain in plain words how a small bakery should plan its weekly flour orders when demand changes "
            "with the weather, the holidays and local events around town")
AGENTS = {"alpha": "gen-50", "beta": "gen-60", "gamma": "gen-70"}
AGG = "gen-20"

CONFIG = """
providers:
  - name: mock
    type: openai
    base_url: {url}
    model: echo
    max_retries: 0
    timeout_ms: 60000
  - name: mockagg
    type: openai
    base_url: {url}
    model: {agg}
    max_retries: 0
    timeout_ms: 60000
limits:
  request_timeout_ms: 120000
pipelines:
{pipelines}
"""

PIPELINE = """  - name: {name}
{extra}    layers:
      - role: propose
        quorum: 1
      - role: refine
        quorum: 1
      - role: aggregate
        agent: mockagg
"""


def full_text(model):
    return "[%s] you said: %s" % (model, QUESTION)


def ask(sock, model):
    """One streamed request: (ttft s, total s, trace) or raises."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": QUESTION}],
            "moa": {"agents": sorted(AGENTS), "trace": True}}
    c = UnixConn(sock, 120)
    t0 = time.monotonic()
    c.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError("%s: HTTP %d %s" % (model, r.status, r.read()[:300]))
    ttft, buf, trace = None, b"", None
    while True:
        line = r.readline()
        if not line:
            break
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        ev = json.loads(line[6:])
        ch = ev.get("choices") or []
        if ttft is None and ch and ch[0].get("delta", {}).get("content"):
            ttft = time.monotonic() - t0
        if "moa" in ev and "layers" in ev["moa"]:
            trace = ev["moa"]
    total = time.monotonic() - t0
    c.close()
    return ttft, total, trace


def completeness(trace, layer):
    """Mean share of the full answers of @layer that the next layer saw."""
    calls = trace["layers"][layer]
    shares = []
    for call in calls:
        full = len(full_text(AGENTS[call["agent"]]))
        saw = call.get("next_layer_saw", {"chars": full if call["status"] == "ok" else 0})["chars"]
        shares.append(min(saw / full, 1.0))
    return sum(shares) / len(shares)


def layer_ms(trace, layer):
    return max(c["latency_ms"] for c in trace["layers"][layer])


def main():
    args = sys.argv[1:]
    n, mins = 12, [60, 120]
    if "--requests" in args:
        i = args.index("--requests")
        n = int(args[i + 1])
        del args[i:i + 2]
    if "--min-chars" in args:
        i = args.index("--min-chars")
        mins = [int(x) for x in args[i + 1].split(",")]
        del args[i:i + 2]
    build = os.path.abspath(args[0] if args else os.path.join(ROOT, "build"))
    tmp = tempfile.mkdtemp(prefix="moad-staircase-")
    mock = subprocess.Popen([os.path.join(build, "tests", "mock-upstream"), "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    proc = log = None
    try:
        port = int(mock.stdout.readline().split()[1])
        agents = os.path.join(tmp, "agents.d")
        os.mkdir(agents)
        for name, model in AGENTS.items():
            with open(os.path.join(agents, name + ".yaml"), "w") as f:
                f.write("name: %s\ndescription: %s bench expert\nprovider: mock\nmodel: %s\n" % (name, name, model))
        modes = [("plain", "")] + [("stair-%d" % m, "    staircase: true\n    staircase_min_chars: %d\n" % m)
                                   for m in mins]
        cfg = os.path.join(tmp, "moad.yaml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(url="http://127.0.0.1:%d/v1" % port, agg=AGG,
                                  pipelines="".join(PIPELINE.format(name=m, extra=e) for m, e in modes)))
        sock = os.path.join(tmp, "moad.sock")
        log = open(os.path.join(tmp, "moad.log"), "w")
        proc = subprocess.Popen([os.path.join(build, "daemon", "moad"), "--socket", sock, "--state-dir",
                                 os.path.join(tmp, "state"), "--config", cfg, "--agents-dir", agents],
                                stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, MOAD_PLUGIN_DIR=os.path.join(build, "plugins")))
        end = time.time() + 60
        while time.time() < end:
            try:
                if request(sock, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        res = {m: {"ttft": [], "total": [], "c1": [], "c2": [], "l1": [], "l2": []} for m, _ in modes}
        ask(sock, "plain")  # warm-up: connections, first-call costs
        for _ in range(n):
            for m, _ in modes:
                ttft, total, trace = ask(sock, m)
                r = res[m]
                r["ttft"].append(ttft * 1000)
                r["total"].append(total * 1000)
                r["c1"].append(completeness(trace, 0))
                r["c2"].append(completeness(trace, 1))
                r["l1"].append(layer_ms(trace, 0))
                r["l2"].append(layer_ms(trace, 1))
        base = res["plain"]
        full_sum = pct(base["l1"], 50) + pct(base["l2"], 50)
        print("# bench/staircase.py %s --requests %d --min-chars %s" % (build, n, ",".join(map(str, mins))))
        print("# %s UTC, load average %s" % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                              " ".join(open("/proc/loadavg").read().split()[:3])))
        print("# proposers/refiners: mock %s; aggregator %s; a full answer is %d-%d characters"
              % ("/".join(AGENTS.values()), AGG, min(len(full_text(m)) for m in AGENTS.values()),
                 max(len(full_text(m)) for m in AGENTS.values())))
        print("# without staircase, layers 1 and 2 took p50 %.0f + %.0f = %.0f ms (their full latencies)"
              % (pct(base["l1"], 50), pct(base["l2"], 50), full_sum))
        print()
        print("| mode | requests | TTFT p50 | TTFT p90 | total p50 | layer 1 p50 | layer 2 p50 "
              "| refiners saw (of proposals) | aggregator saw (of refinements) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for m, _ in modes:
            r = res[m]
            print("| %s | %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f%% | %.0f%% |"
                  % (m, len(r["ttft"]), pct(r["ttft"], 50), pct(r["ttft"], 90), pct(r["total"], 50),
                     pct(r["l1"], 50), pct(r["l2"], 50), 100 * sum(r["c1"]) / len(r["c1"]),
                     100 * sum(r["c2"]) / len(r["c2"])))
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log:
            log.close()
        mock.terminate()
        mock.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
