/* cmd-docs.c — an agent's knowledge from the command line: ingest files
 * and directory trees (titles relative to a base, unchanged files skipped
 * by sha256, one request per file, progress on stderr, going on past
 * refusals), --sync a directory, list the documents, delete one by title. */
#include <fcntl.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "doc-text.h"
#include "file-read.h"
#include "utf8.h"
#include "ingest-files.h"
#include "moactl.h"
#include "sha256.h"

#define DOCS_DEFAULT_TIMEOUT_SEC 30L
#define INGEST_DEFAULT_TIMEOUT_SEC 600L

/* The one agent these commands work on: exactly one --agent. */
static int one_agent(const Moactl *m, const char *cmd, char **ret_escaped) {
        int r;

        if (m->n_agents != 1)
                return usage_error("%s needs exactly one --agent NAME", cmd);
        if (isempty(m->agents[0]))
                return usage_error("the agent name is empty");
        r = ctl_escape(m->agents[0], ret_escaped);
        if (r < 0)
                return usage_error("bad agent name: %s", strerror(-r));
        return MOACTL_EXIT_OK;
}

/* Stores one of ingest's options (see moactl.h). */
int ingest_option(IngestOpts *o, int which, const char *arg) {
        static const char *const names[] = {"--base", "--title",   "--include", "--exclude",
                                            "--sync", "--dry-run", "--server"};

        if (which != 'r' && (which < 0 || (size_t) which >= ELEMENTSOF(names)))
                return -EINVAL;
        if (!o->given)
                o->given = which == 'r' ? "-r" : names[which];
        if (which == 'r') {
                o->recursive = 1;
                return 0;
        }
        if (which == 6) {
                o->server = 1;
                return 0;
        }
        if (which != 5 && isempty(arg))
                return -EINVAL;
        switch (which) {
        case 0:
                o->base = arg;
                break;
        case 1:
                o->title = arg;
                break;
        case 2:
        case 3:
                if (o->n_include + o->n_exclude >= MOACTL_MAX_GLOBS)
                        return -E2BIG;
                if (which == 2)
                        o->include[o->n_include++] = arg;
                else
                        o->exclude[o->n_exclude++] = arg;
                break;
        case 4:
                o->sync = arg;
                break;
        default:
                o->dry_run = 1;
        }
        return 0;
}

/* One document the agent already has; the strings point into Known.root. */
typedef struct KnownDoc {
        const char *title;
        const char *sha256; /* "" when unknown */
        const char *source; /* "" when unknown */
} KnownDoc;

/* The agent's documents before this run, and the daemon's limits. */
typedef struct Known {
        json_t *root;
        KnownDoc *docs; /* sorted by title */
        size_t n;
        uint64_t max_ingest_bytes;
        size_t max_title_bytes;
} Known;

static void known_done(Known *k) {
        json_decref(k->root);
        free(k->docs);
        *k = (Known){};
}

static int known_cmp(const void *a, const void *b) {
        return strcmp(((const KnownDoc *) a)->title, ((const KnownDoc *) b)->title);
}

static const KnownDoc *known_find(const Known *k, const char *title) {
        KnownDoc key = {.title = title};

        return k->n > 0 ? bsearch(&key, k->docs, k->n, sizeof(KnownDoc), known_cmp) : NULL;
}

/* A bound on what moactl gathers, whatever a daemon answers. */
#define DOCS_MAX_LISTED 10000000u

/* GET every page of the listing @path (following "has_more" with
 * ?after=the last title) into *@ret: the first page's object holding
 * every page's documents. Returns a MOACTL_EXIT_* code (after printing
 * why on failure). */
static int docs_list_all(const Moactl *m, const char *path, json_t **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *after = NULL;
        json_t *all = NULL;

        for (;;) {
                _cleanup_(reply_done) Reply reply = {};
                _cleanup_(json_decrefp) json_t *page = NULL;
                _cleanup_free_ char *esc = NULL, *url = NULL;
                json_t *docs;
                int code;

                if (after && ctl_escape(after, &esc) < 0)
                        return MOACTL_EXIT_FAILED;
                if (asprintf(&url, "%s%s%s", path, esc ? "?after=" : "", esc ?: "") < 0) {
                        url = NULL;
                        return MOACTL_EXIT_FAILED;
                }
                code = ctl_call_json(m, "GET", url, NULL,
                                     m->timeout_sec >= 0 ? m->timeout_sec : DOCS_DEFAULT_TIMEOUT_SEC, &reply,
                                     &page);
                if (code != MOACTL_EXIT_OK)
                        return ctl_fail(&reply, code);
                docs = json_object_get(page, "documents");
                if (!json_is_array(docs)) {
                        fputs("moactl: moad's document list has no \"documents\" array\n", stderr);
                        return MOACTL_EXIT_PROTOCOL;
                }
                if (!root) {
                        root = json_incref(page);
                        all = docs;
                } else if (json_array_extend(all, docs) < 0)
                        return MOACTL_EXIT_FAILED;
                if (!json_is_true(json_object_get(page, "has_more")))
                        break;
                /* The next page starts after this one's last title, which
                 * must sort after the previous one: a listing that does
                 * not advance (or never ends) is moad's error, not a loop. */
                const char *last = json_str(json_array_get(docs, json_array_size(docs) - 1), "title", NULL);
                if (!last || (after && strcmp(last, after) <= 0) || json_array_size(all) > DOCS_MAX_LISTED) {
                        fputs("moactl: moad's document list does not advance from page to page\n", stderr);
                        return MOACTL_EXIT_PROTOCOL;
                }
                free(after);
                after = strdup(last);
                if (!after)
                        return MOACTL_EXIT_FAILED;
        }
        (void) json_object_set_new(root, "has_more", json_false());
        *ret = TAKE_PTR(root);
        return MOACTL_EXIT_OK;
}

/* GET the agent's documents. Returns a MOACTL_EXIT_* code (after printing
 * why on failure). */
static int known_load(const Moactl *m, const char *path, Known *ret) {
        json_t *docs, *v, *limits;
        Known k = {.max_ingest_bytes = 16U << 20, .max_title_bytes = 512};
        size_t i;
        int code;

        code = docs_list_all(m, path, &k.root);
        if (code != MOACTL_EXIT_OK)
                return code;
        docs = json_object_get(k.root, "documents");
        limits = json_object_get(k.root, "limits");
        if (json_int(limits, "max_ingest_bytes", 0) > 0)
                k.max_ingest_bytes = (uint64_t) json_int(limits, "max_ingest_bytes", 0);
        if (json_int(limits, "max_title_bytes", 0) > 0)
                k.max_title_bytes = (size_t) json_int(limits, "max_title_bytes", 0);
        k.docs = calloc(json_array_size(docs) + 1, sizeof(KnownDoc));
        if (!k.docs) {
                known_done(&k);
                return MOACTL_EXIT_FAILED;
        }
        json_array_foreach(docs, i, v) {
                const char *t = json_str(v, "title", NULL);
                if (!t)
                        continue;
                k.docs[k.n++] = (KnownDoc){.title = t,
                                           .sha256 = json_str(v, "sha256", ""),
                                           .source = json_str(v, "source", "")};
        }
        qsort(k.docs, k.n, sizeof(KnownDoc), known_cmp);
        *ret = k;
        return MOACTL_EXIT_OK;
}

/* What one run did, for the summary line. */
typedef struct Tally {
        size_t added, replaced, unchanged, refused, failed, removed;
        char refused_list[400]; /* "name: reason; ..." of the first few */
} Tally;

static void tally_refused(Tally *t, const char *name, const char *why) {
        size_t n = strlen(t->refused_list);

        t->refused++;
        if (t->refused > 3) {
                if (t->refused == 4 && n + 6 < sizeof(t->refused_list))
                        strcat(t->refused_list, "; ...");
                return;
        }
        snprintf(t->refused_list + n, sizeof(t->refused_list) - n, "%s%s: %s", n ? "; " : "", name, why);
}

static void progress(size_t i, size_t n, const char *file, const char *fmt, ...) _printf_(4, 5);
static void progress(size_t i, size_t n, const char *file, const char *fmt, ...) {
        char msg[1200];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (n > 0)
                fprintf(stderr, "[%zu/%zu] ", i, n);
        print_sanitized(stderr, file, strlen(file));
        fputs(": ", stderr);
        print_sanitized(stderr, msg, strlen(msg));
        fputc('\n', stderr);
}

/* A line of a dry run's plan, on stdout. */
static void plan(const char *action, const char *title, const char *why) {
        printf("%s ", action);
        print_sanitized(stdout, title, strlen(title));
        if (why) {
                fputs(": ", stdout);
                print_sanitized(stdout, why, strlen(why));
        }
        fputc('\n', stdout);
}

typedef struct IngestRun {
        const Moactl *m;
        const char *path; /* /v1/moa/agents/{agent}/documents */
        long timeout;
        Known known;
        Tally tally;
} IngestRun;

static void ingest_run_done(IngestRun *run) {
        known_done(&run->known);
}

/* Reads @f, skips it when unchanged, converts and sends it. Returns
 * MOACTL_EXIT_OK to go on with the next file, else the exit code to stop
 * with (every further file would fail the same way). */
static int ingest_one(IngestRun *run, const IngestFile *f, size_t i, size_t n) {
        const IngestOpts *o = &run->m->ingest;
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *doc = NULL, *root = NULL;
        _cleanup_free_ char *data = NULL, *text = NULL, *body = NULL;
        _cleanup_close_ int fd = -1;
        const char *name = f->title ?: f->path;
        char sha[65], why[1100] = "", format[64] = "";
        const ConvertLimits lim = moactl_convert_limits();
        const KnownDoc *old;
        size_t size = 0, len = 0;
        struct stat st;
        long long c;
        int code, r;

        if (f->error) {
                progress(i, n, name, "refused: %s", f->error);
                tally_refused(&run->tally, name, f->error);
                return MOACTL_EXIT_OK;
        }
        if (strlen(f->title) > run->known.max_title_bytes) {
                snprintf(why, sizeof(why), "title longer than %zu bytes (a shorter --base helps)",
                         run->known.max_title_bytes);
                goto refuse;
        }
        if (!utf8_valid(f->title, strlen(f->title)) || !utf8_valid(f->path, strlen(f->path))) {
                snprintf(why, sizeof(why), "file name is not valid UTF-8");
                goto refuse;
        }
        fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                snprintf(why, sizeof(why), "%s", strerror(errno));
                goto refuse;
        }
        if ((uint64_t) st.st_size > MOACTL_MAX_INGEST_FILE) {
                snprintf(why, sizeof(why), "larger than %u MiB", MOACTL_MAX_INGEST_FILE >> 20);
                goto refuse;
        }
        r = text_read_fd(fd, MOACTL_MAX_INGEST_FILE, &data, &size);
        if (r < 0) {
                snprintf(why, sizeof(why), "%s",
                         r == -EFBIG ? "grew larger than the limit while read" : strerror(-r));
                goto refuse;
        }
        sha256_hex(data, size, sha);
        old = known_find(&run->known, f->title);
        if (old && strcasecmp(old->sha256, sha) == 0) {
                run->tally.unchanged++;
                if (!o->dry_run)
                        progress(i, n, name, "unchanged");
                return MOACTL_EXIT_OK;
        }

        r = doc_text(f->path, data, size, MOACTL_MAX_INGEST_FILE, &lim, &text, &len, format, sizeof(format),
                     why, sizeof(why));
        if (r == -ENOMEM)
                return MOACTL_EXIT_FAILED;
        if (r < 0)
                goto refuse;
        data = mfree(data);

        doc = json_pack("{s:s,s:s,s:s,s:I}", "title", f->title, "source", f->path, "sha256", sha, "size",
                        (json_int_t) size);
        if (!doc || json_object_set_new(doc, "text", json_stringn(text, len)) < 0)
                return MOACTL_EXIT_FAILED;
        /* The daemon takes no times before 1970; such a file's is unknown. */
        if (st.st_mtim.tv_sec >= 0 && json_object_set_new(doc, "mtime", json_integer(st.st_mtim.tv_sec)) < 0)
                return MOACTL_EXIT_FAILED;
        text = mfree(text);
        body = json_dumps(doc, JSON_COMPACT);
        if (!body)
                return MOACTL_EXIT_FAILED;
        if (strlen(body) > run->known.max_ingest_bytes) {
                snprintf(why, sizeof(why),
                         "too large: %zu bytes of text, moad takes at most %llu (max_ingest_bytes)", len,
                         (unsigned long long) run->known.max_ingest_bytes);
                goto refuse;
        }
        if (o->dry_run) {
                plan(old ? "replace" : "add", f->title, NULL);
                if (old)
                        run->tally.replaced++;
                else
                        run->tally.added++;
                return MOACTL_EXIT_OK;
        }

        code = ctl_call_json(run->m, "POST", run->path, body, run->timeout, &reply, &root);
        if (code == MOACTL_EXIT_CONNECT || code == MOACTL_EXIT_USAGE ||
            (code == MOACTL_EXIT_FAILED && reply.status == 403))
                return ctl_fail(&reply, code);
        if (code == MOACTL_EXIT_FAILED && (reply.status == 413 || reply.status == 400)) {
                /* The daemon refused this document, not the run. */
                snprintf(why, sizeof(why), "%s", reply.error);
                goto refuse;
        }
        if (code != MOACTL_EXIT_OK) {
                progress(i, n, name, "error: %s", reply.error);
                run->tally.failed++;
                return MOACTL_EXIT_OK;
        }
        if (run->m->json)
                print_raw(&reply);
        c = json_int(root, "chunks", -1);
        if (json_is_true(json_object_get(root, "replaced")))
                run->tally.replaced++;
        else
                run->tally.added++;
        progress(i, n, name, "%s (%lld chunk%s%s%s)",
                 json_is_true(json_object_get(root, "replaced")) ? "replaced" : "added", c < 0 ? 0 : c,
                 c == 1 ? "" : "s", format[0] ? "; " : "", format);
        return MOACTL_EXIT_OK;

refuse:
        if (o->dry_run)
                plan("refuse", name, why);
        else
                progress(i, n, name, "refused: %s", why);
        tally_refused(&run->tally, name, why);
        return MOACTL_EXIT_OK;
}

/* The files of this run that got a title, by path, to find a document's
 * file from its source. */
typedef struct ByPath {
        const IngestFile **v;
        size_t n;
} ByPath;

static int by_path_cmp(const void *a, const void *b) {
        return strcmp((*(const IngestFile *const *) a)->path, (*(const IngestFile *const *) b)->path);
}

static int by_path_init(ByPath *bp, const IngestFiles *files) {
        bp->v = calloc(files->n + 1, sizeof(*bp->v));
        if (!bp->v)
                return -ENOMEM;
        for (size_t i = 0; i < files->n; i++)
                if (files->files[i].title && !files->files[i].error)
                        bp->v[bp->n++] = &files->files[i];
        qsort(bp->v, bp->n, sizeof(*bp->v), by_path_cmp);
        return 0;
}

static const IngestFile *by_path_find(const ByPath *bp, const char *path) {
        IngestFile key = {.path = (char *) path};
        const IngestFile *k = &key, **f;

        f = bp->n > 0 ? bsearch(&k, bp->v, bp->n, sizeof(*bp->v), by_path_cmp) : NULL;
        return f ? *f : NULL;
}

/* Whether @a and @b name one file relative to two different bases: one is
 * the other with leading directories ("legal/tenancy.md", "tenancy.md").
 * A title given with --title is not such a form and is left alone. */
static int same_file_title(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);

        if (la == lb)
                return 0;
        if (la < lb)
                return same_file_title(b, a);
        return a[la - lb - 1] == '/' && streq(a + la - lb, b);
}

/* A document of the same file as @f under an older title (another base):
 * the title moactl gave the file before its default base was the one
 * directory argument, or the file name the daemon's seeding gave it. */
static const IngestFile *older_title_of(const ByPath *bp, const KnownDoc *d) {
        const IngestFile *f = isempty(d->source) ? NULL : by_path_find(bp, d->source);

        return f && !streq(f->title, d->title) && same_file_title(f->title, d->title) ? f : NULL;
}

/* Without --sync: say which documents hold a file of this run under
 * another title, so a knowledge base never keeps both silently. */
static int note_older_titles(IngestRun *run, const IngestFiles *files) {
        ByPath bp = {};
        const char *agent = run->m->agents[0];

        if (by_path_init(&bp, files) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < run->known.n; i++) {
                const KnownDoc *d = &run->known.docs[i];
                const IngestFile *f = older_title_of(&bp, d);

                if (!f)
                        continue;
                fputs("moactl: note: the documents ", stderr);
                print_sanitized(stderr, d->title, strlen(d->title));
                fputs(" and ", stderr);
                print_sanitized(stderr, f->title, strlen(f->title));
                fputs(" hold the same file; 'moactl ingest --sync DIR' keeps one title per file, "
                      "'moactl delete --agent ",
                      stderr);
                print_sanitized(stderr, agent, strlen(agent));
                fputs(" TITLE' removes one\n", stderr);
        }
        free(bp.v);
        return 0;
}

/* Whether the absolute path @path lies below the directory @dir. */
static int path_below(const char *dir, const char *path) {
        size_t n = strlen(dir);

        if (path[0] != '/')
                return 0;
        if (streq(dir, "/"))
                return path[1] != 0;
        return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] != 0;
}

/* Why --sync removes document @d, or NULL to keep it. A document belongs
 * to the synced directory @dir when its source lies below @dir (or, with
 * no absolute source, when its title lies under @prefix, which is not ""),
 * and it goes when its file is gone (unless the filters would have left
 * the file out: an excluded file's document stays), or when this run
 * ingested its file under another title. */
static const char *sync_why(const KnownDoc *d, IngestFiles *files, const ByPath *bp,
                            const IngestFilter *filter, const char *dir, const char *base,
                            const char *prefix, char *buf, size_t size) {
        const char *t = d->title, *rel_arg;
        const IngestFile *f;
        _cleanup_free_ char *rel = NULL;
        struct stat st;

        if (ingest_files_seen(files, t))
                return NULL; /* its file is here: this run handled it, or the filters keep it out */
        if (path_below(dir, d->source)) {
                rel_arg = d->source + (streq(dir, "/") ? 1 : strlen(dir) + 1);
                /* Hidden files are never walked; their documents came some other way. */
                if (rel_arg[0] == '.' || strstr(rel_arg, "/."))
                        return NULL;
                f = older_title_of(bp, d);
                if (f) {
                        snprintf(buf, size, "now titled %s", f->title);
                        return buf;
                }
                if (lstat(d->source, &st) == 0)
                        return NULL; /* there, but not taken: filtered, refused, or another title */
                if (path_relative(base, d->source, &rel) < 0)
                        return NULL;
                return ingest_filter_match(filter, rel, rel_arg) ? "file gone" : NULL;
        }
        if (d->source[0] == '/' || isempty(prefix) || strncmp(t, prefix, strlen(prefix)) != 0)
                return NULL;
        rel_arg = t + strlen(prefix);
        if (rel_arg[0] == '.' || strstr(rel_arg, "/."))
                return NULL;
        return ingest_filter_match(filter, t, rel_arg) ? "file gone" : NULL;
}

/* --sync: remove the documents sync_why() names. */
static int sync_remove(IngestRun *run, IngestFiles *files, const IngestFilter *filter, const char *dir,
                       const char *base, const char *prefix) {
        _cleanup_free_ const IngestFile **bpv = NULL;
        ByPath bp = {};

        if (by_path_init(&bp, files) < 0)
                return MOACTL_EXIT_FAILED;
        bpv = bp.v;
        for (size_t i = 0; i < run->known.n; i++) {
                const char *t = run->known.docs[i].title, *why;
                _cleanup_(reply_done) Reply reply = {};
                _cleanup_(json_decrefp) json_t *root = NULL;
                _cleanup_free_ char *esc = NULL, *path = NULL;
                char buf[INGEST_MAX_PATH + 32];
                int code, r;

                why = sync_why(&run->known.docs[i], files, &bp, filter, dir, base, prefix, buf, sizeof(buf));
                if (!why)
                        continue;
                if (run->m->ingest.dry_run) {
                        plan("remove", t, why);
                        run->tally.removed++;
                        continue;
                }
                r = ctl_escape(t, &esc);
                if (r < 0 || asprintf(&path, "%s/%s", run->path, esc) < 0) {
                        path = NULL;
                        progress(0, 0, t, "error: cannot build the URL");
                        run->tally.failed++;
                        continue;
                }
                code = ctl_call_json(run->m, "DELETE", path, NULL, run->timeout, &reply, &root);
                if (code == MOACTL_EXIT_CONNECT || (code == MOACTL_EXIT_FAILED && reply.status == 403))
                        return ctl_fail(&reply, code);
                if (code != MOACTL_EXIT_OK && reply.status != 404) {
                        progress(0, 0, t, "error: %s", reply.error);
                        run->tally.failed++;
                        continue;
                }
                if (run->m->json && code == MOACTL_EXIT_OK)
                        print_raw(&reply);
                progress(0, 0, t, "removed (%s)", why);
                run->tally.removed++;
        }
        return MOACTL_EXIT_OK;
}

static void print_summary(const IngestRun *run, const IngestFiles *files, const char *agent) {
        const Tally *t = &run->tally;

        if (run->m->ingest.dry_run)
                fputs("dry run: ", stderr);
        print_sanitized(stderr, agent, strlen(agent));
        if (run->m->ingest.dry_run)
                fprintf(stderr, ": would add %zu, replace %zu, remove %zu; %zu unchanged, %zu refused",
                        t->added, t->replaced, t->removed, t->unchanged, t->refused);
        else {
                fprintf(stderr, ": %zu added, %zu replaced, %zu unchanged, %zu refused", t->added,
                        t->replaced, t->unchanged, t->refused);
                if (run->m->ingest.sync)
                        fprintf(stderr, ", %zu removed", t->removed);
        }
        if (t->refused > 0) {
                fputs(" (", stderr);
                print_sanitized(stderr, t->refused_list, strlen(t->refused_list));
                fputc(')', stderr);
        }
        if (t->failed > 0)
                fprintf(stderr, ", %zu failed", t->failed);
        if (files->n_links > 0)
                fprintf(stderr, "; %zu %s to files ingested under their own names skipped", files->n_links,
                        files->n_links == 1 ? "link" : "links");
        fputc('\n', stderr);
}

/* realpath() of a directory option, or a usage error. */
static int option_dir(const char *opt, const char *arg, char **ret) {
        struct stat st;
        char *p = realpath(arg, NULL);

        if (!p || stat(p, &st) < 0) {
                int e = errno;
                free(p);
                return usage_error("%s %s: %s", opt, arg, strerror(e));
        }
        if (!S_ISDIR(st.st_mode)) {
                free(p);
                return usage_error("%s %s: not a directory", opt, arg);
        }
        *ret = p;
        return MOACTL_EXIT_OK;
}

/* The base directory titles are relative to; for --sync also the synced
 * directory and its title prefix ("" when it is the base). Without
 * --base, one directory argument (or --sync DIR) is its own base, so its
 * files are titled as moad titles the sample knowledge it seeds from a
 * directory; several arguments share their common parent. */
static int find_base(const IngestOpts *o, int argc, char **argv, char **ret_base, char **ret_sync,
                     char **ret_prefix) {
        _cleanup_free_ char *base = NULL, *sync = NULL, *rel = NULL;
        struct stat st;
        char **abs = NULL;
        size_t n = 0;
        int code = MOACTL_EXIT_OK, r;

        if (o->base) {
                code = option_dir("--base", o->base, &base);
                if (code != MOACTL_EXIT_OK)
                        return code;
        }
        if (o->sync) {
                code = option_dir("--sync", o->sync, &sync);
                if (code != MOACTL_EXIT_OK)
                        return code;
                if (!base && !(base = strdup(sync)))
                        return MOACTL_EXIT_FAILED;
                if (streq(base, sync))
                        *ret_prefix = strdup("");
                else {
                        r = path_relative(base, sync, &rel);
                        if (r == -EXDEV)
                                return usage_error("--sync %s is not below --base %s", o->sync, o->base);
                        if (r < 0 || asprintf(ret_prefix, "%s/", rel) < 0)
                                return MOACTL_EXIT_FAILED;
                }
                if (!*ret_prefix)
                        return MOACTL_EXIT_FAILED;
                *ret_base = TAKE_PTR(base);
                *ret_sync = TAKE_PTR(sync);
                return MOACTL_EXIT_OK;
        }
        if (!base && argc == 1 && !o->title) {
                base = realpath(argv[0], NULL);
                if (base && (stat(base, &st) < 0 || !S_ISDIR(st.st_mode)))
                        base = mfree(base);
        }
        if (!base) {
                abs = calloc((size_t) argc + 1, sizeof(char *));
                if (!abs)
                        return MOACTL_EXIT_FAILED;
                for (int i = 0; i < argc; i++) {
                        abs[n] = realpath(argv[i], NULL);
                        if (abs[n])
                                n++;
                }
                r = n > 0 ? path_common_parent((const char *const *) abs, n, &base) : 0;
                for (size_t i = 0; i < n; i++)
                        free(abs[i]);
                free(abs);
                if (r < 0)
                        return MOACTL_EXIT_FAILED;
                if (!base) /* none exists: each is reported on its own */
                        base = strdup("/");
                if (!base)
                        return MOACTL_EXIT_FAILED;
        }
        *ret_base = TAKE_PTR(base);
        return code;
}

int cmd_ingest(const Moactl *m, int argc, char **argv) {
        const IngestOpts *o = &m->ingest;
        _cleanup_free_ char *agent = NULL, *path = NULL, *base = NULL, *sync = NULL, *prefix = NULL;
        _cleanup_(ingest_files_done) IngestFiles files = {};
        IngestFilter filter = {.include = o->include,
                               .n_include = o->n_include,
                               .exclude = o->exclude,
                               .n_exclude = o->n_exclude};
        _cleanup_(ingest_run_done) IngestRun run = {
                .m = m, .timeout = m->timeout_sec >= 0 ? m->timeout_sec : INGEST_DEFAULT_TIMEOUT_SEC};
        char **args = argv;
        int code, r;

        code = one_agent(m, "ingest", &agent);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (o->sync && argc > 0)
                return usage_error("ingest --sync DIR takes no further FILE");
        if (o->server) {
                if (!o->sync || o->base || o->title || o->n_include + o->n_exclude > 0 || o->dry_run)
                        return usage_error("--server goes with --sync DIR alone (no --base, --title, "
                                           "--include, --exclude or --dry-run)");
                return ingest_on_server(m, m->agents[0], o->sync);
        }
        if (!o->sync && argc < 1)
                return usage_error("ingest needs at least one FILE or DIR (or --sync DIR)");
        if (o->title) {
                struct stat st;
                if (o->sync || argc != 1 || (stat(argv[0], &st) >= 0 && S_ISDIR(st.st_mode)))
                        return usage_error(
                                "--title names exactly one FILE (not a directory, not with --sync)");
                if (strlen(o->title) > 4096 || !utf8_valid(o->title, strlen(o->title)))
                        return usage_error("--title must be UTF-8 text");
        }
        code = find_base(o, argc, argv, &base, &sync, &prefix);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (asprintf(&path, "/v1/moa/agents/%s/documents", agent) < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }
        run.path = path;

        /* What the agent has first: unchanged files are not sent again, so
         * re-running an interrupted ingest finishes it. */
        code = known_load(m, path, &run.known);
        if (code != MOACTL_EXIT_OK)
                return code;

        if (o->sync) {
                args = (char **) &o->sync;
                argc = 1;
        }
        for (int i = 0; i < argc; i++) {
                r = ingest_files_add(&files, args[i], base, o->title, &filter);
                if (r == -E2BIG) {
                        fprintf(stderr, "moactl: more than %u files: ingest fewer at a time\n",
                                INGEST_MAX_FILES);
                        return MOACTL_EXIT_FAILED;
                }
                if (r == -ENOMEM)
                        return MOACTL_EXIT_FAILED;
                if (r < 0) {
                        progress(0, 0, args[i], "refused: %s", strerror(-r));
                        tally_refused(&run.tally, args[i], strerror(-r));
                }
        }

        if (ingest_files_dedup(&files) < 0)
                return MOACTL_EXIT_FAILED;
        for (size_t i = 0; i < files.n; i++) {
                code = ingest_one(&run, &files.files[i], i + 1, files.n);
                if (code != MOACTL_EXIT_OK)
                        return code;
        }
        if (o->sync) {
                code = sync_remove(&run, &files, &filter, sync, base, prefix);
                if (code != MOACTL_EXIT_OK)
                        return code;
        } else if (note_older_titles(&run, &files) < 0)
                return MOACTL_EXIT_FAILED;
        print_summary(&run, &files, m->agents[0]);
        return run.tally.refused + run.tally.failed > 0 ? MOACTL_EXIT_FAILED : MOACTL_EXIT_OK;
}

static void format_time(char *buf, size_t n, const json_t *v) {
        if (json_is_string(v)) {
                snprintf(buf, n, "%s", json_string_value(v));
                return;
        }
        if (json_is_number(v)) {
                double d = json_number_value(v);
                struct tm tm;
                time_t t;

                /* Seconds since the epoch, bounded to what gmtime_r() can show. */
                if (d >= 0 && d < 253402300800.0) {
                        t = (time_t) d;
                        if (gmtime_r(&t, &tm) && strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) > 0)
                                return;
                }
        }
        snprintf(buf, n, "-");
}

int cmd_documents(const Moactl *m, int argc, char **argv) {
        static const char *const headers[] = {"TITLE",          "CHUNKS",         "BYTES",  "SIZE",
                                              "MODIFIED (UTC)", "INGESTED (UTC)", "SHA256", "SOURCE"};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *agent = NULL, *path = NULL;
        json_t *v;
        size_t i;
        int code;

        code = one_agent(m, "documents", &agent);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (argc != 0)
                return usage_error("documents takes no operands");
        if (asprintf(&path, "/v1/moa/agents/%s/documents", agent) < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }
        code = docs_list_all(m, path, &root);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (m->json) {
                /* every page in one object, as one page of a small base reads */
                _cleanup_free_ char *out = json_dumps(root, JSON_COMPACT);
                if (!out)
                        return MOACTL_EXIT_FAILED;
                puts(out);
                return MOACTL_EXIT_OK;
        }

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return MOACTL_EXIT_FAILED;
        json_array_foreach(json_object_get(root, "documents"), i, v) {
                char chunks[32], bytes[32], size[32] = "-", mtime[64], when[64];
                json_t *sz = json_object_get(v, "size");

                snprintf(chunks, sizeof(chunks), "%lld", json_int(v, "chunks", 0));
                snprintf(bytes, sizeof(bytes), "%lld", json_int(v, "bytes", 0));
                if (json_is_integer(sz))
                        snprintf(size, sizeof(size), "%lld", (long long) json_integer_value(sz));
                format_time(mtime, sizeof(mtime), json_object_get(v, "mtime"));
                format_time(when, sizeof(when), json_object_get(v, "ingested_at"));
                const char *cells[] = {json_str(v, "title", "?"),
                                       chunks,
                                       bytes,
                                       size,
                                       mtime,
                                       when,
                                       json_str(v, "sha256", "-"),
                                       json_str(v, "source", "-")};
                if (table_add(t, cells) < 0)
                        return MOACTL_EXIT_FAILED;
        }
        table_print(t, stdout, 0);
        return MOACTL_EXIT_OK;
}

int cmd_delete(const Moactl *m, int argc, char **argv) {
        _cleanup_(reply_done) Reply reply = {};
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_free_ char *agent = NULL, *title = NULL, *path = NULL;
        int code, r;

        code = one_agent(m, "delete", &agent);
        if (code != MOACTL_EXIT_OK)
                return code;
        if (argc != 1 || isempty(argv[0]))
                return usage_error("delete needs exactly one document TITLE");
        r = ctl_escape(argv[0], &title);
        if (r < 0)
                return usage_error("bad title: %s", strerror(-r));
        if (asprintf(&path, "/v1/moa/agents/%s/documents/%s", agent, title) < 0) {
                path = NULL;
                return MOACTL_EXIT_FAILED;
        }
        code = ctl_call_json(m, "DELETE", path, NULL,
                             m->timeout_sec >= 0 ? m->timeout_sec : DOCS_DEFAULT_TIMEOUT_SEC, &reply, &root);
        if (code != MOACTL_EXIT_OK)
                return ctl_fail(&reply, code);
        if (m->json) {
                print_raw(&reply);
                return json_is_true(json_object_get(root, "deleted")) ? MOACTL_EXIT_OK : MOACTL_EXIT_FAILED;
        }
        if (!json_is_true(json_object_get(root, "deleted"))) {
                fputs("moactl: moad did not delete the document\n", stderr);
                return MOACTL_EXIT_FAILED;
        }
        fputs("deleted \"", stdout);
        print_sanitized(stdout, argv[0], strlen(argv[0]));
        fputs("\" from agent ", stdout);
        print_sanitized(stdout, m->agents[0], strlen(m->agents[0]));
        fputc('\n', stdout);
        return MOACTL_EXIT_OK;
}
