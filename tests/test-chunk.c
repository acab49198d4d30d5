/* test-chunk.c — kb_chunk(): size and overlap bounds, preferred cut points,
 * UTF-8 boundaries, empty/tiny/huge inputs. */
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

/* Checks every invariant kb_chunk() promises and returns the chunk count. */
static size_t check_chunks(const char *text, size_t len, KbChunkOpts o) {
        size_t *offs = NULL, *lens = NULL, n = 0;
        ck_assert_int_eq(kb_chunk(text, len, &o, &offs, &lens, &n), 0);
        size_t eff_overlap = MIN(o.overlap, o.chunk_size / 4);
        size_t covered = 0;
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_gt(lens[i], 0);
                ck_assert_uint_le(lens[i], o.chunk_size);
                ck_assert_uint_le(offs[i] + lens[i], len);
                ck_assert(utf8_boundary(text, len, offs[i]));
                ck_assert(utf8_boundary(text, len, offs[i] + lens[i]));
                ck_assert(!is_ws(text[offs[i]]));
                ck_assert(!is_ws(text[offs[i] + lens[i] - 1]));
                if (i > 0) {
                        ck_assert_uint_gt(offs[i], offs[i - 1]); /* progress */
                        size_t prev_end = offs[i - 1] + lens[i - 1];
                        if (offs[i] < prev_end)
                                ck_assert_uint_le(prev_end - offs[i], eff_overlap);
                        /* no non-space text skipped between chunks */
                        for (size_t k = prev_end; k < offs[i]; k++)
                                ck_assert(is_ws(text[k]));
                        if (i + 1 < n) /* all but the last are at least half full */
                                ck_assert_uint_ge(lens[i], o.chunk_size / 2 - 4);
                }
                covered = offs[i] + lens[i];
        }
        for (size_t k = covered; k < len; k++)
                ck_assert(is_ws(text[k]));
        free(offs);
        free(lens);
        return n;
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
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return moa_check_run(chunk_suite());
}
