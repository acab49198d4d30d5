#!/usr/bin/env python3
"""Knowledge searches on PostgreSQL must not stall the event loop (issue 14
item 2), measured:

    bench/pg-search-stall.py [BUILD_DIR] [--moad PATH] [--seconds N]

Starts a private PostgreSQL server (tests/integration/pgtest.py: needs the
postgresql package) and moad (BUILD_DIR/daemon/moad, or --moad: e.g. an
older build for a "before" figure) with the shipped agents seeded into it.
Then three phases:

1. latency: 60 chats one after the other, each pinned to legal (one
   knowledge search each, builtin provider): p50 and p99 wall time.
2. load: N seconds (default 20) of 4 clients asking chats pinned to legal
   while 1 client asks /healthz every 10 ms: chats per second, /healthz
   p50, p99 and max.
3. slow database: the same load while another session locks the chunks
   table for 1 s out of every 2 (every search waits for it): the same
   figures. A loop that waits for searches cannot answer /healthz while
   the lock is held.

Prints one line per figure. Not a test: nothing is asserted."""
import os
import sys
import threading
import time

from unixhttp import pct, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = sys.argv[1:]
moad = None
seconds = 20
if "--moad" in args:
    i = args.index("--moad")
    moad = os.path.abspath(args[i + 1])
    del args[i:i + 2]
if "--seconds" in args:
    i = args.index("--seconds")
    seconds = int(args[i + 1])
    del args[i:i + 2]
BUILD = os.path.abspath(args[0] if args else os.path.join(ROOT, "build"))
os.environ["MOAD_BIN"] = moad or os.path.join(BUILD, "daemon", "moad")
os.environ.setdefault("MOAD_TEST_BUILDDIR", BUILD)
os.environ.setdefault("MOAD_TEST_SRCDIR", ROOT)
os.environ.setdefault("MOAD_PLUGIN_DIR", os.path.join(BUILD, "plugins"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import pgtest  # noqa: E402
from moadtest import Daemon  # noqa: E402

QUESTIONS = [
    "How much notice must a landlord give before ending a tenancy?",
    "Can my landlord keep my deposit for cleaning?",
    "What does a contract need to be valid?",
    "Who owns the copyright of work made by an employee?",
    "How long is a warranty for a defective product?",
]


def chat(sock, q):
    body = {"model": "moa", "messages": [{"role": "user", "content": q}], "moa": {"agents": ["legal"]}}
    return request(sock, "POST", "/v1/chat/completions", body, timeout=120)


def load(sock, seconds, pg=None, db=None):
    stop = time.time() + seconds
    health, chats, lock = [], [], threading.Lock()

    def healthz():
        while time.time() < stop:
            t = time.monotonic()
            st, _ = request(sock, "GET", "/healthz")
            with lock:
                health.append((time.monotonic() - t) * 1000.0 if st == 200 else float("inf"))
            time.sleep(0.01)

    def ask(k):
        i = k
        while time.time() < stop:
            st, _ = chat(sock, QUESTIONS[i % len(QUESTIONS)])
            i += 1
            with lock:
                chats.append(st)

    def locker():
        while time.time() < stop - 1:
            p = pg.lock_chunks(db)
            time.sleep(1.0)
            pg.release(p)
            time.sleep(1.0)

    threads = [threading.Thread(target=healthz)] + [threading.Thread(target=ask, args=(k,)) for k in range(4)]
    if pg:
        threads.append(threading.Thread(target=locker))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    print("  chats: %d in %.1f s (%.1f/s), %d answered 200" % (len(chats), took, len(chats) / took, chats.count(200)))
    print("  healthz: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (len(health), pct(health, 50), pct(health, 99), max(health) if health else float("nan")))


def main():
    pg = pgtest.PgServer()
    db = "moa_bench"
    pg.createdb(db)
    d = Daemon(config=pg.config(db))
    try:
        print("moad: %s" % os.environ["MOAD_BIN"])
        for q in QUESTIONS:  # warm: term statistics read, connections made
            chat(d.socket, q)
        lat = []
        for i in range(60):
            t = time.monotonic()
            st, _ = chat(d.socket, QUESTIONS[i % len(QUESTIONS)])
            lat.append((time.monotonic() - t) * 1000.0)
            assert st == 200, st
        print("latency: 60 chats one at a time, p50 %.1f ms, p99 %.1f ms" % (pct(lat, 50), pct(lat, 99)))
        print("load, %d s:" % seconds)
        load(d.socket, seconds)
        print("load with the chunks locked 1 s in 2, %d s:" % seconds)
        load(d.socket, seconds, pg, db)
    finally:
        d.cleanup()
        pg.stop()


if __name__ == "__main__":
    main()
