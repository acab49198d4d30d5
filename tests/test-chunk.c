/* test-chunk.c — kb_chunk() and kb_chunk_sections(): size and overlap
 * bounds, preferred cut points, UTF-8 boundaries, empty/tiny/huge inputs,
 * and sections: which lines are headings, heading paths, no chunk across a
 * heading, limits on hostile structure. */
#include <check.h>

#include "check-main.h"

#include "kb.h"
#include "util.h"

static int utf8_boundary(const char *s, size_t len, size_t off) {
        return off >= len || ((unsigned char) s[off] & 0xC0) != 0x80;
}

static int is_ws(char c) {
        return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Checks every invariant kb_chunk_sections() promises and returns the
 * chunk count. A section's chunks share one heading offset. */
static size_t check_chunks(const char *text, size_t len, KbChunkOpts o) {
        KbChunks c = {0};
        ck_assert_int_eq(kb_chunk_sections(text, len, &o, &c), 0);
        size_t eff_overlap = MIN(o.overlap, o.chunk_size / 4);
        size_t covered = 0, n = c.n;
        for (size_t i = 0; i < n; i++) {
                size_t off = c.chunks[i].offset, l = c.chunks[i].len;
                ck_assert_uint_gt(l, 0);
                ck_assert_uint_le(l, o.chunk_size);
                ck_assert_uint_le(off + l, len);
                ck_assert(utf8_boundary(text, len, off));
                ck_assert(utf8_boundary(text, len, off + l));
                ck_assert(!is_ws(text[off]));
                ck_assert(!is_ws(text[off + l - 1]));
                ck_assert_uint_lt(c.chunks[i].heading, c.headings_len);
                ck_assert_uint_lt(strlen(c.headings + c.chunks[i].heading), KB_MAX_HEADING_BYTES);
                if (i > 0) {
                        size_t prev_off = c.chunks[i - 1].offset, prev_end = prev_off + c.chunks[i - 1].len;
                        int same_section = c.chunks[i].heading == c.chunks[i - 1].heading;
                        ck_assert_uint_gt(off, prev_off); /* progress */
                        if (off < prev_end) {
                                ck_assert(same_section); /* overlap never crosses a heading */
                                ck_assert_uint_le(prev_end - off, eff_overlap);
                        }
                        /* no non-space text skipped between chunks */
                        for (size_t k = prev_end; k < off; k++)
                                ck_assert(is_ws(text[k]));
                        if (same_section) /* all but a section's last are at least half full */
                                ck_assert_uint_ge(c.chunks[i - 1].len, o.chunk_size / 2 - 4);
                }
                covered = off + l;
        }
        for (size_t k = covered; k < len; k++)
                ck_assert(is_ws(text[k]));

        /* kb_chunk() cuts the same */
        size_t *offs = NULL, *lens = NULL, n2 = 0;
        ck_assert_int_eq(kb_chunk(text, len, &o, &offs, &lens, &n2), 0);
        ck_assert_uint_eq(n2, n);
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(offs[i], c.chunks[i].offset);
                ck_assert_uint_eq(lens[i], c.chunks[i].len);
        }
        free(offs);
        free(lens);
        kb_chunks_done(&c);
        return n;
}

/* Chunk @i's text and heading, for assertions. */
static char *chunk_text(const char *text, const KbChunks *c, size_t i) {
        return strndup(text + c->chunks[i].offset, c->chunks[i].len);
}

static const char *chunk_heading(const KbChunks *c, size_t i) {
        return c->headings + c->chunks[i].heading;
}

/* Asserts that no chunk contains the line starting at @line other than at its start. */
static void assert_not_inside(const char *text, const KbChunks *c, const char *line) {
        const char *p = strstr(text, line);
        ck_assert_msg(p != NULL, "test text lacks %s", line);
        size_t h = (size_t) (p - text);
        for (size_t i = 0; i < c->n; i++)
                ck_assert_msg(!(c->chunks[i].offset < h && h < c->chunks[i].offset + c->chunks[i].len),
                              "chunk %zu straddles heading '%s'", i, line);
}

START_TEST(test_empty_tiny) {
        size_t *offs = NULL, *lens = NULL, n = 99;
        ck_assert_int_eq(kb_chunk("", 0, NULL, &offs, &lens, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(offs);
        free(lens);
        ck_assert_int_eq(kb_chunk("   \n\n ", 6, NULL, &offs, &lens, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(offs);
        free(lens);
        ck_assert_int_eq(kb_chunk("  hi  ", 6, NULL, &offs, &lens, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(offs[0], 2);
        ck_assert_uint_eq(lens[0], 2);
        free(offs);
        free(lens);

        KbChunkOpts bad = {.chunk_size = 10};
        ck_assert_int_eq(kb_chunk("x", 1, &bad, &offs, &lens, &n), -EINVAL);
        bad = (KbChunkOpts){.chunk_size = 100, .overlap = 100};
        ck_assert_int_eq(kb_chunk("x", 1, &bad, &offs, &lens, &n), -EINVAL);
        KbChunkOpts zero = {0}; /* 0 means the default size */
        ck_assert_int_eq(kb_chunk("x", 1, &zero, &offs, &lens, &n), 0);
        ck_assert_uint_eq(n, 1);
        free(offs);
        free(lens);
}
END_TEST

START_TEST(test_prefers_paragraphs_then_sentences) {
        /* paragraph break at ~70% of the window wins over later sentence ends */
        char text[1024] = "";
        strcat(text, "First paragraph sentence one. Sentence two here. Sentence three goes on.\n\n");
        strcat(text, "Second paragraph. It has more words. And even more words follow here. ");
        strcat(text, "Tail words tail words tail words tail words tail words tail words.");
        KbChunkOpts o = {.chunk_size = 100, .overlap = 0};
        size_t *offs = NULL, *lens = NULL, n = 0;
        ck_assert_int_eq(kb_chunk(text, strlen(text), &o, &offs, &lens, &n), 0);
        ck_assert_uint_ge(n, 2);
        ck_assert_uint_eq(offs[0], 0);
        ck_assert_uint_eq(lens[0], strstr(text, "\n\n") - text);
        ck_assert_int_eq(strncmp(text + offs[1], "Second", 6), 0);
        free(offs);
        free(lens);

        /* without paragraphs, a chunk ends after a sentence */
        const char *s =
                "Alpha beta gamma delta. Epsilon zeta eta theta iota kappa lambda mu. Nu xi omicron pi rho "
                "sigma tau upsilon phi chi psi omega and more words.";
        ck_assert_int_eq(kb_chunk(s, strlen(s), &o, &offs, &lens, &n), 0);
        ck_assert_uint_ge(n, 2);
        ck_assert_int_eq(s[offs[0] + lens[0] - 1], '.');
        free(offs);
        free(lens);
}
END_TEST

START_TEST(test_overlap_bounds) {
        size_t len = 20000;
        char *t = malloc(len + 1);
        for (size_t i = 0; i < len; i++)
                t[i] = "lorem ipsum dolor sit amet, consectetur. "[i % 41];
        t[len] = 0;
        KbChunkOpts o = {.chunk_size = 300, .overlap = 60};
        size_t n = check_chunks(t, len, o);
        ck_assert_uint_ge(n, len / 300);
        ck_assert_uint_le(n, len / (300 / 2 - 60) + 1);

        /* overlap is really there */
        size_t *offs = NULL, *lens = NULL;
        ck_assert_int_eq(kb_chunk(t, len, &o, &offs, &lens, &n), 0);
        ck_assert_uint_lt(offs[1], offs[0] + lens[0]);
        free(offs);
        free(lens);

        /* huge overlap is clamped, still makes progress */
        o = (KbChunkOpts){.chunk_size = 300, .overlap = 299};
        check_chunks(t, len, o);
        o = (KbChunkOpts){.chunk_size = 64, .overlap = 0};
        check_chunks(t, len, o);
        free(t);
}
END_TEST

START_TEST(test_utf8_boundaries) {
        /* no whitespace at all: hard cuts must land between characters */
        static const char *const glyphs[] = {"é", "中", "😀", "a", "ß"};
        for (size_t g = 0; g < ELEMENTSOF(glyphs); g++) {
                size_t gl = strlen(glyphs[g]), len = 0;
                char *t = malloc(5000 * 4 + 1);
                for (int i = 0; i < 5000; i++) {
                        memcpy(t + len, glyphs[g], gl);
                        len += gl;
                }
                t[len] = 0;
                for (size_t cs = 64; cs < 140; cs += 7)
                        check_chunks(t, len, (KbChunkOpts){.chunk_size = cs, .overlap = cs / 5});
                free(t);
        }

        /* mixed scripts with CJK full stops */
        const char *cjk = "高血压是一种常见的慢性病。它通常没有症状。治疗包括减少盐的摄入和锻炼。"
                          "药物包括血管紧张素转换酶抑制剂。定期测量血压很重要。";
        size_t n = check_chunks(cjk, strlen(cjk), (KbChunkOpts){.chunk_size = 64, .overlap = 10});
        ck_assert_uint_ge(n, 2);
}
END_TEST

START_TEST(test_invalid_bytes_do_not_hang) {
        /* kb_chunk is given raw bytes here (kb_ingest sanitises first) */
        size_t len = 4096;
        char *t = malloc(len);
        for (size_t i = 0; i < len; i++)
                t[i] = (char) (0x80 | (i & 0x3f));
        size_t *offs = NULL, *lens = NULL, n = 0;
        KbChunkOpts o = {.chunk_size = 100, .overlap = 20};
        ck_assert_int_eq(kb_chunk(t, len, &o, &offs, &lens, &n), 0);
        ck_assert_uint_ge(n, len / 100);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_le(lens[i], 100);
                total += lens[i];
        }
        ck_assert_uint_ge(total, len);
        free(offs);
        free(lens);
        free(t);
}
END_TEST

START_TEST(test_huge) {
        size_t len = KB_MAX_DOCUMENT_BYTES;
        char *t = malloc(len);
        for (size_t i = 0; i < len; i++)
                t[i] = "The quick brown fox jumps over the lazy dog.\n"[i % 45];
        size_t *offs = NULL, *lens = NULL, n = 0;
        ck_assert_int_eq(kb_chunk(t, len, NULL, &offs, &lens, &n), 0);
        ck_assert_uint_ge(n, len / 1200);
        ck_assert_uint_le(n, len / 400 + 1);
        for (size_t i = 0; i < n; i++)
                ck_assert_uint_le(lens[i], 1200);
        free(offs);
        free(lens);
        free(t);
}
END_TEST

START_TEST(test_sections_markdown) {
        static const char text[] = "Intro text before any heading.\n\n"
                                   "# Guide\n\nGuide intro.\n\n"
                                   "## Install\n\nRun make install.\n\n"
                                   "### Options ###\n\nUse --prefix.\n\n"
                                   "## Remove\n\n"
                                   "Steps:\n\n1. Stop it.\n\n2. Remove it.\n\n"
                                   "```sh\n# not a heading, a shell comment\nrm -rf build\n```\n";
        KbChunks c = {0};
        ck_assert_int_eq(kb_chunk_sections(text, strlen(text), NULL, &c), 0);
        ck_assert_uint_eq(c.n, 5);
        static const char *const want[][2] = {
                {"Intro text before any heading.", ""},
                {"# Guide\n\nGuide intro.", "Guide"},
                {"## Install\n\nRun make install.", "Guide > Install"},
                {"### Options ###\n\nUse --prefix.", "Guide > Install > Options"},
                {"## Remove", "Guide > Remove"},
        };
        for (size_t i = 0; i < c.n; i++) {
                char *t = chunk_text(text, &c, i);
                ck_assert_msg(strncmp(t, want[i][0], strlen(want[i][0])) == 0, "chunk %zu is '%s'", i, t);
                ck_assert_str_eq(chunk_heading(&c, i), want[i][1]);
                free(t);
        }
        /* numbered list items and the fenced comment stay in their section */
        char *last = chunk_text(text, &c, 4);
        ck_assert_ptr_nonnull(strstr(last, "2. Remove it."));
        ck_assert_ptr_nonnull(strstr(last, "# not a heading"));
        free(last);
        kb_chunks_done(&c);
        ck_assert_ptr_null(c.chunks);
        check_chunks(text, strlen(text), KB_CHUNK_OPTS_DEFAULT);
}
END_TEST

/* The Debian Policy Manual's plain-text layout (reStructuredText). */
static const char policy_like[] =
        "Debian Policy Manual\n********************\n\nThis manual describes the policy requirements.\n\n"
        "4. Source packages\n******************\n\n"
        "4.5. Copyright: \"debian/copyright\"\n==================================\n\n"
        "Every package must be accompanied by a verbatim copy of its distribution license in the file "
        "/usr/share/doc/package/copyright.\n\n"
        "4.5.1. Machine-readable copyright\n---------------------------------\n\n"
        "A machine-readable format is described in a separate document.\n\n"
        "4.6. Error trapping in makefiles\n================================\n\n"
        "When make invokes a command in a makefile it checks the exit status.\n\n"
        "=====\nNotes\n=====\n\nAn overlined title.\n\n"
        "Not a heading\n==\n\nA too short underline is text.\n";

START_TEST(test_sections_rst) {
        KbChunks c = {0};
        ck_assert_int_eq(kb_chunk_sections(policy_like, strlen(policy_like), NULL, &c), 0);
        ck_assert_uint_eq(c.n, 5);
        ck_assert_str_eq(chunk_heading(&c, 0), "Debian Policy Manual");
        /* the bare chapter heading opens its first section's chunk */
        char *t = chunk_text(policy_like, &c, 1);
        ck_assert_int_eq(strncmp(t, "4. Source packages\n***", 22), 0);
        ck_assert_ptr_nonnull(strstr(t, "verbatim copy"));
        ck_assert_ptr_null(strstr(t, "Machine-readable"));
        free(t);
        ck_assert_str_eq(chunk_heading(&c, 1), "4. Source packages > 4.5. Copyright: \"debian/copyright\"");
        ck_assert_str_eq(chunk_heading(&c, 2), "4. Source packages > 4.5. Copyright: \"debian/copyright\" > "
                                               "4.5.1. Machine-readable copyright");
        ck_assert_str_eq(chunk_heading(&c, 3), "4. Source packages > 4.6. Error trapping in makefiles");
        /* an overlined style is a style of its own (level 4 here) */
        ck_assert_str_eq(chunk_heading(&c, 4),
                         "4. Source packages > 4.6. Error trapping in makefiles > Notes");
        t = chunk_text(policy_like, &c, 4);
        ck_assert_int_eq(strncmp(t, "=====\nNotes", 11), 0);
        ck_assert_ptr_nonnull(strstr(t, "too short underline"));
        free(t);
        assert_not_inside(policy_like, &c, "4.5.1. Machine");
        assert_not_inside(policy_like, &c, "4.6. Error");
        kb_chunks_done(&c);
        check_chunks(policy_like, strlen(policy_like), KB_CHUNK_OPTS_DEFAULT);
}
END_TEST

START_TEST(test_long_section_split) {
        /* a long section is cut by size; every piece carries its heading
         * and none runs into the next section */
        size_t cap = 20000, len = 0;
        char *t = malloc(cap);
        len += (size_t) snprintf(t + len, cap - len,
                                 "10.7. Configuration files\n=========================\n\n");
        for (int i = 0; i < 60; i++)
                len += (size_t) snprintf(t + len, cap - len, "Sentence %d about conffiles and upgrades. ",
                                         i);
        len += (size_t) snprintf(t + len, cap - len,
                                 "\n\n10.8. Log files\n===============\n\nLog files should be rotated.\n");
        KbChunkOpts o = {.chunk_size = 300, .overlap = 60};
        size_t n = check_chunks(t, len, o);
        ck_assert_uint_ge(n, 8);
        KbChunks c = {0};
        ck_assert_int_eq(kb_chunk_sections(t, len, &o, &c), 0);
        for (size_t i = 0; i + 1 < c.n; i++)
                ck_assert_str_eq(chunk_heading(&c, i), "10.7. Configuration files");
        ck_assert_str_eq(chunk_heading(&c, c.n - 1), "10.8. Log files");
        char *last = chunk_text(t, &c, c.n - 1);
        ck_assert_int_eq(strncmp(last, "10.8. Log files", 15), 0);
        free(last);
        assert_not_inside(t, &c, "10.8. Log files");
        kb_chunks_done(&c);
        free(t);
}
END_TEST

START_TEST(test_sections_numbered_plain) {
        /* no markup: numbered lines on their own are headings; list items
         * ("a)", "(b)", numbers after a lead-in ending in ':') are not */
        static const char text[] =
                "GNU GENERAL PUBLIC LICENSE\n\n"
                "  5. Conveying Modified Source Versions.\n\n"
                "  You may convey a work based on the Program, provided that you meet all of these "
                "conditions:\n\n"
                "    a) The work must carry prominent notices stating that you modified it.\n\n"
                "    (b) The work must carry prominent notices stating that it is released.\n\n"
                "  6. Conveying Non-Source Forms.\n\n"
                "  You may convey a covered work in object code form in one of these ways:\n\n"
                "  1. Convey the object code in a physical product.\n\n"
                "  2. Convey the object code with a written offer.\n\n"
                "10.7.3 Behavior\n"
                "Configuration files must be preserved on upgrade.\n\n"
                "§ 4 Definitions\n\nA tenant is a person who rents.\n\n"
                "Section 5. Term\n\nThe lease runs for one year. 7. This is prose, not a heading.\n";
        KbChunks c = {0};
        ck_assert_int_eq(kb_chunk_sections(text, strlen(text), NULL, &c), 0);
        ck_assert_uint_eq(c.n, 6);
        ck_assert_str_eq(chunk_heading(&c, 0), "");
        ck_assert_str_eq(chunk_heading(&c, 1), "5. Conveying Modified Source Versions.");
        ck_assert_str_eq(chunk_heading(&c, 2), "6. Conveying Non-Source Forms.");
        ck_assert_str_eq(chunk_heading(&c, 3), "6. Conveying Non-Source Forms. > 10.7.3 Behavior");
        ck_assert_str_eq(chunk_heading(&c, 4), "§ 4 Definitions");
        ck_assert_str_eq(chunk_heading(&c, 5), "Section 5. Term");
        char *t = chunk_text(text, &c, 1);
        ck_assert_ptr_nonnull(strstr(t, "(b) The work"));
        free(t);
        t = chunk_text(text, &c, 2);
        ck_assert_ptr_nonnull(strstr(t, "2. Convey the object code with a written offer."));
        free(t);
        kb_chunks_done(&c);
        check_chunks(text, strlen(text), KB_CHUNK_OPTS_DEFAULT);

        /* in a document that marks its headings, numbered lines are lists */
        static const char md[] = "# Steps\n\nIntro.\n\n1. First Thing\n\n2. Second Thing\n";
        ck_assert_int_eq(kb_chunk_sections(md, strlen(md), NULL, &c), 0);
        ck_assert_uint_eq(c.n, 1);
        ck_assert_str_eq(chunk_heading(&c, 0), "Steps");
        kb_chunks_done(&c);
}
END_TEST

START_TEST(test_sections_hostile) {
        /* every other line a heading: at most KB_MAX_SECTIONS sections */
        size_t len = 0, cap = 8u * 1024u * 1024u;
        char *t = malloc(cap);
        while (len + 16 < cap)
                len += (size_t) snprintf(t + len, cap - len, "# h\nx\n");
        KbChunks c = {0};
        ck_assert_int_eq(kb_chunk_sections(t, len, NULL, &c), 0);
        ck_assert_uint_le(c.n, KB_MAX_SECTIONS + 1 + len / 600);
        ck_assert_uint_gt(c.n, KB_MAX_SECTIONS / 2);
        kb_chunks_done(&c);

        /* deep nesting and huge headings: paths bounded, valid UTF-8 */
        len = 0;
        for (int i = 0; i < 300; i++) {
                len += (size_t) snprintf(t + len, cap - len, "%.*s ", 1 + i % 6, "######");
                for (int k = 0; k < 60; k++)
                        len += (size_t) snprintf(t + len, cap - len, "é");
                len += (size_t) snprintf(t + len, cap - len, "\ntext %d\n\n", i);
        }
        for (int i = 0; i < 12; i++) /* more underline styles than levels */
                len += (size_t) snprintf(t + len, cap - len, "Title %d\n%.*s\n\nbody\n\n", i, 7 + (i > 9),
                                         &"=======-------~~~~~~~*******^^^^^^^"[7 * (i % 5)]);
        check_chunks(t, len, KB_CHUNK_OPTS_DEFAULT);
        ck_assert_int_eq(kb_chunk_sections(t, len, NULL, &c), 0);
        for (size_t i = 0; i < c.n; i++) {
                const char *h = chunk_heading(&c, i);
                size_t hl = strlen(h), depth = 1;
                ck_assert_uint_lt(hl, KB_MAX_HEADING_BYTES);
                for (const char *p = h; (p = strstr(p, " > ")); p += 3)
                        depth++;
                ck_assert_uint_le(depth, KB_MAX_HEADING_DEPTH);
                for (size_t k = 0; k < hl; k++) /* whole characters only */
                        if ((unsigned char) h[k] == 0xC3)
                                ck_assert_uint_eq((unsigned char) h[k + 1], 0xA9);
                ck_assert((unsigned char) h[0] != 0xA9);
        }
        kb_chunks_done(&c);
        free(t);
}
END_TEST

static Suite *chunk_suite(void) {
        Suite *s = suite_create("chunk");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_empty_tiny);
        tcase_add_test(tc, test_prefers_paragraphs_then_sentences);
        tcase_add_test(tc, test_overlap_bounds);
        tcase_add_test(tc, test_utf8_boundaries);
        tcase_add_test(tc, test_invalid_bytes_do_not_hang);
        tcase_add_test(tc, test_huge);
        tcase_add_test(tc, test_sections_markdown);
        tcase_add_test(tc, test_sections_rst);
        tcase_add_test(tc, test_long_section_split);
        tcase_add_test(tc, test_sections_numbered_plain);
        tcase_add_test(tc, test_sections_hostile);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(chunk_suite());
}
