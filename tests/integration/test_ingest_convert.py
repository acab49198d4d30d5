"""Server-side ingest jobs convert documents as moactl does, with its code
(common/doc-text.c): a tree holding a .gz, a Latin-1 file, a UTF-16 file
with a BOM, an HTML page, a corrupt PDF, binary data and an empty file is
synced by moad (POST /v1/moa/ingest-jobs through "moactl ingest --sync DIR
--server"), and the same tree by moactl itself into another agent: the
same files are added with the same conversions and the same files refused
with the same reasons; the converted text is then found through the chat
API (moa.citations quote it). A real PDF (generated here) needs
pdftotext: without it that test is SKIPPED loudly (a failure under
CI=true). A fake pdftotext that hangs is killed by cancelling the job, and
by stopping moad."""
import gzip
import json
import os
import re
import shutil
import time
import unittest

from moadtest import Daemon, cannot_run
from test_jobs import IngestJobsFixture

CORRUPT_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> this is not a PDF at all\n"


def make_pdf(text):
    """A minimal one-page PDF (Helvetica, one line of @text), xref right."""
    stream = b"BT /F1 12 Tf 72 720 Td (" + text.encode("ascii") + b") Tj ET"
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def pid_gone(pid):
    """Whether @pid has exited (gone, or a zombie nobody reaps here)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class IngestConvert(IngestJobsFixture, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.docs_dir = os.path.join(self.root, "docs")

    def put(self, rel, data):
        return self.write(os.path.join("docs", rel), data)

    def sync_on_server(self, agent="finance"):
        """Runs the server job through moactl; returns its exit code, its
        stderr and {title: (outcome, detail)} from moad's log, which names
        every refusal's reason and every conversion done (plain UTF-8
        files, added as they are, are not logged)."""
        rc, _, err = self.moactl("ingest", "--agent", agent, "--sync", self.docs_dir, "--server")
        m = re.search(r"ingest job (ingest_[0-9a-f]{24}) submitted", err)
        self.assertTrue(m, err)
        job_id = m.group(1)
        # moactl returns when the job has ended; the log holds each file's reason.
        self.assertEqual(self.job(job_id)["status"], "completed", err)
        seen = {}
        for outcome, title, detail in re.findall(r"ingest job %s: (added|refused|failed) (.+?): (.*)" % job_id,
                                                 self.d.read_log()):
            seen[title] = (outcome, detail)
        return rc, err, seen

    def ingest_on_client(self, agent="legal"):
        """moactl converts the same tree itself; returns its exit code, its
        stderr and {title: (outcome, detail)} as sync_on_server() does."""
        rc, _, err = self.moactl("ingest", "--agent", agent, self.docs_dir)
        seen = {}
        for title, rest in re.findall(r"(?m)^\[\d+/\d+\] (.+?): (.*)$", err):
            m = re.match(r"refused: (.*)$", rest) or re.match(r"added \(\d+ chunks?(?:; (.*))?\)$", rest)
            self.assertTrue(m, rest)
            seen[title] = ("refused" if rest.startswith("refused") else "added", m.group(1) or "")
        return rc, err, {t: v for t, v in seen.items() if v != ("added", "")}

    def cited(self, agent, title, question):
        """The quotes moa.citations gives from document @title for @question."""
        st, _, data = self.d.chat(question, model=agent, moa={"doc_filter": [title]})
        self.assertEqual(st, 200, data)
        cites = json.loads(data)["moa"].get("citations") or []
        return [c["quote"] for c in cites if c["document"] == title]

    def test_formats_like_moactl(self):
        self.put("notes.txt.gz", gzip.compress(b"The zorbgzip fee is nine lanterns per month.\n"))
        self.put("latin.txt", "Le tarif zorblatin est de neuf lanternes, café compris.\n".encode("latin-1"))
        self.put("utf16.txt", "The zorbutf fee is ten lanterns, a naïve price.\n".encode("utf-16"))
        with open(os.path.join(self.docs_dir, "utf16.txt"), "rb") as f:
            self.assertIn(f.read(2), (b"\xff\xfe", b"\xfe\xff"))  # the BOM
        self.put("page.html", b"<!doctype html><html><head><title>Fees</title><style>.zorbstyle{}</style>"
                                b"</head><body><h1>Zorbhtml fees</h1><p>The zorbhtml fee is eleven lanterns "
                                b"&amp; one candle.</p><script>zorbscript()</script></body></html>")
        self.put("broken.pdf", CORRUPT_PDF)
        self.put("blob.bin", b"bin\0ary")
        self.put("empty.md", b"")
        self.d = Daemon(config=self.config)

        rc, err, server = self.sync_on_server()
        self.assertEqual(rc, 1, err)  # files were refused
        self.assertTrue(err.endswith("finance: 4 added, 0 replaced, 0 unchanged, 3 refused, 0 removed\n"), err)
        self.assertEqual(server["notes.txt.gz"], ("added", "gzip"))
        self.assertEqual(server["latin.txt"], ("added", "Latin-1"))
        self.assertIn(server["utf16.txt"], (("added", "UTF-16LE"), ("added", "UTF-16BE")))
        self.assertEqual(server["page.html"], ("added", "HTML"))
        self.assertEqual(server["blob.bin"], ("refused", "not text (binary data)"))
        self.assertEqual(server["empty.md"], ("refused", "no text in it"))
        self.assertEqual(server["broken.pdf"][0], "refused")
        self.assertIn(server["broken.pdf"][1],
                      ("not a readable PDF (pdftotext could not extract text)",
                       "cannot read PDF files: pdftotext not found (install poppler-utils)"))

        # moactl, converting on the client, takes and refuses the same files for the same reasons.
        rc, err, client = self.ingest_on_client()
        self.assertEqual(rc, 1, err)
        self.assertEqual(client, server)

        # The converted text is what the knowledge search finds.
        for title, question, words in (
                ("notes.txt.gz", "What is the zorbgzip fee?", ("zorbgzip", "nine lanterns")),
                ("latin.txt", "Quel est le tarif zorblatin?", ("zorblatin", "café")),
                ("utf16.txt", "What is the zorbutf fee?", ("zorbutf", "naïve")),
                ("page.html", "What is the zorbhtml fee?", ("zorbhtml fee is eleven lanterns & one candle",))):
            quotes = self.cited("finance", title, question)
            self.assertTrue(quotes, title)
            for w in words:
                self.assertTrue(any(w in q for q in quotes), (title, w, quotes))
            for q in quotes:
                self.assertNotIn("<", q)
                self.assertNotIn("zorbscript", q)
                self.assertNotIn("\ufffd", q)

    def test_pdf(self):
        if not shutil.which("pdftotext"):
            cannot_run("pdftotext (poppler-utils) is not installed: moad cannot convert PDF files")
        self.put("lease.pdf", make_pdf("The zorbpdf deposit is twelve lanterns."))
        self.put("broken.pdf", CORRUPT_PDF)
        self.put("plain.md", b"The zorbplain fee is one lantern.\n")
        self.d = Daemon(config=self.config)
        rc, err, server = self.sync_on_server()
        self.assertEqual(rc, 1, err)
        self.assertTrue(err.endswith("finance: 2 added, 0 replaced, 0 unchanged, 1 refused, 0 removed\n"), err)
        self.assertEqual(server["lease.pdf"], ("added", "PDF"))
        self.assertEqual(server["broken.pdf"], ("refused", "not a readable PDF (pdftotext could not extract text)"))
        quotes = self.cited("finance", "lease.pdf", "What is the zorbpdf deposit?")
        self.assertTrue(any("zorbpdf deposit is twelve lanterns" in q for q in quotes), quotes)
        rc, err, client = self.ingest_on_client()
        self.assertEqual(rc, 1, err)
        self.assertIn("] plain.md: added (1 chunk)\n", err)
        self.assertEqual(client, server)

    def test_pdf_without_pdftotext(self):
        """moad's PATH holds no pdftotext: the PDF is refused saying so, the rest goes on."""
        self.put("lease.pdf", make_pdf("The zorbpdf deposit is twelve lanterns."))
        self.put("plain.md", b"The zorbplain fee is one lantern.\n")
        self.d = Daemon(config=self.config, env={"PATH": "/nonexistent-moad-test"})
        rc, err, server = self.sync_on_server()
        self.assertEqual(rc, 1, err)
        self.assertEqual(server, {"lease.pdf": ("refused", "cannot read PDF files: pdftotext not found "
                                                           "(install poppler-utils)")})
        self.assertTrue(err.endswith("finance: 1 added, 0 replaced, 0 unchanged, 1 refused, 0 removed\n"), err)

    def hanging_converter(self):
        """A fake pdftotext first in moad's PATH that records its child's pid
        and sleeps far beyond the 30 s wall clock; returns (env, pidfile)."""
        bindir = os.path.join(self.top, "bin")
        os.mkdir(bindir)
        pidfile = os.path.join(self.top, "converter.pid")
        with open(os.path.join(bindir, "pdftotext"), "w") as f:
            f.write("#!/bin/sh\nsleep 600 &\necho $! > %s.tmp\nmv %s.tmp %s\nwait\n" % (pidfile, pidfile, pidfile))
        os.chmod(os.path.join(bindir, "pdftotext"), 0o755)
        return {"PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")}, pidfile

    def start_hanging_job(self):
        env, pidfile = self.hanging_converter()
        self.put("a.md", b"The zorbfirst fee is one lantern.\n")
        self.put("b.pdf", make_pdf("never read"))
        self.put("c.md", b"The zorblast fee is two lanterns.\n")
        self.d = Daemon(config=self.config, env=env)
        st, _, j = self.d.json("POST", "/v1/moa/ingest-jobs", {"agent": "finance", "path": self.docs_dir})
        self.assertEqual(st, 200, j)
        end = time.time() + 120
        while not os.path.exists(pidfile):
            self.assertLess(time.time(), end, "the converter never started:\n" + self.d.read_log()[-3000:])
            time.sleep(0.05)
        with open(pidfile) as f:
            pid = int(f.read())
        # The conversion runs on the jobs worker: the loop still answers.
        st, _, h = self.d.json("GET", "/healthz")
        self.assertEqual((st, h), (200, {"status": "ok"}))
        self.assertEqual(self.job(j["id"])["status"], "in_progress")
        return j["id"], pid

    def wait_gone(self, pid, what):
        # It sleeps 600 s, and the converter's wall clock is 30 s: gone within
        # 20 s means @what killed it (a kill is at once; the margin is for a
        # busy machine).
        end = time.time() + 20
        while not pid_gone(pid):
            self.assertLess(time.time(), end, "the converter's child %d outlived %s" % (pid, what))
            time.sleep(0.05)

    def test_cancel_kills_converter(self):
        job_id, pid = self.start_hanging_job()
        st, _, c = self.d.json("POST", "/v1/moa/ingest-jobs/%s/cancel" % job_id)
        self.assertEqual(st, 200, c)
        self.assertEqual(c["status"], "cancelled")
        self.wait_gone(pid, "the cancel")
        j = self.wait_job(job_id, lambda x: x["status"] == "cancelled")
        # a.md was done; the PDF being converted is not recorded; c.md never started.
        self.assertEqual(j["counts"], {"added": 1, "replaced": 0, "unchanged": 0, "removed": 0, "refused": 0,
                                       "failed": 0})
        st, _, r = self.d.json("GET", "/v1/moa/agents/finance/documents")
        titles = {d["title"] for d in r["documents"]}
        self.assertIn("a.md", titles)
        self.assertNotIn("b.pdf", titles)
        self.assertNotIn("c.md", titles)
        self.assertNotIn("b.pdf", self.d.read_log().split("ingest job %s cancelled" % job_id)[1])

    def test_stop_kills_converter(self):
        """moad stopping kills a running pdftotext instead of waiting out its
        30 s wall clock (stop is given 15 s), and the job is left unfinished."""
        job_id, pid = self.start_hanging_job()
        d, self.d = self.d, None
        state = d.state
        keep = os.path.join(self.top, "state")
        try:
            rc = d.stop(timeout=15)
            self.assertEqual(rc, 0, d.read_log()[-3000:])
            log = d.read_log()
            self.assertNotIn("AddressSanitizer", log)
            self.assertNotIn("runtime error:", log)
            self.wait_gone(pid, "moad's stop")
            shutil.copytree(state, keep)
        finally:
            d.log.close()
            shutil.rmtree(d.dir, ignore_errors=True)
        # Restarted without the hanging converter: the job goes on and ends.
        self.d = Daemon(config=self.config, args=("--state-dir", keep), env={"PATH": "/nonexistent-moad-test"})
        j = self.wait_job(job_id, lambda x: x["status"] in ("completed", "failed", "cancelled"))
        self.assertEqual(j["status"], "completed", j)
        self.assertEqual(j["counts"]["refused"], 1)  # b.pdf: no pdftotext now
        self.assertEqual(j["counts"]["added"], 2)


if __name__ == "__main__":
    unittest.main()
