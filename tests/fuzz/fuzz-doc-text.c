/* fuzz-doc-text.c — fuzz target for the document converters moactl and
 * moad share (common/doc-text.c): gzip, encoding detection and conversion (UTF-8 with
 * or without BOM, UTF-16 with a BOM, Windows-1252/Latin-1), HTML to text,
 * and doc_text()'s refusals. The first input byte picks the file name the
 * input arrives under (.txt, .html, .gz, .txt.gz, .pdf, none), the text
 * bound, and whether the rest is first gzip-compressed here, so that the
 * converters behind gunzip see arbitrary bytes too. A ".pdf" name or
 * "%PDF-" content reaches text_from_pdf() with PATH pointing nowhere: its
 * refusal path, never a pdftotext process.
 *
 * Properties, beyond "no crash, no leak": what is accepted is NUL-terminated
 * strict UTF-8 within the bound and not blank; every refusal has a reason
 * and one of the documented codes; html_to_text() keeps valid UTF-8 valid
 * and stays within 3 * len + 16 bytes; text_gunzip() never exceeds its
 * bound. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "doc-text.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (512u * 1024u)

/* Only the names count (their suffixes); nothing is opened. */
static const char *const names[] = {
        "/nonexistent-moad-fuzz/doc.txt", "/nonexistent-moad-fuzz/doc.html",
        "/nonexistent-moad-fuzz/doc.gz",  "/nonexistent-moad-fuzz/doc.txt.gz",
        "/nonexistent-moad-fuzz/doc.pdf", "/nonexistent-moad-fuzz/doc",
        "/nonexistent-moad-fuzz/DOC.HTM", "/nonexistent-moad-fuzz/doc.xhtml.gz",
};

static void check(int ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "invariant violated: %s\n", what);
                abort();
        }
}

/* @data gzip-compressed into a malloc'ed buffer, or NULL. */
static char *gzip_bytes(const uint8_t *data, size_t size, size_t *ret_len) {
        z_stream z = {};
        size_t cap = size + size / 100 + 64;
        char *out = malloc(cap);

        if (!out || deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                free(out);
                return NULL;
        }
        z.next_in = (Bytef *) data;
        z.avail_in = (uInt) size;
        z.next_out = (Bytef *) out;
        z.avail_out = (uInt) cap;
        check(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate of a bounded input");
        *ret_len = cap - z.avail_out;
        deflateEnd(&z);
        return out;
}

static void check_text(const char *s, size_t len, size_t max) {
        check(s != NULL && s[len] == 0, "text NUL-terminated");
        check(len <= max, "text within its bound");
        check(memchr(s, 0, len) == NULL, "no NUL inside the text");
        check(utf8_valid(s, len), "text is strict UTF-8");
}

static void fuzz_pieces(const char *in, size_t size, size_t max) {
        char *out = NULL;
        const char *enc = NULL;
        size_t len = 0;
        int r;

        r = text_gunzip(in, size, max, &out, &len);
        if (r == 0) {
                check(out[len] == 0 && len <= max, "gunzip within its bound");
                free(out);
        } else
                check(r == -EFBIG || r == -EBADMSG || r == -ENOMEM, "gunzip error code");

        r = text_to_utf8(in, size, &out, &len, &enc);
        if (r == 0) {
                check_text(out, len, 3 * size + 4);
                check(enc != NULL, "encoding named");
                free(out);
        } else
                check(r == -EMEDIUMTYPE || r == -EILSEQ || r == -EFBIG || r == -ENOMEM,
                      "text_to_utf8 error code");

        r = html_to_text(in, size, &out, &len);
        check(r == 0 || r == -ENOMEM, "html_to_text error code");
        if (r == 0) {
                check(out[len] == 0 && len <= 3 * size + 16, "html_to_text within 3 * len + 16");
                if (utf8_valid(in, size) && !memchr(in, 0, size))
                        check(utf8_valid(out, len), "html_to_text keeps UTF-8 valid");
                free(out);
        }
        (void) looks_like_html(NULL, in, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int once;
        char *gz = NULL, *text = NULL, format[64], why[256];
        const char *in, *name;
        size_t in_len, len = 0, max;
        int r;

        if (!once) {
                /* No pdftotext: a PDF is refused before any fork. */
                check(setenv("PATH", "/nonexistent-moad-fuzz", 1) == 0, "setenv PATH");
                once = 1;
        }
        if (size < 1 || size > FUZZ_MAX_INPUT)
                return 0;
        name = names[data[0] & 7];
        max = (size_t) 64 << ((data[0] >> 3) & 7); /* 64 B to 8 KiB: the bound is reached */
        in = (const char *) data + 1;
        in_len = size - 1;
        if (data[0] & 0x80) {
                gz = gzip_bytes(data + 1, size - 1, &in_len);
                if (!gz)
                        return 0;
                in = gz;
        }

        fuzz_pieces(in, in_len, max);

        why[0] = 0;
        r = doc_text(name, in, in_len, max, NULL, &text, &len, format, sizeof format, why, sizeof why);
        if (r == 0) {
                check_text(text, len, max);
                check(strspn(text, " \t\n\v\f\r") < len, "accepted text is not blank");
                check(strlen(format) < sizeof format - 1, "format fits");
                free(text);
        } else {
                check(why[0] != 0, "a refusal says why");
                check(r == -EMEDIUMTYPE || r == -EFBIG || r == -EBADMSG || r == -ENODATA || r == -ENOMEM ||
                              r == -ENOPKG,
                      "refusal code documented");
        }
        free(gz);
        return 0;
}
