/* plugin-module.c — plugin shared objects loaded from private, sealed
 * memfd copies and shared by file identity (see plugin-module.h). */
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "log.h"
#include "plugin-module.h"
#include "util.h"

/* How often a file that changes while it is being copied is read again. */
#define COPY_ATTEMPTS 3
/* How many fd numbers are tried when a /proc/self/fd/N name is still taken. */
#define NAME_ATTEMPTS 8

struct PluginModule {
        unsigned n_ref;
        char *path;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        int fd; /* the private copy; kept open while loaded, so its /proc name is ours */
        void *dl;
        PluginModule *next;
};

static PluginModule *modules; /* every loaded module, newest first */
static int no_private_copy;   /* memfd or /proc unusable here: dlopen the path (warned once) */

static int same_file(const PluginModule *m, const struct stat *st) {
        return m->dev == st->st_dev && m->ino == st->st_ino && m->size == st->st_size &&
               m->mtime.tv_sec == st->st_mtim.tv_sec && m->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static _printf_(3, 4) int fail(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

static int copy_fd(int in, int out, off_t size) {
        char buf[65536];
        off_t done = 0;

        while (done < size) {
                ssize_t n = read(in, buf, (size_t) MIN((off_t) sizeof buf, size - done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EBUSY; /* truncated under us */
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = write(out, buf + w, (size_t) (n - w));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                return -errno;
                        w += k;
                }
                done += n;
        }
        return 0;
}

/* Copy @path into a new sealed memfd. On success *ret_st is the identity
 * of the file that was copied (stable across the copy). */
static int copy_to_memfd(const char *path, struct stat *ret_st, char **ret_error) {
        _cleanup_free_ char *tmp = strdup(path);
        char name[128];
        int r = -EBUSY;

        if (!tmp)
                return -ENOMEM;
        snprintf(name, sizeof name, "moad-plugin:%.100s", basename(tmp));
        for (int attempt = 0; attempt < COPY_ATTEMPTS; attempt++) {
                _cleanup_close_ int in = -1, out = -1;
                struct stat st, after;

                in = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (in < 0)
                        return fail(ret_error, -errno, "cannot open: %s", strerror(errno));
                if (fstat(in, &st) < 0)
                        return fail(ret_error, -errno, "cannot stat: %s", strerror(errno));
                if (!S_ISREG(st.st_mode))
                        return fail(ret_error, -ENOEXEC, "not a regular file");
                if (st.st_size > (off_t) PLUGIN_MODULE_MAX_BYTES)
                        return fail(ret_error, -EFBIG, "larger than %u MiB", PLUGIN_MODULE_MAX_BYTES >> 20);
                out = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (out < 0)
                        return -errno; /* the caller falls back to the path */
                r = copy_fd(in, out, st.st_size);
                if (r < 0 && r != -EBUSY)
                        return fail(ret_error, r, "cannot read: %s", strerror(-r));
                if (r == 0 && fstat(in, &after) == 0 && after.st_size == st.st_size &&
                    after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
                    after.st_mtim.tv_nsec == st.st_mtim.tv_nsec) {
                        /* the copy is what was loaded: nobody may change it */
                        (void) fcntl(out, F_ADD_SEALS,
                                     F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
                        *ret_st = st;
                        return TAKE_FD(out);
                }
                r = -EBUSY; /* rewritten while we read it (a build still running): again */
        }
        return fail(ret_error, r, "the file kept changing while it was read (still being built?)");
}

/* dlopen the copy in @*fd by its /proc name. glibc matches names before
 * anything else, so a name still held by a library that outlived its
 * dlclose would hand back that library: then another fd number is used. */
static void *dlopen_fd(int *fd, char **ret_error) {
        char name[64];

        for (int attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
                snprintf(name, sizeof name, "/proc/self/fd/%d", *fd);
                void *old = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
                if (old) {
                        (void) dlclose(old);
                        int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, *fd + 1);
                        if (nfd < 0)
                                break;
                        close(*fd);
                        *fd = nfd;
                        continue;
                }
                (void) dlerror();
                void *dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
                if (!dl) {
                        const char *e = dlerror();
                        fail(ret_error, -ENOEXEC, "dlopen failed: %s", e ? e : "unknown error");
                }
                return dl;
        }
        fail(ret_error, -EBUSY, "no free name to load a private copy under");
        return NULL;
}

static void module_free(PluginModule *m) {
        for (PluginModule **p = &modules; *p; p = &(*p)->next)
                if (*p == m) {
                        *p = m->next;
                        break;
                }
        if (m->dl)
                (void) dlclose(m->dl);
        if (m->fd >= 0)
                close(m->fd);
        free(m->path);
        free(m);
}

int plugin_module_open(const char *path, PluginModule **ret, int *ret_fresh, char **ret_error) {
        struct stat st;
        PluginModule *m;
        int r;

        if (isempty(path) || !ret)
                return -EINVAL;
        if (stat(path, &st) < 0)
                return fail(ret_error, -errno, "%s", strerror(errno));
        for (m = modules; m; m = m->next)
                if (streq(m->path, path) && same_file(m, &st)) {
                        *ret = plugin_module_ref(m);
                        if (ret_fresh)
                                *ret_fresh = 0;
                        return 0;
                }

        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->n_ref = 1;
        m->fd = -1;
        m->path = strdup(path);
        if (!m->path) {
                free(m);
                return -ENOMEM;
        }
        m->next = modules;
        modules = m;

        if (!no_private_copy && access("/proc/self/fd", F_OK) < 0) {
                no_private_copy = 1;
                log_warning("/proc is not mounted: plugins are loaded from their files, and a plugin "
                            "rebuilt in place needs a restart to be loaded again");
        }
        if (!no_private_copy) {
                r = copy_to_memfd(path, &st, ret_error);
                if (r >= 0) {
                        m->fd = r;
                        m->dl = dlopen_fd(&m->fd, ret_error);
                        if (!m->dl) {
                                module_free(m);
                                return -ENOEXEC;
                        }
                } else if (r == -ENOSYS || r == -EPERM || r == -EMFILE || r == -ENFILE) {
                        no_private_copy = 1;
                        log_warning_errno(r, "cannot make private copies of plugins (memfd_create): "
                                             "a plugin rebuilt in place needs a restart to be loaded again");
                } else {
                        module_free(m);
                        return r;
                }
        }
        if (!m->dl) {
                (void) dlerror();
                m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
                if (!m->dl) {
                        const char *e = dlerror();
                        fail(ret_error, -ENOEXEC, "dlopen failed: %s", e ? e : "unknown error");
                        module_free(m);
                        return -ENOEXEC;
                }
        }
        m->dev = st.st_dev;
        m->ino = st.st_ino;
        m->size = st.st_size;
        m->mtime = st.st_mtim;
        if (ret_fresh)
                *ret_fresh = 1;
        *ret = m;
        return 0;
}

PluginModule *plugin_module_ref(PluginModule *m) {
        if (m)
                m->n_ref++;
        return m;
}

PluginModule *plugin_module_unref(PluginModule *m) {
        if (m && --m->n_ref == 0)
                module_free(m);
        return NULL;
}

void *plugin_module_sym(PluginModule *m, const char *name) {
        if (!m || !name)
                return NULL;
        (void) dlerror();
        return dlsym(m->dl, name);
}

unsigned plugin_module_count(void) {
        unsigned n = 0;
        for (const PluginModule *m = modules; m; m = m->next)
                n++;
        return n;
}
