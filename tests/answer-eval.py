#!/usr/bin/env python3
"""Answer quality of the builtin provider, judged as a user reads the answer.

Starts the real daemon (shipped agents, sample knowledge, builtin provider)
and asks every question of the given sets (tests/data/answers/*.tsv: split,
agent, question, title, passage, style). Each answer is read through its
structured citations (moa.citations: one per quoted sentence):

  first     the first quoted sentence holds the expected passage
  found     some quoted sentence holds it
  on-page   share of the quoted sentences taken from the expected page
  extra     quoted sentences per answer from other pages (what a reader
            has to skip; some may still be useful, most are not)
  false-nf  answerable questions answered "not found"
  nf-ok     unanswerable questions (title "-") answered "not found"

--ingest AGENT=DIR first adds every regular file of DIR (symlinks
skipped) to AGENT's knowledge, titled by its file name: questions about
real documents the project did not write (e.g. legal=/usr/share/common-licenses).

--model agent pins each question to its agent (retrieval and extraction
only); --model moa routes it (what a user of the "moa" model sees).
Tune on --split dev only; report test. --min-first/--min-found make it a
regression check (exit 1 below them)."""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import moadtest  # noqa: E402


def norm(s):
    s = s.replace("*", "").replace("`", "").lower()
    return re.sub(r"\s+", " ", s).strip()


def load(paths, split):
    rows = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line or line.startswith("#"):
                    continue
                cols = line.split("\t")
                if len(cols) != 6:
                    sys.exit("%s:%d: %d columns, want 6" % (p, n, len(cols)))
                if split != "all" and cols[0] != split:
                    continue
                rows.append(dict(set=os.path.basename(p), split=cols[0], agent=cols[1], question=cols[2],
                                 title=cols[3], passage=cols[4], style=cols[5]))
    return rows


def judge(row, cites):
    quotes = [norm(c.get("quote") or "") for c in cites]
    # a quote ends where its "[n]" is put: without the sentence's full stop
    want = norm(row["passage"]).rstrip(" .!?;:")
    r = dict(n=len(cites))
    if row["title"] == "-":
        r["nf_ok"] = len(cites) == 0
        return r
    r["false_nf"] = len(cites) == 0
    r["first"] = bool(quotes) and want in quotes[0]
    r["found"] = any(want in q for q in quotes)
    on = sum(1 for c in cites if c.get("document", "").split("/")[-1] == row["title"])
    r["on"] = on
    r["extra"] = len(cites) - on
    return r


def ingest_dir(d, spec):
    agent, _, path = spec.partition("=")
    if not agent or not os.path.isdir(path):
        sys.exit("--ingest wants AGENT=DIR, got %r" % spec)
    n = 0
    for name in sorted(os.listdir(path)):
        f = os.path.join(path, name)
        if os.path.islink(f) or not os.path.isfile(f):
            continue
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        st, _, body = d.json("POST", "/v1/moa/agents/%s/documents" % agent, {"title": name, "text": text})
        if st not in (200, 201):
            sys.exit("cannot ingest %s: HTTP %d %s" % (f, st, body))
        n += 1
    print("ingested %d files of %s into %s" % (n, path, agent))


def report(label, res):
    ans = [r for r in res if "first" in r]
    un = [r for r in res if "nf_ok" in r]
    quoted = sum(r["n"] for r in ans)

    def share(k, v):
        return sum(1 for r in v if r[k]) / len(v) if v else float("nan")

    print("%-22s n=%3d  first %.3f  found %.3f  on-page %.3f  extra/answer %.2f  false-nf %.3f  nf-ok %s" % (
        label, len(ans), share("first", ans), share("found", ans),
        sum(r["on"] for r in ans) / quoted if quoted else float("nan"),
        sum(r["extra"] for r in ans) / len(ans) if ans else float("nan"), share("false_nf", ans),
        "%d/%d" % (sum(1 for r in un if r["nf_ok"]), len(un))))
    return share("first", ans), share("found", ans)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+")
    ap.add_argument("--split", default="dev", choices=("dev", "test", "all"))
    ap.add_argument("--model", default="agent", choices=("agent", "moa"))
    ap.add_argument("--show", action="store_true", help="print every miss with its answer")
    ap.add_argument("--ingest", action="append", default=[], metavar="AGENT=DIR")
    ap.add_argument("--min-first", type=float)
    ap.add_argument("--min-found", type=float)
    a = ap.parse_args()

    rows = load(a.data, a.split)
    if not rows:
        sys.exit("no questions in split %s" % a.split)
    d = moadtest.Daemon()
    results = []
    try:
        for spec in a.ingest:
            ingest_dir(d, spec)
        for row in rows:
            model = row["agent"] if a.model == "agent" else "moa"
            log_at = os.path.getsize(d.log_path)
            st, _, body = d.chat(row["question"], model=model, moa={})
            if st != 200:
                sys.exit("HTTP %d for %r: %s" % (st, row["question"], body[:300]))
            j = json.loads(body)
            cites = (j.get("moa") or {}).get("citations") or []
            r = judge(row, cites)
            r.update(row=row)
            results.append(r)
            miss = r.get("first") is False or r.get("nf_ok") is False
            if a.show and miss:
                print("MISS %s [%s] %s\n  want %s: %s" % (row["agent"], row["style"], row["question"], row["title"],
                                                          row["passage"]))
                for c in cites:
                    print("  [%d] %s: %s" % (c["number"], c.get("document"), (c.get("quote") or "(null)")[:160]))
                with open(d.log_path, encoding="utf-8", errors="replace") as lf:
                    lf.seek(log_at)
                    for line in lf:
                        if "extract: " in line:
                            print("  " + line[line.index("extract: "):].rstrip().replace(" | ", "\n    "))
    finally:
        d.cleanup()

    print("answers (%s split, model=%s)" % (a.split, a.model))
    for s in sorted({r["row"]["set"] for r in results}):
        report(s, [r for r in results if r["row"]["set"] == s])
    for ag in sorted({r["row"]["agent"] for r in results}):
        report("  agent " + ag, [r for r in results if r["row"]["agent"] == ag])
    first, found = report("all", results)
    bad = (a.min_first is not None and first < a.min_first) or (a.min_found is not None and found < a.min_found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
