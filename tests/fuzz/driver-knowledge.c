/* driver-knowledge.c — a tiny standalone driver for the knowledge fuzz
 * targets (fuzz-kb-query, fuzz-extract) so they build with gcc and run
 * under CTest: every file named on the command line (or found in a named
 * directory) is fed to LLVMFuzzerTestOneInput(), followed by a fixed number
 * of deterministic byte-level mutations of it. With clang's libFuzzer, build
 * the target without this file instead. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_MAX_INPUT (1024u * 1024u)
#define MUTATIONS 64u /* per input; $KNOWLEDGE_FUZZ_MUTATIONS overrides */

static unsigned mutations = MUTATIONS;

static uint32_t rng = 0x9e3779b9u;

static uint32_t next_rand(void) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        return rng;
}

static const char *const dictionary[] = {
        "\"",
        "NEAR(",
        ")",
        "AND",
        "OR",
        "NOT",
        "*",
        "^",
        ":",
        "[1]",
        "\n\nSources:\n[1] ",
        ". ",
        "\xff",
        "\xe3\x80\x82",
        "\xc3\xa9",
        "# ",
        "- ",
        "\n",
        "e.g. ",
        "Dr. ",
        "\x00",
        "[99]",
};

static void run_mutations(const uint8_t *data, size_t size) {
        uint8_t *buf = malloc(size * 2 + 64);
        if (!buf)
                return;
        for (unsigned m = 0; m < mutations; m++) {
                size_t n = size;
                memcpy(buf, data, size);
                unsigned ops = 1 + next_rand() % 4;
                for (unsigned k = 0; k < ops; k++) {
                        uint32_t r = next_rand();
                        switch (r % 4) {
                        case 0: /* flip a byte */
                                if (n > 0)
                                        buf[next_rand() % n] ^= (uint8_t) (1u << (r >> 8) % 8);
                                break;
                        case 1: /* truncate */
                                if (n > 0)
                                        n = next_rand() % n;
                                break;
                        case 2: { /* insert a dictionary token */
                                const char *t =
                                        dictionary[next_rand() % (sizeof dictionary / sizeof *dictionary)];
                                size_t tl = strlen(t) ? strlen(t) : 1;
                                if (n + tl <= size * 2 + 64) {
                                        size_t at = n ? next_rand() % (n + 1) : 0;
                                        memmove(buf + at + tl, buf + at, n - at);
                                        memcpy(buf + at, t, tl);
                                        n += tl;
                                }
                                break;
                        }
                        default: /* duplicate a slice */
                                if (n > 1) {
                                        size_t a = next_rand() % n, l = next_rand() % (n - a);
                                        if (n + l <= size * 2 + 64) {
                                                memmove(buf + a + l, buf + a, n - a);
                                                n += l;
                                        }
                                }
                        }
                }
                LLVMFuzzerTestOneInput(buf, n);
        }
        free(buf);
}

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                perror(path);
                return -1;
        }
        uint8_t *buf = malloc(DRIVER_MAX_INPUT);
        if (!buf) {
                fclose(f);
                return -1;
        }
        size_t n = fread(buf, 1, DRIVER_MAX_INPUT, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        run_mutations(buf, n);
        free(buf);
        return 0;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char **argv) {
        unsigned runs = 0;
        const char *e = getenv("KNOWLEDGE_FUZZ_MUTATIONS");
        if (e && atoi(e) > 0)
                mutations = (unsigned) atoi(e);
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        runs++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                if (!d)
                        return EXIT_FAILURE;
                char *names[1024];
                size_t n = 0;
                struct dirent *de;
                while ((de = readdir(d)) && n < 1024)
                        if (de->d_name[0] != '.')
                                names[n++] = strdup(de->d_name);
                closedir(d);
                qsort(names, n, sizeof(char *), cmp_names);
                for (size_t k = 0; k < n; k++) {
                        char p[4096];
                        snprintf(p, sizeof p, "%s/%s", argv[i], names[k]);
                        if (run_file(p) < 0)
                                return EXIT_FAILURE;
                        runs++;
                        free(names[k]);
                }
        }
        printf("%u inputs, %u runs each with mutations: ok\n", runs, mutations + 1);
        return runs > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
