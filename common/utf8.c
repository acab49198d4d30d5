/* utf8.c — strict UTF-8 validation, as JSON and the knowledge base need
 * it; shared by moactl and the converters in common/. */
#include "utf8.h"
#include "util.h"

int utf8_valid(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;

        while (p < end) {
                unsigned c = *p;
                size_t k;
                uint32_t cp;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        k = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        k = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        k = 3, cp = c & 0x07;
                else
                        return 0;
                if ((size_t) (end - p) <= k)
                        return 0;
                for (size_t i = 1; i <= k; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
                if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
                p += k + 1;
        }
        return 1;
}
