#!/usr/bin/env python3
"""Check that no query in a routing TSV contains a lexicon word.

Usage: check-no-lexicon.py QUERIES.tsv WORDLIST.txt

QUERIES.tsv: UTF-8, '#' lines are comments, data lines are
split<TAB>labels<TAB>query.  WORDLIST.txt: one word per line.

A word is a maximal run of letters/digits; matching is whole-word and
case-insensitive.  Each word is also compared with its accents stripped
(e.g. "Médecin" -> "medecin"), so accented spellings of listed words count.
Prints every offending line with the words it contains and exits 1 if
there are any (2 on malformed input or bad usage), else exits 0.
"""
import re
import sys
import unicodedata

WORD_RE = re.compile(r"[^\W_]+")


def fold(word):
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: %s QUERIES.tsv WORDLIST.txt\n" % argv[0])
        return 2
    tsv_path, words_path = argv[1], argv[2]
    with open(words_path, encoding="utf-8") as fh:
        banned = {w.strip().lower() for w in fh if w.strip()}

    offenders = 0
    malformed = 0
    with open(tsv_path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                print("%s:%d: malformed line (expected 3 tab-separated fields): %s"
                      % (tsv_path, lineno, line))
                malformed += 1
                continue
            query = fields[2]
            hits = []
            for tok in WORD_RE.findall(query):
                low = tok.lower()
                for cand in (low, fold(low)):
                    if cand in banned and cand not in hits:
                        hits.append(cand)
            if hits:
                offenders += 1
                print("%s:%d: [%s] %s" % (tsv_path, lineno, ", ".join(hits), query))

    if malformed:
        return 2
    if offenders:
        print("%d offending line(s)" % offenders)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
