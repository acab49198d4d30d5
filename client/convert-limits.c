/* convert-limits.c — the limits moactl's converters run with: the shared
 * defaults (common/pdf-text.h), shortened or lengthened through
 * MOACTL_CONVERT_TIMEOUT and MOACTL_CONVERT_CPU (seconds), which tests use. */
#include "moactl.h"

/* A positive number of seconds from the environment, else @def. */
static unsigned env_seconds(const char *name, unsigned def) {
        const char *v = getenv(name);
        char *end;
        unsigned long n;

        if (!v || !*v)
                return def;
        errno = 0;
        n = strtoul(v, &end, 10);
        return errno || *end || n == 0 || n > 86400 ? def : (unsigned) n;
}

ConvertLimits moactl_convert_limits(void) {
        ConvertLimits l = CONVERT_LIMITS_DEFAULT;

        l.timeout_sec = env_seconds("MOACTL_CONVERT_TIMEOUT", l.timeout_sec);
        l.cpu_sec = env_seconds("MOACTL_CONVERT_CPU", l.cpu_sec);
        return l;
}
