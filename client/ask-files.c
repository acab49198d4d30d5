/* ask-files.c — the files "moactl ask -f" and "moactl review" attach to a
 * question: each read (a file, or "-" for standard input), converted to
 * UTF-8 text the way ingest converts it (common/doc-text.c: gzip, HTML, PDF,
 * UTF-16, Latin-1) and sent in the request's moa.documents, so moad uses
 * them for this question only and stores nothing. --doc patterns go in
 * moa.doc_filter. The daemon's limits (limits.max_ask_*) are its own; the
 * bounds here only stop moactl from reading absurd amounts. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doc-text.h"
#include "file-read.h"
#include "utf8.h"
#include "moactl.h"

/* The title a citation names: the argument as given (unique in practice,
 * and what the user typed), or its base name when that is too long. */
static const char *file_title(const char *arg) {
        const char *base = strrchr(arg, '/');

        if (streq(arg, "-"))
                return "stdin";
        if (strlen(arg) <= MOACTL_MAX_TITLE_BYTES)
                return arg;
        base = base ? base + 1 : arg;
        return strlen(base) <= MOACTL_MAX_TITLE_BYTES ? base : NULL;
}

/* One file's document object, or an exit code with the reason printed. */
static int attach_one(const char *arg, int *stdin_used, json_t **ret) {
        _cleanup_free_ char *data = NULL, *text = NULL, *abs = NULL;
        char format[128] = "", why[512] = "";
        const ConvertLimits lim = moactl_convert_limits();
        const char *title = file_title(arg);
        size_t size = 0, len = 0;
        int r;

        if (!title || !utf8_valid(arg, strlen(arg))) {
                fprintf(stderr, "moactl: cannot attach %s: the file name is not a usable title\n", arg);
                return MOACTL_EXIT_USAGE;
        }
        if (streq(arg, "-")) {
                if ((*stdin_used)++)
                        return usage_error("-f - (standard input) can be given once");
                r = text_read_fd(STDIN_FILENO, MOACTL_MAX_ASK_FILE, &data, &size);
        } else {
                struct stat st;
                int fd = open(arg, O_RDONLY | O_CLOEXEC | O_NOCTTY);

                if (fd < 0) {
                        fprintf(stderr, "moactl: cannot attach %s: %s\n", arg, strerror(errno));
                        return MOACTL_EXIT_FAILED;
                }
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        close(fd);
                        fprintf(stderr, "moactl: cannot attach %s: not a regular file\n", arg);
                        return MOACTL_EXIT_FAILED;
                }
                r = text_read_fd(fd, MOACTL_MAX_ASK_FILE, &data, &size);
                close(fd);
                abs = realpath(arg, NULL);
        }
        if (r < 0) {
                if (r == -EFBIG)
                        fprintf(stderr, "moactl: cannot attach %s: larger than %u MiB\n", arg,
                                MOACTL_MAX_ASK_FILE >> 20);
                else
                        fprintf(stderr, "moactl: cannot attach %s: %s\n", arg, strerror(-r));
                return MOACTL_EXIT_FAILED;
        }
        r = doc_text(streq(arg, "-") ? "stdin" : arg, data, size, MOACTL_MAX_ASK_FILE, &lim, &text, &len,
                     format, sizeof format, why, sizeof why);
        if (r == -ENOMEM) {
                fputs("moactl: out of memory\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        if (r < 0) {
                fprintf(stderr, "moactl: cannot attach %s: %s\n", arg, why);
                return MOACTL_EXIT_FAILED;
        }
        *ret = json_pack("{s:s,s:s,s:s%}", "title", title, "source", abs ? abs : "", "text", text, len);
        if (!*ret) {
                fputs("moactl: out of memory\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        return MOACTL_EXIT_OK;
}

int ask_attach(json_t *moa, const char *const *files, size_t n_files, const char *const *docs,
               size_t n_docs) {
        int stdin_used = 0;

        if (n_files > 0) {
                json_t *a = json_array();

                if (!a || json_object_set_new(moa, "documents", a) < 0)
                        return MOACTL_EXIT_FAILED;
                for (size_t i = 0; i < n_files; i++) {
                        json_t *d = NULL;
                        int code = attach_one(files[i], &stdin_used, &d);

                        if (code != MOACTL_EXIT_OK)
                                return code;
                        if (json_array_append_new(a, d) < 0)
                                return MOACTL_EXIT_FAILED;
                }
        }
        if (n_docs > 0) {
                json_t *a = json_array();

                if (!a || json_object_set_new(moa, "doc_filter", a) < 0)
                        return MOACTL_EXIT_FAILED;
                for (size_t i = 0; i < n_docs; i++)
                        if (json_array_append_new(a, json_string(docs[i])) < 0)
                                return MOACTL_EXIT_FAILED;
        }
        return MOACTL_EXIT_OK;
}
