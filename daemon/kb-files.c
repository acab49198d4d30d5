/* kb-files.c — synchronous ingest of files and directories into a Kb, used
 * at daemon start to load the shipped sample knowledge into an empty
 * knowledge base (and by tests). */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "file-read.h"
#include "ingest.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

#define KB_MAX_DIR_FILES 10000u

/* Read a whole regular file of at most KB_MAX_DOCUMENT_BYTES. Its sha256,
 * size and mtime are stored as moactl ingest stores them, so ingesting
 * the same directory later finds these documents unchanged. */
static int ingest_one_file(Kb *kb, const char *path, const KbChunkOpts *opts) {
        _cleanup_free_ char *text = NULL, *abs = NULL;
        _cleanup_close_ int fd = -1;
        KbDocMeta meta = KB_DOC_META_NONE;
        char sha[65];
        struct stat st;
        size_t len = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        r = text_read_fd(fd, KB_MAX_DOCUMENT_BYTES, &text, &len);
        if (r < 0)
                return r == -EFBIG ? -E2BIG : r;
        const char *title = strrchr(path, '/');
        title = title ? title + 1 : path;
        if (isempty(title))
                return -EINVAL;
        sha256_hex(text, len, sha);
        meta.sha256 = sha;
        meta.file_bytes = (int64_t) len;
        /* The daemon takes no times before 1970, as for an upload. */
        if (st.st_mtim.tv_sec >= 0)
                meta.mtime = (int64_t) st.st_mtim.tv_sec;
        /* The source as moactl names it (resolved), so the two agree. */
        abs = realpath(path, NULL);
        return kb_ingest_meta(kb, title, abs ?: path, text, len, opts, &meta);
}

static int has_knowledge_suffix(const char *name) {
        static const char *const suffixes[] = {".md", ".txt", ".text"};
        size_t n = strlen(name);
        if (name[0] == '.')
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                size_t k = strlen(suffixes[i]);
                if (n > k && streq(name + n - k, suffixes[i]))
                        return 1;
        }
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/**
 * kb_ingest_path() - ingest a file, or the .md, .txt and .text files of a
 * directory in name order. See ingest.h.
 */
int kb_ingest_path(Kb *kb, const char *path, const KbChunkOpts *opts, int *ret_docs) {
        if (!kb || isempty(path))
                return -EINVAL;

        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode)) {
                int r = ingest_one_file(kb, path, opts);
                if (r < 0)
                        return r;
                if (ret_docs)
                        *ret_docs = 1;
                return 0;
        }

        DIR *d = opendir(path);
        if (!d)
                return -errno;

        char **names = NULL;
        size_t n = 0, cap = 0;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!has_knowledge_suffix(de->d_name) || streq(de->d_name, "README.md"))
                        continue;
                if (n >= KB_MAX_DIR_FILES) {
                        log_warning("kb: %s has more than %u files, ignoring the rest", path,
                                    KB_MAX_DIR_FILES);
                        break;
                }
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 32;
                        char **nn = realloc(names, nc * sizeof(char *));
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
        }
        closedir(d);

        int docs = 0;
        if (r >= 0 && n > 0)
                qsort(names, n, sizeof(char *), cmp_str);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/%s", path, names[i]) < 0) {
                        r = -ENOMEM;
                        break;
                }
                int k = ingest_one_file(kb, p, opts);
                if (k == -E2BIG || k == -EINVAL || k == -EISDIR || k == -EBADFD) {
                        log_warning_errno(k, "kb: skipping %s", p);
                        continue;
                }
                if (k < 0) {
                        r = k;
                        break;
                }
                docs++;
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
        if (ret_docs)
                *ret_docs = docs;
        return 0;
}
