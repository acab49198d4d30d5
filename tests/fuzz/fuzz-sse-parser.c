/* fuzz-sse-parser.c — fuzz target for daemon/sse-parser.c. The first input
 * byte picks the piece size and limits; the rest is the stream. Beyond "no
 * crash, no leak" it checks a property: feeding in pieces yields exactly the
 * events (and the error) of feeding the whole input at once.
 *
 * Built with clang -fsanitize=fuzzer and -DFUZZ_NO_MAIN it is a libFuzzer
 * target; otherwise the small main() below runs it over files/directories
 * given on the command line (the CTest "fuzz" corpus run). */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>

#include "sse-parser.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Digest {
        uint64_t hash;
        size_t n;
} Digest;

static int digest_cb(void *userdata, const SseEvent *ev) {
        Digest *d = userdata;
        const char *parts[3] = {ev->event, ev->id, ev->data};
        size_t lens[3] = {strlen(ev->event), strlen(ev->id), ev->data_len};

        if (ev->done != (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0))
                abort();
        for (size_t k = 0; k < 3; k++) {
                for (size_t i = 0; i < lens[k]; i++)
                        d->hash = (d->hash ^ (uint8_t) parts[k][i]) * 1099511628211ULL;
                d->hash = (d->hash ^ 0x100) * 1099511628211ULL;
        }
        d->n++;
        return 0;
}

static int parse(const uint8_t *data, size_t size, size_t chunk, size_t max_line, size_t max_event,
                 Digest *d) {
        SseParser *p = NULL;
        int r;

        *d = (Digest){.hash = 1469598103934665603ULL};
        if (sse_parser_new(max_line, max_event, digest_cb, d, &p) < 0)
                abort();
        r = 0;
        for (size_t i = 0; i < size && r == 0; i += chunk)
                r = sse_parser_feed(p, data + i, MIN(chunk, size - i));
        if (r == 0)
                r = sse_parser_finish(p);
        sse_parser_free(p);
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Digest whole, pieces;
        size_t chunk, max_line, max_event;
        int r1, r2;

        if (size < 1 || size > 1024 * 1024)
                return 0;
        chunk = (data[0] & 0x0f) + 1;
        max_line = (data[0] & 0x30) ? 64u << ((data[0] >> 4) & 3) : 0;
        max_event = (data[0] & 0xc0) ? 128u << ((data[0] >> 6) & 3) : 0;
        data++;
        size--;

        r1 = parse(data, size, size ? size : 1, max_line, max_event, &whole);
        r2 = parse(data, size, chunk, max_line, max_event, &pieces);
        /* An over-long line/event is detected whatever the pieces; before it,
         * the same events came out. */
        if (r1 != r2)
                abort();
        if (r1 == 0 && (whole.n != pieces.n || whole.hash != pieces.hash))
                abort();
        return 0;
}

#ifndef FUZZ_NO_MAIN
static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        uint8_t *buf;
        long n;

        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -EIO;
        }
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n) {
                free(buf);
                fclose(f);
                return -EIO;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        size_t n = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
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
                DIR *d = opendir(argv[i]);
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
        printf("%zu inputs ok\n", n);
        return n > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
