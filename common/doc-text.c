/* doc-text.c — from a file's bytes to UTF-8 text for ingest: gzip via
 * zlib (in memory, bounded), encodings via iconv(3), HTML by one bounded
 * pass that strips tags and decodes character references, PDF through
 * pdf-text.c's pdftotext. Each refusal comes with a reason. The one
 * implementation behind "moactl ingest" and moad's ingest jobs. */
#include <ctype.h>
#include <iconv.h>
#include <strings.h>
#include <zlib.h>

#include "doc-text.h"
#include "pdf-text.h"
#include "utf8.h"
#include "util.h"

static int has_suffix_ci(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

int text_gunzip(const void *data, size_t size, size_t max, char **ret, size_t *ret_len) {
        _cleanup_free_ char *out = NULL;
        size_t cap = 0, len = 0;
        z_stream z = {};
        int rc;

        if (size > UINT_MAX)
                return -EFBIG;
        /* 15 + 32: a gzip or zlib header, detected. */
        if (inflateInit2(&z, 15 + 32) != Z_OK)
                return -ENOMEM;
        z.next_in = (Bytef *) data;
        z.avail_in = (uInt) size;
        for (;;) {
                if (cap - len < 2) {
                        size_t ncap = MIN(MAX(cap * 2, (size_t) 65536), max + 2);
                        char *b;

                        if (ncap <= cap) {
                                inflateEnd(&z);
                                return -EFBIG;
                        }
                        b = realloc(out, ncap);
                        if (!b) {
                                inflateEnd(&z);
                                return -ENOMEM;
                        }
                        out = b;
                        cap = ncap;
                }
                z.next_out = (Bytef *) out + len;
                z.avail_out = (uInt) MIN(cap - len - 1, (size_t) UINT_MAX);
                rc = inflate(&z, Z_NO_FLUSH);
                len = (size_t) ((char *) z.next_out - out);
                if (len > max) {
                        inflateEnd(&z);
                        return -EFBIG;
                }
                if (rc == Z_STREAM_END) {
                        /* Concatenated members, as gzip(1) writes with -c >>. */
                        if (z.avail_in == 0)
                                break;
                        if (inflateReset(&z) != Z_OK) {
                                inflateEnd(&z);
                                return -EBADMSG;
                        }
                        continue;
                }
                if (rc == Z_BUF_ERROR && z.avail_in == 0) {
                        inflateEnd(&z); /* truncated */
                        return -EBADMSG;
                }
                if (rc != Z_OK && rc != Z_BUF_ERROR) {
                        inflateEnd(&z);
                        return rc == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
                }
        }
        inflateEnd(&z);
        out[len] = 0;
        *ret = TAKE_PTR(out);
        *ret_len = len;
        return 0;
}

/* Converts with iconv; -EILSEQ if @from does not hold the input. */
static int convert(const char *from, const char *data, size_t size, char **ret, size_t *ret_len) {
        _cleanup_free_ char *out = NULL;
        size_t cap, in_left = size, out_left;
        char *in = (char *) data, *o;
        iconv_t cd;

        /* Every encoding read here needs at most 3 UTF-8 bytes per input byte. */
        if (size > (SIZE_MAX - 4) / 3)
                return -EFBIG;
        cap = 3 * size + 4;
        out = malloc(cap);
        if (!out)
                return -ENOMEM;
        cd = iconv_open("UTF-8", from);
        if (cd == (iconv_t) -1)
                return -errno;
        o = out;
        out_left = cap - 1;
        if (iconv(cd, &in, &in_left, &o, &out_left) == (size_t) -1) {
                int r = errno == E2BIG ? -EFBIG : -EILSEQ;
                iconv_close(cd);
                return r;
        }
        iconv_close(cd);
        *o = 0;
        *ret_len = (size_t) (o - out);
        *ret = TAKE_PTR(out);
        return 0;
}

/* Control characters that do not occur in text (tab, newlines, form feed
 * and escape do). */
static int is_binary_control(unsigned char c) {
        return (c < 0x20 && !strchr("\t\n\v\f\r\x1b", c)) || c == 0x7f;
}

int text_to_utf8(const char *data, size_t size, char **ret, size_t *ret_len, const char **ret_encoding) {
        const unsigned char *u = (const unsigned char *) data;
        size_t controls = 0;
        char *copy;
        int r;

        if (size >= 2 && ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) {
                const char *enc = u[0] == 0xff ? "UTF-16LE" : "UTF-16BE";

                if (size % 2 != 0)
                        return -EILSEQ;
                r = convert(enc, data + 2, size - 2, ret, ret_len);
                if (r < 0)
                        return r;
                if (memchr(*ret, 0, *ret_len)) {
                        *ret = mfree(*ret);
                        return -EMEDIUMTYPE;
                }
                *ret_encoding = enc;
                return 0;
        }
        if (size >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
                data += 3;
                size -= 3;
                u += 3;
        }
        if (memchr(data, 0, size))
                return -EMEDIUMTYPE;
        for (size_t i = 0; i < size; i++)
                controls += is_binary_control(u[i]);
        /* A few stray control characters happen in text; more than 1 in 100 is not text. */
        if (controls > size / 100)
                return -EMEDIUMTYPE;
        if (utf8_valid(data, size)) {
                copy = malloc(size + 1);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, data, size);
                copy[size] = 0;
                *ret = copy;
                *ret_len = size;
                *ret_encoding = "UTF-8";
                return 0;
        }
        /* Not UTF-8: Windows-1252 (a superset of Latin-1's printable
         * characters, and what "Latin-1" files usually are), else Latin-1
         * proper, which converts every byte. */
        r = convert("WINDOWS-1252", data, size, ret, ret_len);
        if (r == -EILSEQ)
                r = convert("ISO-8859-1", data, size, ret, ret_len);
        if (r < 0)
                return r;
        *ret_encoding = "Latin-1";
        return 0;
}

/* ---- HTML ---------------------------------------------------------------- */

static const struct {
        const char *name;
        const char *utf8;
} entities[] = {
        {"amp", "&"},    {"lt", "<"},     {"gt", ">"},     {"quot", "\""},  {"apos", "'"},   {"nbsp", " "},
        {"copy", "©"},   {"reg", "®"},    {"trade", "™"},  {"sect", "§"},   {"para", "¶"},   {"middot", "·"},
        {"bull", "•"},   {"hellip", "…"}, {"ndash", "–"},  {"mdash", "—"},  {"lsquo", "‘"},  {"rsquo", "’"},
        {"ldquo", "“"},  {"rdquo", "”"},  {"laquo", "«"},  {"raquo", "»"},  {"euro", "€"},   {"pound", "£"},
        {"yen", "¥"},    {"cent", "¢"},   {"deg", "°"},    {"plusmn", "±"}, {"times", "×"},  {"divide", "÷"},
        {"auml", "ä"},   {"ouml", "ö"},   {"uuml", "ü"},   {"Auml", "Ä"},   {"Ouml", "Ö"},   {"Uuml", "Ü"},
        {"szlig", "ß"},  {"eacute", "é"}, {"egrave", "è"}, {"ecirc", "ê"},  {"aacute", "á"}, {"agrave", "à"},
        {"acirc", "â"},  {"ccedil", "ç"}, {"ntilde", "ñ"}, {"oacute", "ó"}, {"iacute", "í"}, {"uacute", "ú"},
        {"Eacute", "É"}, {"shy", ""},
};

/* Appends code point @cp as UTF-8 to @out; invalid ones as U+FFFD. */
static size_t put_utf8(char *out, uint32_t cp) {
        if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                cp = 0xfffd;
        if (cp < 0x80) {
                out[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char) (0xc0 | (cp >> 6));
                out[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char) (0xe0 | (cp >> 12));
                out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char) (0xf0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

/* Decodes the reference at @s (after '&', @n bytes left) into @out.
 * Returns the input bytes used (through ';'), 0 if it is no reference. */
static size_t decode_entity(const char *s, size_t n, char *out, size_t *ret_out) {
        size_t i = 0;

        if (n > 0 && s[0] == '#') {
                int hex = n > 1 && (s[1] == 'x' || s[1] == 'X');
                uint32_t cp = 0;
                size_t digits = 0;

                for (i = hex ? 2 : 1; i < n && digits < 8; i++, digits++) {
                        int c = (unsigned char) s[i];
                        if (hex && isxdigit(c))
                                cp = cp * 16 + (uint32_t) (isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
                        else if (!hex && isdigit(c))
                                cp = cp * 10 + (uint32_t) (c - '0');
                        else
                                break;
                }
                if (digits == 0 || i >= n || s[i] != ';')
                        return 0;
                *ret_out = put_utf8(out, cp);
                return i + 1;
        }
        while (i < n && i < 10 && isalnum((unsigned char) s[i]))
                i++;
        if (i == 0 || i >= n || s[i] != ';')
                return 0;
        for (size_t k = 0; k < ELEMENTSOF(entities); k++)
                if (strlen(entities[k].name) == i && memcmp(entities[k].name, s, i) == 0) {
                        *ret_out = strlen(entities[k].utf8);
                        memcpy(out, entities[k].utf8, *ret_out);
                        return i + 1;
                }
        return 0;
}

/* Case-insensitive: does @s (@n bytes) start with @word? */
static int starts_ci(const char *s, size_t n, const char *word) {
        size_t k = strlen(word);
        return n >= k && strncasecmp(s, word, k) == 0;
}

/* Elements whose content is not text. */
static const char *const skipped[] = {"script", "style", "noscript", "template", "svg", "object"};
/* Elements that end a line. */
static const char *const blocks[] = {"p",      "div",        "br",      "li",      "ul",         "ol",
                                     "tr",     "table",      "section", "article", "blockquote", "pre",
                                     "hr",     "dd",         "dt",      "dl",      "header",     "footer",
                                     "nav",    "title",      "td",      "th",      "main",       "aside",
                                     "figure", "figcaption", "form",    "body"};

static int name_is(const char *name, size_t n, const char *word) {
        return strlen(word) == n && strncasecmp(name, word, n) == 0;
}

/* Ends the line (dropping a trailing blank) until @want line breaks end the output. */
static void put_newlines(char *out, size_t *o, int *newlines, int want) {
        if (*o > 0 && out[*o - 1] == ' ')
                (*o)--;
        while (*newlines < want) {
                out[(*o)++] = '\n';
                (*newlines)++;
        }
}

int html_to_text(const char *html, size_t len, char **ret, size_t *ret_len) {
        _cleanup_free_ char *out = NULL;
        size_t o = 0, i = 0;
        int space = 1, newlines = 2; /* at the start: nothing to separate */

        /* "<h6>" (4 bytes) becomes at most "\n\n###### " (9): 3 * len bounds it all. */
        if (len > (SIZE_MAX - 16) / 3)
                return -EFBIG;
        out = malloc(3 * len + 16);
        if (!out)
                return -ENOMEM;

        while (i < len) {
                char c = html[i];

                if (c == '<') {
                        const char *s = html + i + 1;
                        size_t n = len - i - 1, nl, end;
                        int closing = 0;

                        if (starts_ci(s, n, "!--")) {
                                const char *e = memmem(s + 3, n - 3, "-->", 3);
                                i = e ? (size_t) (e - html) + 3 : len;
                                continue;
                        }
                        if (n > 0 && *s == '/') {
                                closing = 1;
                                s++;
                                n--;
                        }
                        /* A tag name starts with a letter: "x <3" is text. */
                        nl = 0;
                        if (n > 0 && isalpha((unsigned char) s[0]))
                                while (nl < n && (isalnum((unsigned char) s[nl]) || s[nl] == '-'))
                                        nl++;
                        if (nl == 0 && !(n > 0 && (*s == '!' || *s == '?'))) {
                                /* A '<' that starts no tag is text. */
                                out[o++] = '<';
                                space = newlines = 0;
                                i++;
                                continue;
                        }
                        {
                                const char *gt = memchr(s, '>', n);
                                end = gt ? (size_t) (gt - html) + 1 : len;
                        }
                        if (!closing) {
                                int skip = 0;
                                for (size_t k = 0; k < ELEMENTSOF(skipped); k++)
                                        skip = skip || name_is(s, nl, skipped[k]);
                                /* "<svg ... />" has no content to skip. */
                                if (skip && end >= 2 && end <= len && html[end - 2] == '/')
                                        skip = 0;
                                if (skip) {
                                        /* Up to the matching end tag (or the end). */
                                        char close[16];
                                        const char *p = html + end, *e = NULL;

                                        snprintf(close, sizeof close, "</%.*s", (int) nl, s);
                                        while (p < html + len) {
                                                const char *lt = memchr(p, '<', (size_t) (html + len - p));
                                                if (!lt)
                                                        break;
                                                if (starts_ci(lt, (size_t) (html + len - lt), close)) {
                                                        e = lt;
                                                        break;
                                                }
                                                p = lt + 1;
                                        }
                                        if (!e) {
                                                i = len;
                                                continue;
                                        }
                                        const char *gt = memchr(e, '>', (size_t) (html + len - e));
                                        i = gt ? (size_t) (gt - html) + 1 : len;
                                        continue;
                                }
                        }
                        if (nl == 2 && tolower((unsigned char) s[0]) == 'h' && s[1] >= '1' && s[1] <= '6') {
                                /* Headings become Markdown, which the chunker cuts at. */
                                put_newlines(out, &o, &newlines, 2);
                                if (!closing) {
                                        for (int k = 0; k < s[1] - '0'; k++)
                                                out[o++] = '#';
                                        out[o++] = ' ';
                                        newlines = 0;
                                }
                                space = 1;
                        } else {
                                int block = 0;
                                for (size_t k = 0; k < ELEMENTSOF(blocks); k++)
                                        block = block || name_is(s, nl, blocks[k]);
                                /* Inline tags (b, a, span...) separate nothing. */
                                if (block && newlines == 0) {
                                        put_newlines(out, &o, &newlines, 1);
                                        space = 1;
                                }
                        }
                        i = end;
                        continue;
                }
                if (c == '&') {
                        size_t used, k = 0;
                        char buf[8];

                        used = decode_entity(html + i + 1, len - i - 1, buf, &k);
                        if (used > 0) {
                                i += used + 1;
                                if (k == 1 && buf[0] == ' ') { /* &nbsp; */
                                        if (!space)
                                                out[o++] = ' ';
                                        space = 1;
                                        continue;
                                }
                                /* The decoded bytes are never more than the reference's. */
                                memcpy(out + o, buf, k);
                                o += k;
                                if (k > 0)
                                        space = newlines = 0;
                                continue;
                        }
                }
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
                        if (!space) {
                                out[o++] = ' ';
                                space = 1;
                        }
                        i++;
                        continue;
                }
                out[o++] = c;
                space = newlines = 0;
                i++;
        }
        while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\n'))
                o--;
        out[o] = 0;
        *ret_len = o;
        *ret = TAKE_PTR(out);
        return 0;
}

int looks_like_html(const char *name, const char *text, size_t len) {
        size_t i = 0;

        if (name &&
            (has_suffix_ci(name, ".html") || has_suffix_ci(name, ".htm") || has_suffix_ci(name, ".xhtml")))
                return 1;
        while (i < len && isspace((unsigned char) text[i]))
                i++;
        return starts_ci(text + i, len - i, "<!doctype html") || starts_ci(text + i, len - i, "<html");
}

/* ---- one file -------------------------------------------------------------- */

static const struct {
        const char *magic;
        size_t len;
        const char *what;
} magics[] = {
        {"\x89PNG", 4, "a PNG image"},
        {"\xff\xd8\xff", 3, "a JPEG image"},
        {"GIF8", 4, "a GIF image"},
        {"PK\x03\x04", 4, "a zip archive"},
        {"\x7f"
         "ELF",
         4, "an ELF binary"},
        {"BZh", 3, "bzip2 data"},
        {"\xfd"
         "7zXZ",
         5, "xz data"},
        {"\x28\xb5\x2f\xfd", 4, "zstd data"},
};

static int all_space(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isspace((unsigned char) s[i]))
                        return 0;
        return 1;
}

int doc_text(const char *path, const char *data, size_t size, size_t max, const ConvertLimits *lim,
             char **ret, size_t *ret_len, char *format, size_t format_len, char *why, size_t why_len) {
        const ConvertLimits l = lim ? *lim : CONVERT_LIMITS_DEFAULT;
        _cleanup_free_ char *plain = NULL, *text = NULL, *name = NULL;
        const char *enc = NULL;
        size_t len = 0;
        int gz = 0, pdf = 0, html = 0, r;

        format[0] = 0;
        name = strdup(path);
        if (!name)
                return -ENOMEM;
        if (size >= 2 && (unsigned char) data[0] == 0x1f && (unsigned char) data[1] == 0x8b) {
                r = text_gunzip(data, size, max, &plain, &len);
                if (r == -EFBIG) {
                        snprintf(why, why_len, "decompresses to more than %zu bytes", max);
                        return r;
                }
                if (r < 0) {
                        snprintf(why, why_len, "corrupt gzip data");
                        return r == -ENOMEM ? r : -EBADMSG;
                }
                if (has_suffix_ci(name, ".gz"))
                        name[strlen(name) - 3] = 0;
                data = plain;
                size = len;
                gz = 1;
        }

        if (has_suffix_ci(name, ".pdf") || (size >= 5 && memcmp(data, "%PDF-", 5) == 0)) {
                if (gz) {
                        snprintf(why, why_len, "a compressed PDF: decompress it first");
                        return -EMEDIUMTYPE;
                }
                r = text_from_pdf(data, size, &l, max, &plain, &len);
                if (r == -ENOPKG)
                        snprintf(why, why_len,
                                 "cannot read PDF files: pdftotext not found (install poppler-utils)");
                else if (r == -EBADMSG)
                        snprintf(why, why_len, "not a readable PDF (pdftotext could not extract text)");
                else if (r == -EFBIG)
                        snprintf(why, why_len, "its text is larger than %zu bytes", max);
                else if (r == -ETIME)
                        snprintf(why, why_len,
                                 "pdftotext ran longer than %u s and was stopped (a crafted PDF?)",
                                 l.timeout_sec);
                else if (r == -ETIMEDOUT)
                        snprintf(why, why_len,
                                 "pdftotext used more than %u s of CPU and was stopped (a crafted PDF?)",
                                 l.cpu_sec);
                else if (r == -ECANCELED)
                        snprintf(why, why_len, "cancelled while pdftotext ran");
                else if (r < 0)
                        snprintf(why, why_len, "pdftotext: %s", strerror(-r));
                if (r < 0)
                        return r;
                data = plain;
                size = len;
                pdf = 1;
        }

        for (size_t k = 0; k < ELEMENTSOF(magics); k++)
                if (size >= magics[k].len && memcmp(data, magics[k].magic, magics[k].len) == 0) {
                        snprintf(why, why_len, "not text (%s)", magics[k].what);
                        return -EMEDIUMTYPE;
                }
        r = text_to_utf8(data, size, &text, &len, &enc);
        if (r == -EMEDIUMTYPE || r == -EILSEQ) {
                snprintf(why, why_len, r == -EILSEQ ? "not text (broken UTF-16)" : "not text (binary data)");
                return -EMEDIUMTYPE;
        }
        if (r == -EFBIG) {
                snprintf(why, why_len, "too large to convert");
                return r;
        }
        if (r < 0) {
                snprintf(why, why_len, "cannot convert: %s", strerror(-r));
                return r;
        }
        html = !pdf && looks_like_html(name, text, len);
        if (html) {
                _cleanup_free_ char *h = NULL;
                size_t hl;

                r = html_to_text(text, len, &h, &hl);
                if (r < 0) {
                        snprintf(why, why_len, "cannot extract HTML text: %s", strerror(-r));
                        return r;
                }
                free(text);
                text = TAKE_PTR(h);
                len = hl;
        }
        if (len > max) {
                snprintf(why, why_len, "its text (%zu bytes) is larger than %zu bytes", len, max);
                return -EFBIG;
        }
        if (all_space(text, len)) {
                snprintf(why, why_len, "no text in it");
                return -ENODATA;
        }
        {
                const char *parts[] = {gz ? "gzip" : NULL, pdf ? "PDF" : NULL,
                                       streq(enc, "UTF-8") ? NULL : enc, html ? "HTML" : NULL};
                size_t o = 0;

                format[0] = 0;
                for (size_t k = 0; k < ELEMENTSOF(parts); k++)
                        if (parts[k] && o < format_len)
                                o += (size_t) snprintf(format + o, format_len - o, "%s%s", o ? ", " : "",
                                                       parts[k]);
        }
        *ret = TAKE_PTR(text);
        *ret_len = len;
        return 0;
}
