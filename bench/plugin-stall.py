#!/usr/bin/env python3
"""A slow plugin must not stall the daemon (issue 12 item 4), measured:

    bench/plugin-stall.py [BUILD_DIR] [--moad PATH [--old]] [--seconds N]

Starts moad (BUILD_DIR/daemon/moad, or --moad: e.g. an older build for a
"before" figure; --old for one that knows no plugin_* limits) with the shipped legal and general agents and three
agents of the sleepy test plugin (BUILD_DIR/tests/plugins/sleepy.so), each
sleeping 5 s in one callback: score, build_prompt, review. Quarantine is
switched off (plugin_max_timeouts: 1000000) so the plugins stay busy all
run long. Load for N seconds (default 30): 4 clients asking chats that pin
a sleepy agent next to legal or name it alone, 2 clients asking legal
alone, 1 client asking /healthz in a loop. Prints the /healthz latency
(p50, p99, max), the share of legal answers that were 200, and what the
sleepy requests got. Needs Python 3 only."""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from unixhttp import pct, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = sys.argv[1:]
moad = None
seconds = 30
old = "--old" in args  # a moad without the plugin_* limits (no budgets): give it none
if old:
    args.remove("--old")
if "--moad" in args:
    i = args.index("--moad")
    moad = args[i + 1]
    del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds")
    seconds = int(args[i + 1])
    del args[i:i + 2]
BUILD = os.path.abspath(args[0] if args else os.path.join(ROOT, "build"))
MOAD = os.path.abspath(moad) if moad else os.path.join(BUILD, "daemon", "moad")
SLEEPY = os.path.join(BUILD, "tests", "plugins", "sleepy.so")
KNOWLEDGE = os.path.join(ROOT, "agents.d", "knowledge")


def main():
    tmp = tempfile.mkdtemp(prefix="moad-stall-")
    agents = os.path.join(tmp, "agents.d")
    os.mkdir(agents)
    for name in ("legal", "general"):
        with open(os.path.join(agents, name + ".yaml"), "w") as f:
            f.write("name: %s\nplugin: %s\nknowledge: [%s]\n" % (name, name, os.path.join(KNOWLEDGE, name)))
    for cb in ("score", "build_prompt", "review"):
        with open(os.path.join(agents, "sleepy_%s.yaml" % cb), "w") as f:
            f.write("name: sleepy_%s\nplugin: %s\noptions:\n  sleep_ms: \"5000\"\n  sleep_in: %s\n"
                    % (cb, SLEEPY, cb))
    cfg = os.path.join(tmp, "moad.yaml")
    with open(cfg, "w") as f:
        f.write("" if old else "limits:\n  plugin_max_timeouts: 1000000\n  plugin_max_stuck: 64\n")
    sock = os.path.join(tmp, "moad.sock")
    log = open(os.path.join(tmp, "moad.log"), "w")
    env = dict(os.environ, MOAD_PLUGIN_DIR=os.path.join(BUILD, "plugins"))
    proc = subprocess.Popen([MOAD, "--socket", sock, "--state-dir", os.path.join(tmp, "state"), "--config", cfg,
                             "--agents-dir", agents], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        end = time.time() + 60
        while time.time() < end:
            try:
                if request(sock, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        stop = time.time() + seconds
        health, legal, sleepy = [], [], {}
        lock = threading.Lock()

        def healthz():
            while time.time() < stop:
                t = time.monotonic()
                st, _ = request(sock, "GET", "/healthz")
                with lock:
                    health.append((time.monotonic() - t) * 1000.0 if st == 200 else float("inf"))
                time.sleep(0.01)

        def ask_legal():
            while time.time() < stop:
                st, _ = request(sock, "POST", "/v1/chat/completions",
                                {"model": "legal", "messages": [{"role": "user", "content": "What is a deposit?"}]})
                with lock:
                    legal.append(st)

        def ask_sleepy(k):
            bodies = [
                {"model": "moa", "messages": [{"role": "user", "content": "drowsy: can my landlord keep my deposit?"}]},
                {"model": "moa", "messages": [{"role": "user", "content": "Can my landlord keep my deposit?"}],
                 "moa": {"agents": ["legal", "sleepy_build_prompt"]}},
                {"model": "sleepy_review", "messages": [{"role": "user", "content": "What is a deposit?"}]},
                {"model": "moa", "messages": [{"role": "user", "content": "Can my landlord keep my deposit?"}],
                 "moa": {"agents": ["legal", "sleepy_score"]}},
            ]
            i = k
            while time.time() < stop:
                b = bodies[i % len(bodies)]
                i += 1
                st, _ = request(sock, "POST", "/v1/chat/completions", b)
                key = "%s %s" % (b["model"], ",".join(b.get("moa", {}).get("agents", [])) or "-")
                with lock:
                    sleepy.setdefault(key, {}).setdefault(st, 0)
                    sleepy[key][st] += 1

        threads = [threading.Thread(target=healthz)]
        threads += [threading.Thread(target=ask_legal) for _ in range(2)]
        threads += [threading.Thread(target=ask_sleepy, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _, metrics = request(sock, "GET", "/metrics")
        timeouts = [l for l in metrics.decode().splitlines() if l.startswith("moad_plugin_timeouts_total{")]
        print("moad: %s" % MOAD)
        print("healthz: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
              % (len(health), pct(health, 50), pct(health, 99), max(health) if health else float("nan")))
        print("legal alone: %d requests, %.1f%% 200" % (len(legal), 100.0 * legal.count(200) / max(len(legal), 1)))
        for k, v in sorted(sleepy.items()):
            print("sleepy request %s: %s" % (k, ", ".join("%d x %s" % (n, st) for st, n in sorted(v.items()))))
        for l in timeouts:
            print(l)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
