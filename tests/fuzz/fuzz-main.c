/* fuzz-main.c — the standalone driver linked into every fuzz target when it
 * is built without libFuzzer (gcc, CTest): runs each corpus file through
 * LLVMFuzzerTestOneInput, then deterministic mutations of it (byte flips,
 * truncations, splices; fixed seed) so a CTest run really explores inputs
 * around the corpus. Build with clang -fsanitize=fuzzer,address and
 * -DMOA_LIBFUZZER to use libFuzzer's own main instead. */
#ifndef MOA_LIBFUZZER
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUTATIONS_DEFAULT 200 /* per input; $MOA_FUZZ_MUTATIONS overrides */
#define FUZZ_MAX_INPUT (1 << 20)

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static int mutations = MUTATIONS_DEFAULT;

static uint64_t next_rand(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static void run_mutations(const uint8_t *data, size_t size) {
        static const char *const tokens[] = {"\"",   "{",       "}",      "[",     "]",     ":",
                                             ",",    "\\u0000", "null",   "true",  "1e999", "-1",
                                             "\xff", "\n",      "data: ", "[DONE]"};
        uint8_t *buf = malloc(size * 2 + 64);

        if (!buf)
                return;
        for (int m = 0; m < mutations; m++) {
                size_t n = size;
                memcpy(buf, data, size);
                switch (next_rand() % 4) {
                case 0: /* flip bytes */
                        for (int k = 0; k < 4 && n; k++)
                                buf[next_rand() % n] ^= (uint8_t) (1u << (next_rand() % 8));
                        break;
                case 1: /* truncate */
                        n = n ? next_rand() % n : 0;
                        break;
                case 2: { /* insert a token */
                        const char *t = tokens[next_rand() % (sizeof tokens / sizeof tokens[0])];
                        size_t at = n ? next_rand() % n : 0, tl = strlen(t);
                        memmove(buf + at + tl, buf + at, n - at);
                        memcpy(buf + at, t, tl);
                        n += tl;
                        break;
                }
                case 3: { /* duplicate a slice */
                        if (n < 2)
                                break;
                        size_t a = next_rand() % n, l = next_rand() % (n - a);
                        l = l > size ? size : l;
                        memmove(buf + a + l, buf + a, n - a);
                        n += l;
                        break;
                }
                }
                LLVMFuzzerTestOneInput(buf, n);
        }
        free(buf);
}

static int run_file(const char *path) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf;
        size_t n;

        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        buf = malloc(FUZZ_MAX_INPUT);
        if (!buf) {
                fclose(f);
                return -1;
        }
        n = fread(buf, 1, FUZZ_MAX_INPUT, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        run_mutations(buf, n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        const char *env = getenv("MOA_FUZZ_MUTATIONS");
        size_t n = 0;

        if (env)
                mutations = atoi(env) > 0 ? atoi(env) : 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        n++;
                        continue;
                }
                d = opendir(argv[i]);
                if (!d)
                        return EXIT_FAILURE;
                for (struct dirent *de; (de = readdir(d));) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
                        if (run_file(path) < 0) {
                                closedir(d);
                                return EXIT_FAILURE;
                        }
                        n++;
                }
                closedir(d);
        }
        printf("%zu inputs (+%d mutations each) ok\n", n, mutations);
        return n > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
