#!/usr/bin/env python3
"""bench/moabench sends what it is told: --header reaches the server (the
mock picks its behaviour from X-Mock-Behaviour), and a malformed or
excess --header is refused before anything is sent (bench/peer.sh tells
the Portkey gateway its upstream through headers).

    test-moabench.py BUILD_DIR"""
import json
import os
import subprocess
import sys

build = sys.argv[1]
bench = os.path.join(build, "bench", "moabench")
mock = subprocess.Popen([os.path.join(build, "tests", "mock-upstream"), "--port", "0"], stdout=subprocess.PIPE,
                        text=True)
failed = []
passed = []


def check(what, cond, detail=""):
    print("%s: %s%s" % ("ok" if cond else "FAILED", what, (" (%s)" % detail) if detail and not cond else ""))
    (passed if cond else failed).append(what)


def run(*extra):
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    return subprocess.run([bench, "--url", "http://127.0.0.1:%d/v1/chat/completions" % port, "-n", "5", "-c", "2",
                           "--max-seconds", "20", "--body", body] + list(extra),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


try:
    line = mock.stdout.readline()
    if not line.startswith("PORT "):
        raise SystemExit("mock-upstream did not start: %r" % line)
    port = int(line.split()[1])

    r = run("--expect", "you said")
    j = json.loads(r.stdout)
    check("without --header the mock echoes", r.returncode == 0 and j["ok"] == 5, r.stdout + r.stderr)

    r = run("--header", "X-Mock-Behaviour: status-429", "--header", "X-Other: 1")
    j = json.loads(r.stdout)
    check("--header reaches the server", j["ok"] == 0 and j["status"]["4xx"] == 5, r.stdout)

    for bad in ("no-colon", ": no name", "X-Split: a\r\nX-Evil: b", "X-Long: " + "a" * 1100):
        r = run("--header", bad)
        check("--header %r is refused" % bad[:20],
              r.returncode == 2 and "bad or too many --header" in r.stderr and r.stdout == "", r.stderr)
    r = run(*sum((["--header", "X-H%d: v" % i] for i in range(17)), []))
    check("a 17th --header is refused", r.returncode == 2 and "at most 16" in r.stderr, r.stderr)
finally:
    mock.terminate()
    mock.wait(10)

print("%d passed, %d failed" % (len(passed), len(failed)))
sys.exit(1 if failed else 0)
