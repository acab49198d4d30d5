/* test-doc-text.c — Check suite for the helpers behind "moactl ingest":
 * SHA-256 (FIPS 180-2 vectors), gzip decompression and its bound,
 * encoding detection and conversion (UTF-8, UTF-16 with BOM, Latin-1,
 * binary refused), HTML text extraction, doc_text()'s refusals, the
 * PDF converter's failures and its cancel (fake pdftotext scripts), and
 * titles: common parent, relative paths, --include/--exclude, walks. */
#include <check.h>

#include "check-main.h"
#include <pthread.h>
#include <sys/stat.h>
#include <zlib.h>

#include "doc-text.h"
#include "ingest-files.h"
#include "sha256.h"
#include "util.h"

START_TEST(test_sha256) {
        char h[65];
        Sha256 c;

        sha256_hex("", 0, h);
        ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        sha256_hex("abc", 3, h);
        ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
        ck_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        /* a million 'a's, fed in uneven pieces */
        sha256_init(&c);
        for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 997 + 1) {
                static const char a[1000] = {[0 ... 999] = 'a'};
                step = MIN(step, 1000000 - done);
                sha256_update(&c, a, step);
        }
        sha256_final_hex(&c, h);
        ck_assert_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

static void gzip_bytes(const char *s, size_t n, char **ret, size_t *ret_len) {
        z_stream z = {};
        size_t cap = n + 128;
        char *out = malloc(cap);

        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = (Bytef *) s;
        z.avail_in = (uInt) n;
        z.next_out = (Bytef *) out;
        z.avail_out = (uInt) cap;
        ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
        *ret_len = cap - z.avail_out;
        deflateEnd(&z);
        *ret = out;
}

START_TEST(test_gunzip) {
        _cleanup_free_ char *gz = NULL, *two = NULL, *out = NULL, *zeros = NULL, *bomb = NULL;
        size_t gzlen, len, bomblen;

        gzip_bytes("hello quokka\n", 13, &gz, &gzlen);
        ck_assert_int_eq(text_gunzip(gz, gzlen, 100, &out, &len), 0);
        ck_assert_uint_eq(len, 13);
        ck_assert_str_eq(out, "hello quokka\n");
        out = mfree(out);

        /* two members, as "gzip -c a >> f; gzip -c b >> f" makes */
        two = malloc(2 * gzlen);
        memcpy(two, gz, gzlen);
        memcpy(two + gzlen, gz, gzlen);
        ck_assert_int_eq(text_gunzip(two, 2 * gzlen, 100, &out, &len), 0);
        ck_assert_str_eq(out, "hello quokka\nhello quokka\n");
        out = mfree(out);

        /* truncated, corrupt, over the bound */
        ck_assert_int_eq(text_gunzip(gz, gzlen - 4, 100, &out, &len), -EBADMSG);
        gz[gzlen / 2] ^= 0x55;
        ck_assert_int_lt(text_gunzip(gz, gzlen, 100, &out, &len), 0);
        ck_assert_int_eq(text_gunzip("not gzip", 8, 100, &out, &len), -EBADMSG);
        zeros = calloc(1, 1 << 20);
        gzip_bytes(zeros, 1 << 20, &bomb, &bomblen);
        ck_assert_uint_lt(bomblen, 4096);
        ck_assert_int_eq(text_gunzip(bomb, bomblen, 65536, &out, &len), -EFBIG);
        ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_encodings) {
        _cleanup_free_ char *out = NULL;
        const char *enc = NULL;
        size_t len;

        ck_assert_int_eq(text_to_utf8("caf\xc3\xa9", 5, &out, &len, &enc), 0);
        ck_assert_str_eq(out, "café");
        ck_assert_str_eq(enc, "UTF-8");
        out = mfree(out);
        ck_assert_int_eq(text_to_utf8("\xef\xbb\xbfhi", 5, &out, &len, &enc), 0);
        ck_assert_str_eq(out, "hi");
        out = mfree(out);

        /* Latin-1 (read as Windows-1252: 0x80 is the euro sign) */
        ck_assert_int_eq(text_to_utf8("caf\xe9 cr\xe8me \x80", 12, &out, &len, &enc), 0);
        ck_assert_str_eq(out, "café crème €");
        ck_assert_str_eq(enc, "Latin-1");
        out = mfree(out);
        /* 0x81 is not Windows-1252: Latin-1 proper */
        ck_assert_int_eq(text_to_utf8("a\x81\xe9", 3, &out, &len, &enc), 0);
        ck_assert_str_eq(out, "a\xc2\x81\xc3\xa9");
        out = mfree(out);

        /* UTF-16 both ways, with a character outside the BMP */
        ck_assert_int_eq(text_to_utf8("\xff\xfeh\0\xe9\0=\xd8\x00\xde", 10, &out, &len, &enc), 0);
        ck_assert_str_eq(out, "hé😀");
        ck_assert_str_eq(enc, "UTF-16LE");
        out = mfree(out);
        ck_assert_int_eq(text_to_utf8("\xfe\xff\0h\0i", 6, &out, &len, &enc), 0);
        ck_assert_str_eq(out, "hi");
        ck_assert_str_eq(enc, "UTF-16BE");
        out = mfree(out);
        ck_assert_int_eq(text_to_utf8("\xff\xfeh\0i", 5, &out, &len, &enc), -EILSEQ);
        ck_assert_int_eq(text_to_utf8("\xff\xfe\x00\xd8h\0", 6, &out, &len, &enc),
                         -EILSEQ); /* lone surrogate */

        /* binary: NUL bytes without a BOM, or many control characters */
        ck_assert_int_eq(text_to_utf8("a\0b", 3, &out, &len, &enc), -EMEDIUMTYPE);
        ck_assert_int_eq(text_to_utf8("ab\x01\x02\x03\x04", 6, &out, &len, &enc), -EMEDIUMTYPE);
        ck_assert_int_eq(text_to_utf8("tab\tand\r\nescape\x1b[0m form\f", 25, &out, &len, &enc), 0);
        ck_assert_ptr_nonnull(out);
}
END_TEST

static void assert_html(const char *html, const char *want) {
        _cleanup_free_ char *out = NULL;
        size_t len;

        ck_assert_int_eq(html_to_text(html, strlen(html), &out, &len), 0);
        ck_assert_uint_eq(len, strlen(out));
        ck_assert_msg(streq(out, want), "html_to_text(%s) = \"%s\", want \"%s\"", html, out, want);
}

START_TEST(test_html) {
        assert_html("<!DOCTYPE html><html><head><title>Lease</title><style>p { color: red }</style>"
                    "<script>var x = \"<p>no</p>\";</script></head><body><h1>Deposits</h1>"
                    "<p>Return it in <b>14</b>&nbsp;days &amp; no &lt;excuses&gt;.</p><!-- hidden -->"
                    "<h2>Caf&eacute; &#233;&#xE9; &unknown; &#0;</h2><ul><li>one</li><li>two</li></ul>"
                    "</body></html>",
                    "Lease\n\n# Deposits\n\nReturn it in 14 days & no <excuses>.\n\n## Café éé &unknown; "
                    "\xef\xbf\xbd\n\n"
                    "one\ntwo");
        assert_html("a  <span>b</span>\n\n  c", "a b c");
        assert_html("x < y and <3", "x < y and <3");
        assert_html("<script>never closed", "");
        assert_html("<svg/>after", "after");
        assert_html("<!-- unterminated", "");
        assert_html("<p", "");
        assert_html("", "");

        /* worst-case growth stays within the documented bound */
        char big[4 * 1000 + 1] = "";
        for (int i = 0; i < 1000; i++)
                strcat(big, "<h6>");
        _cleanup_free_ char *out = NULL;
        size_t len;
        ck_assert_int_eq(html_to_text(big, strlen(big), &out, &len), 0);
        ck_assert_uint_le(len, 3 * strlen(big) + 16);

        ck_assert(looks_like_html("a/b.HTM", "", 0));
        ck_assert(looks_like_html(NULL, "  <!doctype HTML>", 17));
        ck_assert(looks_like_html(NULL, "<html lang=en>", 14));
        ck_assert(!looks_like_html("notes.txt", "a <html> tag", 12));
}
END_TEST

START_TEST(test_doc_text_refusals) {
        _cleanup_free_ char *out = NULL, *gz = NULL;
        char why[256], fmt[64];
        size_t len, gzlen;

        ck_assert_int_eq(doc_text("p.png", "\x89PNG\r\n\x1a\n", 8, 1000, NULL, &out, &len, fmt, sizeof fmt,
                                  why, sizeof why),
                         -EMEDIUMTYPE);
        ck_assert_str_eq(why, "not text (a PNG image)");
        ck_assert_int_eq(
                doc_text("b.dat", "x\0y", 3, 1000, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                -EMEDIUMTYPE);
        ck_assert_str_eq(why, "not text (binary data)");
        ck_assert_int_eq(
                doc_text("e.txt", " \n\t", 3, 1000, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                -ENODATA);
        ck_assert_int_eq(
                doc_text("big.txt", "abcdef", 6, 5, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                -EFBIG);
        ck_assert_int_eq(
                doc_text("c.gz", "\x1f\x8bxx", 4, 100, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                -EBADMSG);
        ck_assert_str_eq(why, "corrupt gzip data");

        /* gzip'd Latin-1 HTML: all three steps, said in the format */
        gzip_bytes("<p>caf\xe9</p>", 11, &gz, &gzlen);
        ck_assert_int_eq(
                doc_text("x.html.gz", gz, gzlen, 1000, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                0);
        ck_assert_str_eq(out, "café");
        ck_assert_str_eq(fmt, "gzip, Latin-1, HTML");
        out = mfree(out);
        ck_assert_int_eq(
                doc_text("plain.md", "# hi", 4, 1000, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                0);
        ck_assert_str_eq(fmt, "");
}
END_TEST

START_TEST(test_pdf_without_pdftotext) {
        _cleanup_free_ char *out = NULL;
        char why[256], fmt[64];
        size_t len;

        ck_assert_int_eq(setenv("PATH", "/nonexistent", 1), 0);
        ck_assert_int_eq(text_from_pdf("%PDF-1.4", 8, NULL, 1024, &out, &len), -ENOPKG);
        ck_assert_ptr_null(out);
        ck_assert_int_eq(
                doc_text("a.pdf", "%PDF-1.4", 8, 1024, NULL, &out, &len, fmt, sizeof fmt, why, sizeof why),
                -ENOPKG);
        ck_assert_str_eq(why, "cannot read PDF files: pdftotext not found (install poppler-utils)");
}
END_TEST

static void rm_rf(const char *dir) {
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

/* A directory holding an executable "pdftotext" with the shell @body, put
 * first in PATH; the directory's path is returned (static, valid until
 * the next call; each test runs in its own process, CK_FORK=yes). */
static const char *fake_pdftotext(const char *body) {
        static char dir[64];
        char p[512], path[1024];
        FILE *f;

        snprintf(dir, sizeof dir, "/tmp/test-doc-text-pdf-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(p, sizeof p, "%s/pdftotext", dir);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "#!/bin/sh\n%s\n", body);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(chmod(p, 0755), 0);
        snprintf(path, sizeof path, "%s:/usr/bin:/bin", dir);
        ck_assert_int_eq(setenv("PATH", path, 1), 0);
        return dir;
}

START_TEST(test_pdf_stdin_and_failure) {
        _cleanup_free_ char *out = NULL;
        const char *fake_dir;
        char why[256], fmt[64];
        size_t len;

        /* The converter gets the bytes on stdin (it echoes them back) and "-" "-" as file names. */
        fake_dir = fake_pdftotext("[ \"$4 $5\" = \"- -\" ] || exit 3\nexec cat");
        ck_assert_int_eq(doc_text("in.pdf", "%PDF-1.4 hello quokka", 21, 1024, NULL, &out, &len, fmt,
                                  sizeof fmt, why, sizeof why),
                         0);
        ck_assert_str_eq(out, "%PDF-1.4 hello quokka");
        ck_assert_str_eq(fmt, "PDF");
        out = mfree(out);
        rm_rf(fake_dir);
        fake_dir = fake_pdftotext("exit 1");
        ck_assert_int_eq(doc_text("bad.pdf", "%PDF-1.4 broken", 15, 1024, NULL, &out, &len, fmt, sizeof fmt,
                                  why, sizeof why),
                         -EBADMSG);
        ck_assert_str_eq(why, "not a readable PDF (pdftotext could not extract text)");
        rm_rf(fake_dir);
}
END_TEST

typedef struct Canceller {
        const char *pidfile;
        int fd;
} Canceller;

/* Waits for the converter's child to say its pid, then cancels. */
static void *cancel_when_started(void *arg) {
        Canceller *c = arg;

        while (access(c->pidfile, F_OK) < 0)
                usleep(10000);
        ck_assert_int_eq(write(c->fd, "x", 1), 1);
        return NULL;
}

START_TEST(test_pdf_cancel) {
        _cleanup_free_ char *out = NULL;
        char pidfile[600], why[256], fmt[64], buf[32] = "";
        ConvertLimits lim = CONVERT_LIMITS_DEFAULT;
        const char *dir;
        Canceller c;
        pthread_t t;
        size_t len;
        int p[2];
        FILE *f;

        /* Sleeps far beyond the wall clock: only the cancel can end it in time. */
        dir = fake_pdftotext("sleep 600 &\necho $! > \"$MOA_PIDFILE.tmp\"\nmv \"$MOA_PIDFILE.tmp\" "
                             "\"$MOA_PIDFILE\"\nwait");
        snprintf(pidfile, sizeof pidfile, "%s/child.pid", dir);
        ck_assert_int_eq(setenv("MOA_PIDFILE", pidfile, 1), 0);
        ck_assert_int_eq(pipe(p), 0);
        lim.cancel_fd = p[0];
        c = (Canceller){.pidfile = pidfile, .fd = p[1]};
        ck_assert_int_eq(pthread_create(&t, NULL, cancel_when_started, &c), 0);
        ck_assert_int_eq(doc_text("slow.pdf", "%PDF-1.4", 8, 1024, &lim, &out, &len, fmt, sizeof fmt, why,
                                  sizeof why),
                         -ECANCELED);
        ck_assert_str_eq(why, "cancelled while pdftotext ran");
        ck_assert_int_eq(pthread_join(t, NULL), 0);

        /* The converter's own child died with its group (gone, or a zombie no one reaps). */
        f = fopen(pidfile, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
        fclose(f);
        for (int i = 0; i < 500; i++) {
                char stat[64], line[512] = "", *rp;
                FILE *sf;

                snprintf(stat, sizeof stat, "/proc/%d/stat", atoi(buf));
                sf = fopen(stat, "r");
                if (!sf)
                        break;
                rp = fgets(line, sizeof line, sf) ? strrchr(line, ')') : NULL;
                fclose(sf);
                if (rp && rp[1] == ' ' && rp[2] == 'Z')
                        break;
                ck_assert_msg(i < 499, "the converter's child %s outlived its cancel", buf);
                usleep(10000);
        }
        close(p[0]);
        close(p[1]);
        rm_rf(dir);
}
END_TEST

START_TEST(test_titles) {
        _cleanup_free_ char *p = NULL;
        const char *a[] = {"/srv/doc/a/copyright", "/srv/doc/b/c/copyright", "/srv/doc/ab/x"};
        const char *b[] = {"/srv/doc"};
        const char *c[] = {"/a", "/b"};
        const char *d[] = {"/srv/docs/x", "/srv/doc/y"};

        ck_assert_int_eq(path_common_parent(a, 3, &p), 0);
        ck_assert_str_eq(p, "/srv/doc");
        p = mfree(p);
        ck_assert_int_eq(path_common_parent(b, 1, &p), 0);
        ck_assert_str_eq(p, "/srv");
        p = mfree(p);
        ck_assert_int_eq(path_common_parent(c, 2, &p), 0);
        ck_assert_str_eq(p, "/");
        p = mfree(p);
        ck_assert_int_eq(path_common_parent(d, 2, &p), 0); /* "doc" is no prefix of "docs" */
        ck_assert_str_eq(p, "/srv");
        p = mfree(p);
        ck_assert_int_eq(path_common_parent(a, 0, &p), -EINVAL);

        ck_assert_int_eq(path_relative("/srv/doc", "/srv/doc/a/copyright", &p), 0);
        ck_assert_str_eq(p, "a/copyright");
        p = mfree(p);
        ck_assert_int_eq(path_relative("/", "/etc/x", &p), 0);
        ck_assert_str_eq(p, "etc/x");
        p = mfree(p);
        ck_assert_int_eq(path_relative("/srv/doc", "/srv/docs/x", &p), -EXDEV);
        ck_assert_int_eq(path_relative("/srv/doc", "/srv/doc", &p), -EXDEV);
        ck_assert_int_eq(path_relative("/srv/doc", "/srv", &p), -EXDEV);

        const char *inc[] = {"*.md", "copyright"}, *exc[] = {"b/*", "*draft*"};
        IngestFilter none = {}, f = {.include = inc, .n_include = 2, .exclude = exc, .n_exclude = 2};
        ck_assert(ingest_filter_match(&none, "anything", NULL));
        ck_assert(ingest_filter_match(&f, "a/x/copyright", NULL));
        ck_assert(ingest_filter_match(&f, "copyright", NULL));
        ck_assert(ingest_filter_match(&f, "deep/er/notes.md", NULL));
        ck_assert(!ingest_filter_match(&f, "a/notes.txt", NULL));
        ck_assert(!ingest_filter_match(&f, "b/copyright", NULL));
        ck_assert(!ingest_filter_match(&f, "a/draft-1.md", NULL));
        ck_assert(!ingest_filter_match(&f, "a/copyright.bak", NULL));
        /* also by the path below the directory argument */
        ck_assert(!ingest_filter_match(&f, "kb/b/copyright", "b/copyright"));
        ck_assert(ingest_filter_match(&f, "kb/b/copyright", NULL));
}
END_TEST

static void touch(const char *dir, const char *rel) {
        char p[512];
        FILE *f;

        snprintf(p, sizeof p, "%s/%s", dir, rel);
        f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs("text\n", f);
        fclose(f);
}

START_TEST(test_walk) {
        char dir[] = "/tmp/test-doc-text-XXXXXX", p[512];
        _cleanup_(ingest_files_done) IngestFiles files = {};
        const char *exc[] = {"*.bak"};
        IngestFilter f = {.exclude = exc, .n_exclude = 1};

        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(p, sizeof p, "%s/b", dir);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        snprintf(p, sizeof p, "%s/a", dir);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        snprintf(p, sizeof p, "%s/.git", dir);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        touch(dir, "a/copyright");
        touch(dir, "b/copyright");
        touch(dir, "b/old.bak");
        touch(dir, ".git/config");
        touch(dir, "top.md");
        snprintf(p, sizeof p, "%s/loop", dir);
        ck_assert_int_eq(symlink(dir, p), 0); /* a link to a directory: not followed */
        snprintf(p, sizeof p, "%s/top-alias.md", dir);
        ck_assert_int_eq(symlink("top.md", p), 0); /* another name of top.md: skipped */
        snprintf(p, sizeof p, "%s/old-alias.md", dir);
        ck_assert_int_eq(symlink("b/old.bak", p), 0); /* its target is excluded: taken */
        char outside[] = "/tmp/test-doc-text-outside-XXXXXX";
        int ofd = mkstemp(outside);
        ck_assert_int_ge(ofd, 0);
        close(ofd);
        snprintf(p, sizeof p, "%s/hostname", dir);
        ck_assert_int_eq(symlink(outside, p), 0); /* a file outside the tree: taken */

        ck_assert_int_eq(ingest_files_add(&files, dir, dir, NULL, &f), 0);
        ck_assert_uint_eq(files.n, 5);
        ck_assert_str_eq(files.files[0].title, "a/copyright");
        ck_assert_str_eq(files.files[1].title, "b/copyright");
        ck_assert_str_eq(files.files[2].title, "hostname");
        ck_assert_str_eq(files.files[3].title, "old-alias.md");
        ck_assert_str_eq(files.files[4].title, "top.md");
        ck_assert_uint_eq(files.n_links, 1);
        ck_assert(!ingest_files_seen(&files, "top-alias.md"));
        ck_assert(ingest_files_seen(&files, "b/old.bak")); /* excluded, but there */
        ck_assert(!ingest_files_seen(&files, "b/gone.md"));
        ck_assert(!ingest_files_seen(&files, ".git/config"));

        /* the same file again, and inside its directory: refused once each */
        snprintf(p, sizeof p, "%s/top.md", dir);
        ck_assert_int_eq(ingest_files_add(&files, p, dir, NULL, &f), 0);
        ck_assert_int_eq(ingest_files_add(&files, dir, dir, NULL, &f), 0);
        ck_assert_uint_eq(files.n, 11);
        ck_assert_int_eq(ingest_files_dedup(&files), 0);
        for (size_t i = 0; i < files.n; i++)
                ck_assert_msg((files.files[i].error != NULL) == (i >= 5), "file %zu: %s", i,
                              files.files[i].error ?: "ok");

        /* a file outside the base: refused on its own, with the reason */
        ingest_files_done(&files);
        snprintf(p, sizeof p, "%s/a", dir);
        ck_assert_int_eq(ingest_files_add(&files, "/etc/hostname", p, NULL, &f) == 0 ||
                                 ingest_files_add(&files, "/etc/passwd", p, NULL, &f) == 0,
                         1);
        ck_assert_ptr_null(files.files[0].title);
        ck_assert_str_eq(files.files[0].error, "not below the base directory (--base)");
        ck_assert_int_eq(ingest_files_add(&files, "/nonexistent/x", p, NULL, &f), -ENOENT);

        unlink(outside);
        snprintf(p, sizeof p, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(p), 0);
}
END_TEST

static Suite *doc_text_suite(void) {
        Suite *s = suite_create("doc-text");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_sha256);
        tcase_add_test(tc, test_gunzip);
        tcase_add_test(tc, test_encodings);
        tcase_add_test(tc, test_html);
        tcase_add_test(tc, test_doc_text_refusals);
        tcase_add_test(tc, test_pdf_without_pdftotext);
        tcase_add_test(tc, test_pdf_stdin_and_failure);
        tcase_add_test(tc, test_pdf_cancel);
        tcase_add_test(tc, test_titles);
        tcase_add_test(tc, test_walk);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(doc_text_suite());
}
