/* fuzz-sse-parser.c — fuzz target for daemon/sse-parser.c. The first input
 * byte picks the piece size and limits; the rest is the stream. Beyond "no
 * crash, no leak" it checks a property: feeding in pieces yields exactly the
 * events (and the error) of feeding the whole input at once.
 *
 * Built with clang -fsanitize=fuzzer (without fuzz-main.c) it is a libFuzzer
 * target; linked with tests/fuzz/fuzz-main.c it replays the files given on
 * the command line plus mutations (the CTest "fuzz" run). */
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
