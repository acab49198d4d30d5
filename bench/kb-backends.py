#!/usr/bin/env python3
"""kb-backends.py — SQLite and PostgreSQL knowledge backends on the same
documents: starts a private PostgreSQL server (tests/integration/pgtest.py:
initdb + pg_ctl in a temporary directory, Unix socket only, fsync off), then
runs build/bench/kb-backends at each --chunks size (default 10000 and
100000) with the Debian Policy Manual and the licence texts as corpus and
the retrieval questions of tests/data/retrieval/policy-questions.tsv, and
writes everything it printed to bench/results/DATE-REV-kb-backends.txt.
A benchmark, run by hand (docs/performance.md, "Knowledge backends").

usage: bench/kb-backends.py [--build build] [--chunks 10000,100000] [--rounds 3]
                            [--pg-exact-max 20000] [--no-write]
"""
import argparse
import datetime
import glob
import gzip
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pgtest  # noqa: E402

POLICY = "/usr/share/doc/debian-policy/policy.txt.gz"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--chunks", default="10000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pg-exact-max", type=int, default=20000,
                    help="also search PostgreSQL unpruned up to this many chunks (slow beyond)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()

    tool = os.path.join(a.build, "bench", "kb-backends")
    if not os.access(tool, os.X_OK):
        sys.exit("%s is missing: cmake --build %s --target kb-backends" % (tool, a.build))
    if not os.path.exists(POLICY):
        sys.exit("%s is missing: install the debian-policy package" % POLICY)
    work = tempfile.mkdtemp(prefix="moa-kb-backends-")
    policy = os.path.join(work, "policy.txt")
    with gzip.open(POLICY, "rb") as src, open(policy, "wb") as dst:
        dst.write(src.read())
    corpus = [policy] + sorted(p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p)
                               and not os.path.islink(p))
    server = pgtest.PgServer()
    out = []
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                         universal_newlines=True).stdout.strip() or "unknown"
    head = ("kb-backends at %s, %s; nproc %d, load average %s; PostgreSQL %s (fsync off, Unix socket)"
            % (rev, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), os.cpu_count(),
               " ".join(open("/proc/loadavg").read().split()[:3]), server.psql("SHOW server_version")))
    print(head)
    out.append(head)
    try:
        for n in [int(x) for x in a.chunks.split(",")]:
            db = "bench%d" % n
            conninfo = server.createdb(db)
            cmd = [tool, "--queries", os.path.join(ROOT, "tests", "data", "retrieval", "policy-questions.tsv"),
                   "--chunks", str(n), "--rounds", str(a.rounds), "--state", os.path.join(work, db),
                   "--conninfo", conninfo, "--password-file", server.password_file]
            for c in corpus:
                cmd += ["--corpus", c]
            if n <= a.pg_exact_max:
                cmd.append("--pg-exact")
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
            text = "== %d chunks\n%s" % (n, p.stdout.rstrip())
            print(text, flush=True)
            out.append(text)
            if p.returncode != 0:
                sys.exit("kb-backends failed (%d)" % p.returncode)
    finally:
        server.stop()
    if not a.no_write:
        path = os.path.join(ROOT, "bench", "results", "%s-%s-kb-backends.txt"
                            % (datetime.date.today().isoformat(), rev))
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
