/* ingest-files.c — the files of one ingest run ("moactl ingest", or a
 * server-side ingest job, jobs-ingest.c) and their titles:
 * arguments resolved with realpath(3), directories walked in name order
 * with bounds on count, depth and path length, --include/--exclude by
 * fnmatch(3), titles relative to the base directory. */
#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include "ingest-files.h"
#include "util.h"

void ingest_files_done(IngestFiles *f) {
        for (size_t i = 0; i < f->n; i++) {
                free(f->files[i].path);
                free(f->files[i].title);
        }
        free(f->files);
        for (size_t i = 0; i < f->n_seen; i++)
                free(f->seen[i]);
        free(f->seen);
        *f = (IngestFiles){};
}

int path_common_parent(const char *const *paths, size_t n, char **ret) {
        _cleanup_free_ char *common = NULL;
        size_t len;

        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                const char *p = paths[i], *slash;
                size_t plen;

                if (p[0] != '/')
                        return -EINVAL;
                slash = strrchr(p, '/');
                plen = (size_t) (slash - p); /* the parent; 0 for "/x" */
                if (!common) {
                        common = strndup(p, plen);
                        if (!common)
                                return -ENOMEM;
                        continue;
                }
                /* Cut common back to the longest prefix of whole components. */
                len = 0;
                while (common[len] && len < plen && common[len] == p[len])
                        len++;
                if (!(common[len] == 0 && (len == plen || p[len] == '/'))) {
                        while (len > 0 && !(common[len] == '/' && (len == plen || p[len] == '/')))
                                len--;
                }
                common[len] = 0;
        }
        if (common[0] == 0) {
                free(common);
                common = strdup("/");
                if (!common)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(common);
        return 0;
}

int path_relative(const char *base, const char *path, char **ret) {
        size_t n = strlen(base);
        char *r;

        if (streq(base, "/"))
                n = 0;
        else if (strncmp(path, base, n) != 0 || path[n] != '/')
                return -EXDEV;
        if (path[n] != '/' || path[n + 1] == 0)
                return -EXDEV;
        r = strdup(path + n + 1);
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

static int glob_match(const char *glob, const char *rel) {
        const char *name = strrchr(rel, '/');

        if (fnmatch(glob, rel, 0) == 0)
                return 1;
        return !strchr(glob, '/') && name && fnmatch(glob, name + 1, 0) == 0;
}

static int match_either(const char *glob, const char *rel, const char *rel_arg) {
        return glob_match(glob, rel) || (rel_arg && glob_match(glob, rel_arg));
}

int ingest_filter_match(const IngestFilter *f, const char *rel, const char *rel_arg) {
        int in = f->n_include == 0;

        for (size_t i = 0; !in && i < f->n_include; i++)
                in = match_either(f->include[i], rel, rel_arg);
        for (size_t i = 0; in && i < f->n_exclude; i++)
                in = !match_either(f->exclude[i], rel, rel_arg);
        return in;
}

static int add_file(IngestFiles *files, const char *path, const char *base, const char *title,
                    const char *error) {
        IngestFile *f;
        int r;

        if (files->n >= INGEST_MAX_FILES)
                return -E2BIG;
        if (files->n == files->cap) {
                size_t nc = files->cap ? files->cap * 2 : 64;
                IngestFile *nf = realloc(files->files, nc * sizeof(*nf));
                if (!nf)
                        return -ENOMEM;
                files->files = nf;
                files->cap = nc;
        }
        f = &files->files[files->n];
        *f = (IngestFile){.error = error};
        f->path = strdup(path);
        if (!f->path)
                return -ENOMEM;
        if (title)
                f->title = strdup(title);
        else if (!error) {
                r = path_relative(base, path, &f->title);
                if (r == -EXDEV)
                        f->error = "not below the base directory (--base)";
                else if (r < 0) {
                        free(f->path);
                        return r;
                }
        }
        if (title && !f->title) {
                free(f->path);
                return -ENOMEM;
        }
        files->n++;
        return 0;
}

static int add_seen(IngestFiles *files, const char *rel) {
        if (files->n_seen == files->cap_seen) {
                size_t nc = files->cap_seen ? files->cap_seen * 2 : 64;
                char **ns = realloc(files->seen, nc * sizeof(*ns));
                if (!ns)
                        return -ENOMEM;
                files->seen = ns;
                files->cap_seen = nc;
        }
        files->seen_sorted = 0;
        files->seen[files->n_seen] = strdup(rel);
        if (!files->seen[files->n_seen])
                return -ENOMEM;
        files->n_seen++;
        return 0;
}

static int cmp_name(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* Is the link @path another name of a regular file that the walk of
 * @root takes itself: inside @root, in no hidden directory, passing
 * @filter? */
static int links_to_walked_file(const char *root, const char *base, const char *path,
                                const IngestFilter *filter) {
        _cleanup_free_ char *target = realpath(path, NULL), *rel = NULL;
        size_t rl = streq(root, "/") ? 0 : strlen(root);
        if (!target || strncmp(target, root, rl) != 0 || target[rl] != '/' || strstr(target + rl, "/."))
                return 0;
        if (path_relative(base, target, &rel) < 0)
                return 0;
        return ingest_filter_match(filter, rel, target + rl + 1);
}

/* @root is the directory argument @dir lies in (for filters). */
static int walk(IngestFiles *files, const char *root, const char *dir, const char *base,
                const IngestFilter *filter, unsigned depth) {
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;
        int r = 0;

        d = opendir(dir);
        if (!d)
                return add_file(files, dir, base, NULL, "cannot open the directory");
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue; /* ".", "..", and hidden files such as .git */
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 32;
                        char **nn = realloc(names, nc * sizeof(*nn));
                        if (!nn) {
                                r = -ENOMEM;
                                break;
                        }
                        names = nn;
                        cap = nc;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
                if (n > INGEST_MAX_FILES) {
                        r = -E2BIG;
                        break;
                }
        }
        closedir(d);
        if (r < 0) {
                strv_free(names, n);
                return r;
        }
        if (n > 0)
                qsort(names, n, sizeof(char *), cmp_name);

        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *path = NULL, *rel = NULL;
                struct stat st, lst;

                if (asprintf(&path, "%s%s%s", dir, streq(dir, "/") ? "" : "/", names[i]) < 0) {
                        path = NULL;
                        r = -ENOMEM;
                        break;
                }
                if (strlen(path) >= INGEST_MAX_PATH) {
                        r = add_file(files, path, base, NULL, "path longer than 4095 bytes");
                        continue;
                }
                if (lstat(path, &lst) < 0 || stat(path, &st) < 0) {
                        /* A dangling link, or gone meanwhile. */
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        if (S_ISLNK(lst.st_mode))
                                continue; /* no loops */
                        if (depth + 1 > INGEST_MAX_DEPTH) {
                                r = add_file(files, path, base, NULL, "directory nested too deep");
                                continue;
                        }
                        r = walk(files, root, path, base, filter, depth + 1);
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        continue; /* sockets, fifos, devices */
                if (S_ISLNK(lst.st_mode) && links_to_walked_file(root, base, path, filter)) {
                        files->n_links++;
                        continue;
                }
                r = path_relative(base, path, &rel);
                if (r == -EXDEV) {
                        r = add_file(files, path, base, NULL, "not below the base directory (--base)");
                        continue;
                }
                if (r < 0)
                        break;
                r = add_seen(files, rel);
                if (r >= 0 &&
                    ingest_filter_match(filter, rel, path + strlen(root) + (streq(root, "/") ? 0 : 1)))
                        r = add_file(files, path, base, NULL, NULL);
        }
        strv_free(names, n);
        return r;
}

int ingest_files_add(IngestFiles *files, const char *arg, const char *base, const char *title,
                     const IngestFilter *filter) {
        _cleanup_free_ char *abs = NULL;
        struct stat st;

        abs = realpath(arg, NULL);
        if (!abs || stat(abs, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return walk(files, abs, abs, base, filter, 0);
        if (!S_ISREG(st.st_mode))
                return add_file(files, abs, base, NULL, "not a regular file");
        return add_file(files, abs, base, title, NULL);
}

int ingest_files_seen(IngestFiles *files, const char *rel) {
        if (!files->seen_sorted && files->n_seen > 0)
                qsort(files->seen, files->n_seen, sizeof(char *), cmp_name);
        files->seen_sorted = 1;
        return files->n_seen > 0 &&
               bsearch(&rel, files->seen, files->n_seen, sizeof(char *), cmp_name) != NULL;
}

/* By title, then by position: the first of equal titles sorts first. */
static int cmp_file(const void *a, const void *b) {
        const IngestFile *x = *(IngestFile *const *) a, *y = *(IngestFile *const *) b;
        int c = strcmp(x->title, y->title);

        return c != 0 ? c : (x > y) - (x < y);
}

int ingest_files_dedup(IngestFiles *files) {
        _cleanup_free_ IngestFile **v = NULL;
        size_t n = 0;

        if (files->n < 2)
                return 0;
        v = calloc(files->n, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < files->n; i++)
                if (files->files[i].title && !files->files[i].error)
                        v[n++] = &files->files[i];
        qsort(v, n, sizeof(*v), cmp_file);
        for (size_t i = 1; i < n; i++)
                if (streq(v[i]->title, v[i - 1]->title))
                        v[i]->error = "the same title as an earlier file (given twice?)";
        return 0;
}
