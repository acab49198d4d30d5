#!/usr/bin/env python3
"""test-moactl-daemon.py — moactl against the real moad: starts the daemon
on a temporary socket and state directory with the shipped agents and the
offline builtin provider (no network), then drives every moactl command and
checks outputs and exit codes. Complements test-moactl.py, which covers the
failure modes with a fake daemon.

Usage: test-moactl-daemon.py MOACTL MOAD AGENTS_DIR
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from reachable import reachable  # tests/reachable.py

MOACTL = MOAD = AGENTS_DIR = None
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


class MoactlDaemonTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="moactl-moad-")
        cls.sock = os.path.join(cls.dir, "moad.sock")
        state = os.path.join(cls.dir, "state")
        os.mkdir(state)
        cls.log = open(os.path.join(cls.dir, "moad.log"), "w+")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        cls.moad = subprocess.Popen([MOAD, "--socket", cls.sock, "--state-dir", state, "--agents-dir", AGENTS_DIR],
                                    stdout=cls.log, stderr=subprocess.STDOUT, env=env)
        # Ready when health says so; the daemon seeds the knowledge bases first.
        # unittest skips tearDownClass when this fails: never leave moad behind.
        try:
            deadline = time.monotonic() + 60
            while True:
                if cls.moad.poll() is not None:
                    raise RuntimeError("moad exited early:\n" + cls.daemon_log())
                if os.path.exists(cls.sock) and cls.moactl("health")[0] == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("moad did not become ready:\n" + cls.daemon_log())
                time.sleep(0.1)
        except BaseException:
            log = cls.daemon_log()
            cls.tearDownClass()
            sys.stderr.write(log)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.moad.poll() is None:
            cls.moad.send_signal(signal.SIGTERM)
            try:
                cls.moad.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cls.moad.kill()
                cls.moad.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def daemon_log(cls):
        cls.log.flush()
        cls.log.seek(0)
        return cls.log.read()[-4000:]

    @classmethod
    def moactl(cls, *args, stdin=None):
        env = dict(os.environ)
        env["MOAD_SOCKET"] = cls.sock
        env["ASAN_OPTIONS"] = "exitcode=86:detect_leaks=1"
        p = subprocess.run([MOACTL, *args], input=stdin, capture_output=True, env=env, timeout=120)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("sanitizer report for %r:\n%s" % (args, err))
        return p.returncode, out, err

    def test_health_models_agents_status_metrics(self):
        self.assertEqual(self.moactl("health")[:2], (0, "moad: ok, ready\n"))
        rc, out, _ = self.moactl("models")
        self.assertEqual(rc, 0)
        models = [l.split()[0] for l in out.splitlines()[1:]]
        for name in ("moa", "moa-lite", "legal", "medical", "general"):
            self.assertIn(name, models)
        rc, out, _ = self.moactl("agents")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"(?m)^legal +legal +\S+ +\d\.\d\d +builtin ")
        rc, out, _ = self.moactl("status")
        self.assertEqual(rc, 0)
        self.assertIn("State:      ready", out)
        self.assertRegex(out, r"Pipelines:  .*moa")
        rc, out, _ = self.moactl("metrics")
        self.assertEqual(rc, 0)
        self.assertIn("# TYPE moad_", out)
        rc, out, _ = self.moactl("--json", "status")
        self.assertEqual(json.loads(out)["state"], "ready")

    def test_route(self):
        rc, out, _ = self.moactl("route", "Can my landlord keep the deposit after the lease ends?")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^AGENT +SCORE +LEXICON +LEARNED +KB +SELECTED\n")
        self.assertRegex(out, r"\n  legal: lexicon: [^\n]*landlord[^\n]*; learned: [^\n]*; knowledge: [^\n]*documents: ")
        self.assertRegex(out, r"\nSelected: legal")

    def test_ingest_ask_delete(self):
        d = tempfile.mkdtemp(dir=self.dir)
        doc = os.path.join(d, "zorblax covenant.md")
        sentence = "The Zorblax covenant requires every tenant to water the communal ficus on Tuesdays."
        with open(doc, "w") as f:
            f.write("# Zorblax\n\n" + sentence + "\n")

        rc, _, err = self.moactl("ingest", "--agent", "legal", doc)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"\[1/1\] zorblax covenant\.md: added \(\d+ chunks?\)\n")
        rc, out, _ = self.moactl("documents", "--agent", "legal")
        self.assertEqual(rc, 0)
        self.assertIn("zorblax covenant.md", out)
        self.assertIn(os.path.realpath(doc), out)

        # The builtin provider answers from the knowledge base: the sentence comes back.
        rc, out, err = self.moactl("--agent", "legal", "ask", "What does the Zorblax covenant require of tenants?")
        self.assertEqual(rc, 0, err)
        self.assertIn("water the communal ficus on Tuesdays", out)

        rc, out, err = self.moactl("--trace", "--agent", "legal", "ask", "Zorblax covenant ficus")
        self.assertEqual(rc, 0, err)
        self.assertIn("\nRoute:\n", out)
        self.assertRegex(out, r"\nLayers:\nLAYER +AGENT +PROVIDER")
        self.assertRegex(out, r"(?m)^1 propose +legal +builtin ")
        self.assertRegex(out, r"Usage: \d+ prompt \+ \d+ completion = \d+ tokens")

        rc, out, _ = self.moactl("--json", "ask", "-", stdin=b"Zorblax covenant?\n")
        self.assertEqual(rc, 0)
        reply = json.loads(out)
        self.assertEqual(reply["object"], "chat.completion")
        self.assertTrue(reply["choices"][0]["message"]["content"])

        rc, out, _ = self.moactl("delete", "--agent", "legal", "zorblax covenant.md")
        self.assertEqual((rc, out), (0, "deleted \"zorblax covenant.md\" from agent legal\n"))
        rc, _, err = self.moactl("delete", "--agent", "legal", "zorblax covenant.md")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404", err)

    # -- ingest of trees, formats, resume, sync (issue 10) ------------------
    def docs_json(self, agent):
        rc, out, err = self.moactl("--json", "docs", "--agent", agent)
        self.assertEqual(rc, 0, err)
        return {d["title"]: d for d in json.loads(out)["documents"]}

    def test_ingest_tree_formats_resume(self):
        """40 files named 'copyright' in different directories are 40
        documents titled by their relative paths; .gz, Latin-1, UTF-16 and
        HTML are converted and searchable; a corrupt PDF, a binary and an
        oversized file are refused with reasons while the rest goes in; an
        interrupted ingest (the first half done) re-run sends only the rest."""
        top = os.path.join(tempfile.mkdtemp(dir=self.dir), "debian-docs")
        os.mkdir(top)
        for i in range(40):
            os.makedirs(os.path.join(top, "pkg%02d" % i))
            with open(os.path.join(top, "pkg%02d" % i, "copyright"), "w") as f:
                f.write("Files: *\nCopyright: the pkg%02d authors, licence zqcopy%02d.\n" % (i, i))
        with gzip.open(os.path.join(top, "notes.txt.gz"), "wb") as f:
            f.write(b"The quokkagz ledger is kept compressed.\n")
        with open(os.path.join(top, "latin.txt"), "wb") as f:
            f.write("The zorblatin caf\u00e9 sells cr\u00e8me br\u00fbl\u00e9e.\n".encode("latin-1"))
        with open(os.path.join(top, "utf16.txt"), "wb") as f:
            f.write("The zorbsixteen rule is stored in UTF-16.\n".encode("utf-16"))
        with open(os.path.join(top, "page.html"), "w") as f:
            f.write("<!DOCTYPE html><html><head><title>Page</title><script>var zorbscript = 1;</script>"
                    "<style>.zorbstyle { color: red }</style></head><body><h1>Zorbhtml</h1>"
                    "<p>The zorbhtml fee is 5&nbsp;&euro; &amp; more.</p></body></html>")
        with open(os.path.join(top, "broken.pdf"), "wb") as f:
            f.write(b"%PDF-1.4\n% not really a PDF\n")
        with open(os.path.join(top, "photo.bin"), "wb") as f:
            f.write(bytes(range(256)) * 4)
        with open(os.path.join(top, "huge.txt"), "w") as f:
            f.write(("word " * 1000 + "\n") * 3500)  # 17.5 MB: over max_ingest_bytes (16 MiB)

        # The first half, as an interrupted run would have left it.
        first = [os.path.join(top, "pkg%02d" % i) for i in range(20)]
        rc, _, err = self.moactl("ingest", "--agent", "finance", "--base", top, *first)
        self.assertEqual(rc, 0, err)
        self.assertTrue(err.endswith("finance: 20 added, 0 replaced, 0 unchanged, 0 refused\n"), err)

        rc, _, err = self.moactl("ingest", "--agent", "finance", "--base", top, "-r", top)
        self.assertEqual(rc, 1, err)  # something was refused
        summary = err.splitlines()[-1]
        self.assertTrue(summary.startswith("finance: 24 added, 0 replaced, 20 unchanged, 3 refused ("), summary)
        self.assertRegex(err, r"\[\d+/47\] broken\.pdf: refused: (cannot read PDF files: pdftotext not found|"
                              r"not a readable PDF)")
        self.assertIn("photo.bin: refused: not text (binary data)\n", err)
        self.assertRegex(err, r"huge\.txt: refused: too large: \d+ bytes of text, moad takes at most 16777216 "
                              r"\(max_ingest_bytes\)\n")
        self.assertIn("pkg00/copyright: unchanged\n", err)
        self.assertIn("pkg39/copyright: added (1 chunk)\n", err)
        self.assertIn("notes.txt.gz: added (1 chunk; gzip)\n", err)
        self.assertIn("latin.txt: added (1 chunk; Latin-1)\n", err)
        self.assertIn("utf16.txt: added (1 chunk; UTF-16LE)\n", err)
        self.assertRegex(err, r"page\.html: added \(\d+ chunks?; HTML\)\n")

        docs = self.docs_json("finance")
        for i in range(40):
            title = "pkg%02d/copyright" % i
            self.assertIn(title, docs)
            path = os.path.join(top, title)
            with open(path, "rb") as f:
                data = f.read()
            st = os.stat(path)
            d = docs[title]
            self.assertEqual((d["sha256"], d["size"], d["mtime"], d["source"]),
                             (hashlib.sha256(data).hexdigest(), len(data), int(st.st_mtime), path))
            self.assertGreaterEqual(d["ingested_at"], int(st.st_mtime))
        for t in ("broken.pdf", "photo.bin", "huge.txt"):
            self.assertNotIn(t, docs)
        # The table shows them too.
        rc, out, _ = self.moactl("docs", "--agent", "finance")
        self.assertRegex(out, r"(?m)^pkg07/copyright +1 +\d+ +\d+ +\d{4}-\d\d-\d\d [\d:]{8} +"
                              r"\d{4}-\d\d-\d\d [\d:]{8} +%s +%s$" %
                         (docs["pkg07/copyright"]["sha256"], re.escape(os.path.join(top, "pkg07/copyright"))))

        # The converted texts are searchable (the builtin provider answers
        # from the knowledge base); scripts and styles were dropped.
        for question, sentence in (("What is kept in the quokkagz ledger?", "The quokkagz ledger is kept compressed"),
                                   ("What does the zorblatin café sell?", "The zorblatin café sells crème brûlée"),
                                   ("What is the zorbsixteen rule?", "The zorbsixteen rule is stored in UTF-16"),
                                   ("What is the zorbhtml fee?", "The zorbhtml fee is 5 € & more"),
                                   ("Which licence is zqcopy33?", "licence zqcopy33")):
            rc, out, err = self.moactl("--agent", "finance", "ask", question)
            self.assertEqual(rc, 0, err)
            self.assertIn(sentence, out)
        for word in ("zorbscript", "zorbstyle"):
            rc, out, _ = self.moactl("--agent", "finance", "ask", "What is %s?" % word)
            self.assertIn("has no passage about", out)

        # A second run sends nothing.
        rc, _, err = self.moactl("ingest", "--agent", "finance", "--base", top, top)
        self.assertTrue(err.endswith("finance: 0 added, 0 replaced, 44 unchanged, 3 refused (broken.pdf: " +
                                     err.split("(broken.pdf: ", 1)[1].split("\n")[0] + "\n"), err)
        self.assertNotIn("added", err.replace("0 added", ""))

    def test_ingest_include_exclude_title(self):
        d = os.path.join(tempfile.mkdtemp(dir=self.dir), "kb")
        os.makedirs(os.path.join(d, "sub"))
        os.makedirs(os.path.join(d, ".git"))
        for name in ("a.md", "b.txt", "sub/c.md", "sub/skip.md", ".git/config.md"):
            with open(os.path.join(d, name), "w") as f:
                f.write("Knowledge about zorbfilter %s.\n" % name)
        # One directory argument is its own base: titles are relative to it.
        rc, out, err = self.moactl("ingest", "--agent", "finance", "--dry-run", "--include", "*.md",
                                   "--exclude", "sub/skip*", d)
        self.assertEqual((rc, out), (0, "add a.md\nadd sub/c.md\n"), err)
        self.assertEqual(err, "dry run: finance: would add 2, replace 0, remove 0; 0 unchanged, 0 refused\n")
        self.assertNotIn("a.md", self.docs_json("finance"))
        rc, out, err = self.moactl("ingest", "--agent", "finance", "--include", "*.md", "--exclude", "sub/skip*", d)
        self.assertEqual(rc, 0, err)
        docs = self.docs_json("finance")
        self.assertIn("a.md", docs)
        self.assertIn("sub/c.md", docs)
        for t in ("b.txt", "sub/skip.md", ".git/config.md", "kb/a.md"):
            self.assertNotIn(t, docs)
        # Several arguments share their common parent as the base.
        rc, out, err = self.moactl("ingest", "--agent", "finance", "--dry-run", "--include", "*.md", d,
                                   os.path.join(d, "b.txt"))
        self.assertEqual((rc, out), (0, "add kb/a.md\nadd kb/sub/c.md\nadd kb/sub/skip.md\nadd kb/b.txt\n"), err)
        # --title names a single file; a file from before 1970 has its mtime unknown.
        os.utime(os.path.join(d, "b.txt"), (-86400, -86400))
        rc, _, err = self.moactl("ingest", "--agent", "finance", "--title", "Zorb filter notes",
                                 os.path.join(d, "b.txt"))
        self.assertEqual(rc, 0, err)
        doc = self.docs_json("finance")["Zorb filter notes"]
        self.assertEqual((doc["source"], doc["mtime"], doc["size"]), (os.path.join(d, "b.txt"), None, 34))

    def test_ingest_sync(self):
        d = os.path.join(tempfile.mkdtemp(dir=self.dir), "synced")
        os.makedirs(os.path.join(d, "deep"))
        files = {"one.md": "First zorbsync file.\n", "two.md": "Second zorbsync file.\n",
                 "deep/three.md": "Third zorbsync file.\n"}
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        # A document outside the synced directory (same agent) must survive.
        other = os.path.join(tempfile.mkdtemp(dir=self.dir), "outside.md")
        with open(other, "w") as f:
            f.write("Outside the synced tree.\n")
        self.assertEqual(self.moactl("ingest", "--agent", "finance", other)[0], 0)

        rc, _, err = self.moactl("ingest", "--agent", "finance", "--sync", d)
        self.assertEqual(rc, 0, err)
        self.assertTrue(err.endswith("finance: 3 added, 0 replaced, 0 unchanged, 0 refused, 0 removed\n"), err)

        with open(os.path.join(d, "one.md"), "a") as f:
            f.write("Changed.\n")
        os.unlink(os.path.join(d, "deep/three.md"))
        with open(os.path.join(d, "deep/four.md"), "w") as f:
            f.write("Fourth zorbsync file.\n")

        rc, out, err = self.moactl("ingest", "--agent", "finance", "--sync", d, "--dry-run")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "add deep/four.md\nreplace one.md\nremove deep/three.md: file gone\n")
        self.assertEqual(err, "dry run: finance: would add 1, replace 1, remove 1; 1 unchanged, 0 refused\n")
        self.assertIn("deep/three.md", self.docs_json("finance"))

        rc, _, err = self.moactl("ingest", "--agent", "finance", "--sync", d)
        self.assertEqual(rc, 0, err)
        self.assertIn("deep/three.md: removed (file gone)\n", err)
        self.assertTrue(err.endswith("finance: 1 added, 1 replaced, 1 unchanged, 0 refused, 1 removed\n"), err)
        docs = self.docs_json("finance")
        self.assertNotIn("deep/three.md", docs)
        for t in ("one.md", "two.md", "deep/four.md", "outside.md"):
            self.assertIn(t, docs)

        # Done: nothing more to do. --base keeps the titles' root when a
        # subdirectory is synced (and removals stay inside it).
        rc, _, err = self.moactl("ingest", "--agent", "finance", "--sync", d)
        self.assertTrue(err.endswith("finance: 0 added, 0 replaced, 3 unchanged, 0 refused, 0 removed\n"), err)
        rc, out, err = self.moactl("ingest", "--agent", "finance", "--base", d, "--sync",
                                   os.path.join(d, "deep"), "--dry-run")
        self.assertEqual((rc, out), (0, ""), err)
        self.assertEqual(err, "dry run: finance: would add 0, replace 0, remove 0; 1 unchanged, 0 refused\n")

    def test_ingest_sample_knowledge_after_seeding(self):
        """moad seeds each agent with its sample directory; ingesting that
        directory with moactl titles the files the same way and finds them
        unchanged (same sha256), so each document is stored once. A base
        holding them also under an older title (the parent as base) is told
        so by ingest and cleaned by --sync."""
        sample = os.path.join(AGENTS_DIR, "knowledge", "legal")
        names = sorted(n for n in os.listdir(sample) if n.endswith(".md") and n != "README.md")
        self.assertGreater(len(names), 5)
        seeded = self.docs_json("legal")
        for n in names:
            self.assertIn(n, seeded)
            with open(os.path.join(sample, n), "rb") as f:
                self.assertEqual(seeded[n]["sha256"], hashlib.sha256(f.read()).hexdigest(), n)

        rc, _, err = self.moactl("ingest", "--agent", "legal", sample + "/")
        self.assertEqual(rc, 0, err)
        self.assertTrue(err.endswith("legal: 0 added, 0 replaced, %d unchanged, 0 refused\n" % len(names)), err)
        for i, n in enumerate(names):
            self.assertIn("[%d/%d] %s: unchanged\n" % (i + 1, len(names), n), err)
        rc, out, _ = self.moactl("docs", "--agent", "legal")
        self.assertEqual(rc, 0)
        titles = [l.split()[0] for l in out.splitlines()[1:]]
        for n in names:
            self.assertEqual(titles.count(n), 1, n)
        self.assertEqual(len(titles), len(set(titles)))

        # Both forms, as an older moactl left them: "legal/tenancy.md" too.
        rc, _, err = self.moactl("ingest", "--agent", "legal", "--base", os.path.dirname(sample), sample)
        self.assertTrue(err.endswith("legal: %d added, 0 replaced, 0 unchanged, 0 refused\n" % len(names)), err)
        rc, _, err = self.moactl("ingest", "--agent", "legal", sample)
        self.assertEqual(rc, 0, err)
        for n in names:
            self.assertIn("moactl: note: the documents legal/%s and %s hold the same file; 'moactl ingest "
                          "--sync DIR' keeps one title per file, 'moactl delete --agent legal TITLE' removes "
                          "one\n" % (n, n), err)
        rc, out, err = self.moactl("ingest", "--agent", "legal", "--sync", sample, "--dry-run")
        self.assertEqual((rc, out), (0, "".join("remove legal/%s: now titled %s\n" % (n, n) for n in names)), err)
        rc, _, err = self.moactl("ingest", "--agent", "legal", "--sync", sample)
        self.assertEqual(rc, 0, err)
        self.assertIn("legal/tenancy.md: removed (now titled tenancy.md)\n", err)
        self.assertTrue(err.endswith("legal: 0 added, 0 replaced, %d unchanged, 0 refused, %d removed\n" %
                                     (len(names), len(names))), err)
        docs = self.docs_json("legal")
        self.assertEqual(sorted(t for t in docs if t.endswith(".md")), sorted(t for t in seeded if t.endswith(".md")))

    def test_daemon_errors(self):
        rc, _, err = self.moactl("--model", "no-such-model", "ask", "hi")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 404", err)
        d = tempfile.mkdtemp(dir=self.dir)
        doc = os.path.join(d, "a.txt")
        with open(doc, "w") as f:
            f.write("text\n")
        rc, _, err = self.moactl("ingest", "--agent", "no-such-agent", doc)
        self.assertEqual(rc, 1)
        self.assertIn("moad returned HTTP 404: no agent named 'no-such-agent'", err)

    def test_access_rules_403(self):
        """A user who may connect but is not root or moad's own user may ask
        but not administer (access.admin unset): moactl shows the 403."""
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv to act as another user")
        os.chmod(self.dir, 0o755)
        os.chmod(self.sock, 0o666)
        env = dict(os.environ, MOAD_SOCKET=self.sock, ASAN_OPTIONS="exitcode=86:detect_leaks=1")
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", reachable(MOACTL)]
        p = subprocess.run(nobody + ["models"], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(nobody + ["reload"], capture_output=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"moad returned HTTP 403", p.stderr)
        self.assertIn(b"need root or access.admin", p.stderr)

    def test_reload(self):
        rc, out, err = self.moactl("reload")
        self.assertEqual((rc, out), (0, "moad: configuration reloaded\n"), err)
        self.assertEqual(self.moactl("health")[0], 0)

    def test_zz_stop(self):
        """Runs last (name order): moad drains on SIGTERM, exits 0 without
        sanitizer reports, removes its socket; then moactl says it is not
        running."""
        self.moad.send_signal(signal.SIGTERM)
        self.assertEqual(self.moad.wait(timeout=60), 0, self.daemon_log())
        log = self.daemon_log()
        for m in SANITIZER_MARKERS:
            self.assertNotIn(m, log)
        self.assertFalse(os.path.exists(self.sock))
        rc, _, err = self.moactl("health")
        self.assertEqual(rc, 3)
        self.assertIn("moad is not running (no socket at %s)" % self.sock, err)


if __name__ == "__main__":
    MOACTL, MOAD, AGENTS_DIR = (os.path.abspath(a) for a in sys.argv[1:4])
    del sys.argv[1:4]
    unittest.main(verbosity=2)
