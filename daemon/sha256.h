/* sha256.h — SHA-256 (FIPS 180-4) for "is this file unchanged?": moactl
 * ingest hashes each file, and moad hashes the sample knowledge it seeds,
 * so both agree. Small and self-contained: no crypto library for one
 * digest per file. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Sha256 {
        uint32_t h[8];
        uint64_t len; /* bytes hashed so far */
        uint8_t buf[64];
        size_t n; /* bytes in buf */
} Sha256;

/** sha256_init() - start a digest. */
void sha256_init(Sha256 *c);
/** sha256_update() - hash @n more bytes at @data. */
void sha256_update(Sha256 *c, const void *data, size_t n);
/** sha256_final_hex() - finish and write 64 lower-case hex digits and a NUL to @ret. */
void sha256_final_hex(Sha256 *c, char ret[static 65]);
/** sha256_hex() - the digest of @n bytes at @data as 64 hex digits in @ret. */
void sha256_hex(const void *data, size_t n, char ret[static 65]);
