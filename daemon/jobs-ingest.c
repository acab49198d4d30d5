/* jobs-ingest.c — see jobs-ingest.h. A job goes plan (resolve, check the
 * root, walk, list the agent's documents), then one task per file, then
 * one per document to remove; the loop records every outcome and starts
 * the next task. The Kb handle of a job is used on the worker thread
 * only (its tasks run one after another there). Files are converted by
 * the code moactl uses (common/doc-text.c), on the worker; a running
 * pdftotext is killed through the job's cancel eventfd. */
#include <fcntl.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>

#include "agents.h"
#include "doc-text.h"
#include "file-read.h"
#include "ingest-files.h"
#include "jobs-ingest.h"
#include "jobs.h"
#include "kb.h"
#include "log.h"
#include "sha256.h"
#include "util.h"
#include "worker.h"

typedef struct KnownDoc {
        char *title, *sha256, *source;
} KnownDoc;

typedef struct SyncRun {
        IngestJobs *owner;
        char *id, *agent, *path, *kb_path;
        char **roots; /* a copy of jobs.ingest_roots when the job started */
        size_t n_roots;
        uint64_t max_bytes;
        /* Written by the loop to stop a running converter (cancel, shutdown);
         * polled by it on the worker. */
        int cancel_fd;
        /* Set by the plan task. */
        char *dir, *root;
        Kb *kb;
        IngestFiles files;
        KnownDoc *known; /* by title */
        size_t n_known;
        /* On the loop. */
        char **done; /* titles acknowledged before, sorted */
        size_t n_done;
        size_t next_file, next_known;
        int busy, cancelled;
} SyncRun;

struct IngestJobs {
        Server *server;
        JobsStore *store;
        Worker *worker;
        char **queue; /* ids, oldest first */
        size_t n_queue;
        SyncRun *run;
};

/* One task: the plan, a file (index into files), or a removal (into known). */
typedef enum TaskKind { TASK_PLAN, TASK_FILE, TASK_REMOVE } TaskKind;

typedef struct Task {
        SyncRun *run;
        TaskKind kind;
        size_t index;
        const char *outcome; /* static; NULL: nothing to record */
        char why[512];
} Task;

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

static SyncRun *run_free(SyncRun *r) {
        if (!r)
                return NULL;
        kb_close(r->kb);
        closep(&r->cancel_fd);
        ingest_files_done(&r->files);
        for (size_t i = 0; i < r->n_known; i++) {
                free(r->known[i].title);
                free(r->known[i].sha256);
                free(r->known[i].source);
        }
        free(r->known);
        strv_free(r->done, r->n_done);
        strv_free(r->roots, r->n_roots);
        free(r->id);
        free(r->agent);
        free(r->path);
        free(r->kb_path);
        free(r->dir);
        free(r->root);
        free(r);
        return NULL;
}

/* Whether the absolute path @path is @dir or lies below it. */
static int path_in(const char *dir, const char *path) {
        size_t n = strlen(dir);

        if (streq(dir, "/"))
                return path[0] == '/';
        return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

int ingest_root_of(char *const *roots, size_t n, const char *real, char **ret_root) {
        for (size_t i = 0; i < n; i++) {
                char *root = realpath(roots[i], NULL);

                if (!root) {
                        if (errno == ENOMEM)
                                return -ENOMEM;
                        continue; /* a root that does not exist holds nothing */
                }
                if (path_in(root, real)) {
                        *ret_root = root;
                        return 0;
                }
                free(root);
        }
        return -EPERM;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int cmp_known(const void *a, const void *b) {
        return strcmp(((const KnownDoc *) a)->title, ((const KnownDoc *) b)->title);
}

static const KnownDoc *known_find(const SyncRun *r, const char *title) {
        KnownDoc key = {.title = (char *) title};

        return r->n_known ? bsearch(&key, r->known, r->n_known, sizeof *r->known, cmp_known) : NULL;
}

static int known_add(const KbDocInfo *doc, void *userdata) {
        SyncRun *r = userdata;
        KnownDoc *k, *nk = realloc(r->known, (r->n_known + 1) * sizeof *nk);

        if (!nk)
                return -ENOMEM;
        r->known = nk;
        k = &r->known[r->n_known];
        *k = (KnownDoc){.title = strdup(doc->title),
                        .sha256 = strdup(doc->sha256 ?: ""),
                        .source = strdup(doc->source ?: "")};
        if (!k->title || !k->sha256 || !k->source) {
                free(k->title);
                free(k->sha256);
                free(k->source);
                return -ENOMEM;
        }
        r->n_known++;
        return 0;
}

/* On the worker: resolve and check the directory, walk it, list the documents. */
static int plan_work(Task *t) {
        SyncRun *r = t->run;
        static const IngestFilter all = {};
        struct stat st;
        int k;

        r->dir = realpath(r->path, NULL);
        if (!r->dir || stat(r->dir, &st) < 0) {
                snprintf(t->why, sizeof t->why, "%s: %s", r->path, strerror(errno));
                return -errno;
        }
        if (!S_ISDIR(st.st_mode)) {
                snprintf(t->why, sizeof t->why, "%s: not a directory", r->path);
                return -ENOTDIR;
        }
        k = ingest_root_of(r->roots, r->n_roots, r->dir, &r->root);
        if (k < 0) {
                snprintf(t->why, sizeof t->why, "%s is not below jobs.ingest_roots", r->dir);
                return k;
        }
        k = ingest_files_add(&r->files, r->dir, r->dir, NULL, &all);
        if (k >= 0)
                k = ingest_files_dedup(&r->files);
        if (k < 0) {
                snprintf(t->why, sizeof t->why, "cannot walk %s: %s", r->dir,
                         k == -E2BIG ? "more than 100000 files" : strerror(-k));
                return k;
        }
        if (r->files.n_links > 0)
                log_info("ingest job %s: %zu link(s) to files ingested under their own names skipped", r->id,
                         r->files.n_links);
        k = kb_open(r->kb_path, 0, &r->kb);
        if (k >= 0)
                k = kb_list(r->kb, known_add, r);
        if (k < 0) {
                snprintf(t->why, sizeof t->why, "cannot read the knowledge base of %s: %s", r->agent,
                         strerror(-k));
                return k;
        }
        qsort(r->known, r->n_known, sizeof *r->known, cmp_known);
        return 0;
}

#define REFUSE(...)                                                                                         \
        do {                                                                                                \
                snprintf(t->why, sizeof t->why, __VA_ARGS__);                                               \
                t->outcome = "refused";                                                                     \
                return 0;                                                                                   \
        } while (0)

/* On the worker: one file, converted and refused as "moactl ingest" does. */
static int file_work(Task *t) {
        SyncRun *r = t->run;
        const IngestFile *f = &r->files.files[t->index];
        _cleanup_free_ char *real = NULL, *data = NULL, *text = NULL;
        _cleanup_close_ int fd = -1;
        KbDocMeta meta = KB_DOC_META_NONE;
        ConvertLimits lim = CONVERT_LIMITS_DEFAULT;
        const KnownDoc *old;
        char sha[65], format[64];
        struct stat st;
        size_t len = 0, text_len = 0;
        int k;

        if (f->error)
                REFUSE("%s", f->error);
        /* A link may point anywhere: what it resolves to must be below the root too. */
        real = realpath(f->path, NULL);
        if (!real)
                REFUSE("%s", strerror(errno));
        if (!path_in(r->root, real))
                REFUSE("resolves outside jobs.ingest_roots");
        fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                REFUSE("%s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                REFUSE("not a regular file");
        if ((uint64_t) st.st_size > r->max_bytes)
                REFUSE("larger than limits.max_ingest_bytes (%llu bytes)",
                       (unsigned long long) r->max_bytes);
        k = text_read_fd(fd, r->max_bytes, &data, &len);
        if (k < 0)
                REFUSE("%s", k == -EFBIG ? "grew larger than limits.max_ingest_bytes" : strerror(-k));
        sha256_hex(data, len, sha);
        old = known_find(r, f->title);
        if (old && strcasecmp(old->sha256, sha) == 0) {
                t->outcome = "unchanged";
                return 0;
        }
        /* The name as walked (not the link's target) decides .gz/.html/.pdf, as in moactl. */
        lim.cancel_fd = r->cancel_fd;
        k = doc_text(f->path, data, len, r->max_bytes, &lim, &text, &text_len, format, sizeof format, t->why,
                     sizeof t->why);
        if (k == -ECANCELED)
                return 0; /* the job was cancelled (or moad stops): nothing to record */
        if (k < 0) {
                t->outcome = k == -ENOMEM ? "failed" : "refused";
                return 0;
        }
        data = mfree(data);
        meta.sha256 = sha;
        meta.file_bytes = (int64_t) len;
        if (st.st_mtim.tv_sec >= 0)
                meta.mtime = (int64_t) st.st_mtim.tv_sec;
        k = kb_ingest_meta(r->kb, f->title, real, text, text_len, NULL, &meta);
        if (k < 0) {
                snprintf(t->why, sizeof t->why, "%s", strerror(-k));
                t->outcome = "failed";
                return 0;
        }
        /* What was converted, for the log ("gzip, Latin-1, HTML"). */
        snprintf(t->why, sizeof t->why, "%s", format);
        t->outcome = old ? "replaced" : "added";
        return 0;
}

/* On the worker: remove a document whose file is gone. */
static int remove_work(Task *t) {
        const KnownDoc *d = &t->run->known[t->index];
        struct stat st;
        int k;

        if (lstat(d->source, &st) == 0 || errno != ENOENT)
                return 0; /* there after all (or cannot tell): kept */
        k = kb_delete(t->run->kb, d->title);
        if (k < 0 && k != -ENOENT) {
                snprintf(t->why, sizeof t->why, "%s", strerror(-k));
                t->outcome = "failed";
                return 0;
        }
        t->outcome = "removed";
        return 0;
}

static int task_work(void *data) {
        Task *t = data;

        switch (t->kind) {
        case TASK_PLAN:
                return plan_work(t);
        case TASK_FILE:
                return file_work(t);
        default:
                return remove_work(t);
        }
}

static void step(IngestJobs *ij);
static void task_done(void *data, int result);

static int submit(SyncRun *r, TaskKind kind, size_t index) {
        Task *t = calloc(1, sizeof *t);
        int k;

        if (!t)
                return -ENOMEM;
        *t = (Task){.run = r, .kind = kind, .index = index};
        k = worker_submit(r->owner->worker, task_work, task_done, t, NULL);
        if (k < 0) {
                free(t);
                return k;
        }
        r->busy = 1;
        return 0;
}

static int was_done(const SyncRun *r, const char *title) {
        return r->n_done > 0 && bsearch(&title, r->done, r->n_done, sizeof(char *), cmp_str) != NULL;
}

/* Whether --sync semantics remove document @d: it came from below the
 * directory (by its source), it is not a file of this walk, and it is not
 * a hidden path (never walked, so never judged). Its file being gone is
 * checked on the worker. */
static int removal_candidate(SyncRun *r, const KnownDoc *d) {
        const char *rel;

        if (d->source[0] != '/' || streq(d->source, r->dir) || !path_in(r->dir, d->source))
                return 0;
        if (ingest_files_seen(&r->files, d->title))
                return 0;
        rel = d->source + (streq(r->dir, "/") ? 1 : strlen(r->dir) + 1);
        return rel[0] != '.' && !strstr(rel, "/.");
}

static void end_run(IngestJobs *ij, const char *status, const char *at_column, const char *error) {
        SyncRun *r = ij->run;
        int k;

        if (status) {
                k = jobs_store_ingest_set_status(ij->store, r->id, status, at_column, (int64_t) time(NULL),
                                                 error);
                if (k < 0)
                        log_error_errno(k, "ingest job %s: cannot store its end", r->id);
                log_info("ingest job %s (%s, %s) %s%s%s", r->id, r->agent, r->path, status,
                         error ? ": " : "", error ?: "");
        }
        ij->run = run_free(r);
        step(ij);
}

/* The next task of the running job, or its end. */
static void advance(IngestJobs *ij) {
        SyncRun *r = ij->run;
        int k;

        if (r->cancelled) {
                end_run(ij, NULL, NULL, NULL); /* "cancelled" was stored by ingest_jobs_cancel() */
                return;
        }
        while (r->next_file < r->files.n && was_done(r, r->files.files[r->next_file].title ?: ""))
                r->next_file++;
        if (r->next_file < r->files.n) {
                k = submit(r, TASK_FILE, r->next_file++);
                goto out;
        }
        while (r->next_known < r->n_known && (was_done(r, r->known[r->next_known].title) ||
                                              !removal_candidate(r, &r->known[r->next_known])))
                r->next_known++;
        if (r->next_known < r->n_known) {
                k = submit(r, TASK_REMOVE, r->next_known++);
                goto out;
        }
        end_run(ij, "completed", "completed_at", NULL);
        return;
out:
        if (k < 0)
                end_run(ij, "failed", "failed_at", strerror(-k));
}

/* On the loop: the plan is made; what was acknowledged before is skipped. */
static void plan_done(IngestJobs *ij, Task *t) {
        SyncRun *r = ij->run;
        json_auto_t *rows = NULL;
        json_t *v;
        size_t i;
        int k;

        k = jobs_store_ingest_files_done(ij->store, r->id, &rows);
        if (k >= 0 && json_array_size(rows) > 0) {
                r->done = calloc(json_array_size(rows), sizeof(char *));
                if (!r->done)
                        k = -ENOMEM;
                json_array_foreach(rows, i, v) {
                        if (k < 0 || !(r->done[r->n_done] = strdup(
                                               json_string_value(json_object_get(v, "title")) ?: ""))) {
                                k = -ENOMEM;
                                break;
                        }
                        r->n_done++;
                }
                if (k >= 0)
                        qsort(r->done, r->n_done, sizeof(char *), cmp_str);
        }
        if (k < 0) {
                end_run(ij, "failed", "failed_at", strerror(-k));
                return;
        }
        (void) jobs_store_ingest_set_total(ij->store, r->id, (long) r->files.n);
        if (r->n_done > 0)
                log_info("ingest job %s: resuming, %zu file(s) acknowledged before", r->id, r->n_done);
        advance(ij);
}

static void task_done(void *data, int result) {
        Task *t = data;
        SyncRun *r = t->run;
        IngestJobs *ij = r->owner;
        const char *title;

        r->busy = 0;
        if (result == -ECANCELED) {
                /* moad is stopping: the job stays unfinished in jobs.db. */
                free(t);
                return;
        }
        if (t->kind == TASK_PLAN) {
                if (result < 0 && !r->cancelled)
                        end_run(ij, "failed", "failed_at", t->why);
                else if (result < 0)
                        end_run(ij, NULL, NULL, NULL);
                else
                        plan_done(ij, t);
                free(t);
                return;
        }
        title = t->kind == TASK_FILE ? r->files.files[t->index].title ?: r->files.files[t->index].path
                                     : r->known[t->index].title;
        if (t->outcome) {
                int k = jobs_store_ingest_file_add(ij->store, r->id, title, t->outcome);
                if (k < 0)
                        log_error_errno(k, "ingest job %s: cannot store the outcome of %s", r->id, title);
                if (t->why[0])
                        log_info("ingest job %s: %s %s: %s", r->id, t->outcome, title, t->why);
        }
        free(t);
        advance(ij);
}

/* Starts the next queued job if none runs. */
static void step(IngestJobs *ij) {
        const Config *cfg = ij->server->runtime->config;
        json_auto_t *row = NULL;
        SyncRun *r;
        Agent *a;
        char *id;
        int k, efd_errno;

        while (!ij->run && ij->n_queue > 0) {
                id = ij->queue[0];
                memmove(ij->queue, ij->queue + 1, --ij->n_queue * sizeof(char *));
                k = jobs_store_ingest_get(ij->store, id, &row);
                r = k >= 0 ? calloc(1, sizeof *r) : NULL;
                if (!r) {
                        log_error_errno(k < 0 ? k : -ENOMEM, "ingest job %s cannot start", id);
                        free(id);
                        json_decref(TAKE_PTR(row));
                        continue;
                }
                r->owner = ij;
                r->id = id;
                r->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                efd_errno = r->cancel_fd < 0 ? errno : 0;
                r->agent = strdup(json_string_value(json_object_get(row, "agent")) ?: "");
                r->path = strdup(json_string_value(json_object_get(row, "path")) ?: "");
                r->max_bytes = cfg->limits.max_ingest_bytes;
                json_decref(TAKE_PTR(row));
                ij->run = r;
                a = agents_find(ij->server->runtime->agents, r->agent ?: "");
                r->kb_path = a ? strdup(agent_kb_path(a)) : NULL;
                r->roots = calloc(cfg->jobs.n_ingest_roots + 1, sizeof(char *));
                for (size_t i = 0; r->roots && i < cfg->jobs.n_ingest_roots; i++)
                        if ((r->roots[r->n_roots] = strdup(cfg->jobs.ingest_roots[i])))
                                r->n_roots++;
                if (!a) {
                        end_run(ij, "failed", "failed_at", "the agent is no longer configured");
                        return;
                }
                if (!r->agent || !r->path || !r->kb_path || !r->roots) {
                        end_run(ij, "failed", "failed_at", strerror(ENOMEM));
                        return;
                }
                if (r->cancel_fd < 0) {
                        end_run(ij, "failed", "failed_at", strerror(efd_errno));
                        return;
                }
                (void) jobs_store_ingest_set_status(ij->store, r->id, "in_progress", "in_progress_at",
                                                    (int64_t) time(NULL), NULL);
                k = submit(r, TASK_PLAN, 0);
                if (k < 0) {
                        end_run(ij, "failed", "failed_at", strerror(-k));
                        return;
                }
        }
}

int ingest_jobs_submit(IngestJobs *ij, const char *id) {
        char **q = realloc(ij->queue, (ij->n_queue + 1) * sizeof(char *));

        if (!q)
                return -ENOMEM;
        ij->queue = q;
        q[ij->n_queue] = strdup(id);
        if (!q[ij->n_queue])
                return -ENOMEM;
        ij->n_queue++;
        step(ij);
        return 0;
}

/* Kills a converter the running task may have started, now or when it starts. */
static void stop_converter(SyncRun *r) {
        uint64_t one = 1;

        if (write(r->cancel_fd, &one, sizeof one) < 0)
                log_error_errno(-errno, "ingest job %s: cannot stop its converter", r->id);
}

int ingest_jobs_cancel(IngestJobs *ij, const char *id) {
        json_auto_t *row = NULL;
        int k, queued = -1;

        for (size_t i = 0; i < ij->n_queue; i++)
                if (streq(ij->queue[i], id))
                        queued = (int) i;
        if (queued < 0 && !(ij->run && streq(ij->run->id, id))) {
                k = jobs_store_ingest_get(ij->store, id, &row);
                return k < 0 ? k : -EALREADY;
        }
        k = jobs_store_ingest_set_status(ij->store, id, "cancelled", "cancelled_at", (int64_t) time(NULL),
                                         NULL);
        if (k < 0)
                return k;
        log_info("ingest job %s cancelled", id);
        if (queued >= 0) {
                free(ij->queue[queued]);
                memmove(ij->queue + queued, ij->queue + queued + 1,
                        (ij->n_queue - (size_t) queued - 1) * sizeof(char *));
                ij->n_queue--;
                return 0;
        }
        ij->run->cancelled = 1;
        if (!ij->run->busy)
                end_run(ij, NULL, NULL, NULL);
        else
                stop_converter(ij->run);
        return 0;
}

void ingest_jobs_stop(IngestJobs *ij) {
        if (ij && ij->run)
                stop_converter(ij->run);
}

int ingest_jobs_new(Server *s, JobsStore *st, Worker *w, IngestJobs **ret) {
        IngestJobs *ij = calloc(1, sizeof *ij);
        json_auto_t *rows = NULL;
        json_t *v;
        size_t i;
        int k;

        if (!ij)
                return -ENOMEM;
        *ij = (IngestJobs){.server = s, .store = st, .worker = w};
        k = jobs_store_ingest_unfinished(st, &rows);
        json_array_foreach(rows, i, v) {
                if (k >= 0)
                        k = ingest_jobs_submit(ij, json_string_value(json_object_get(v, "id")) ?: "");
        }
        if (k < 0) {
                ingest_jobs_free(ij);
                return k;
        }
        if (json_array_size(rows) > 0)
                log_info("jobs: %zu unfinished ingest job(s) queued again", json_array_size(rows));
        *ret = ij;
        return 0;
}

IngestJobs *ingest_jobs_free(IngestJobs *ij) {
        if (!ij)
                return NULL;
        run_free(ij->run);
        strv_free(ij->queue, ij->n_queue);
        free(ij);
        return NULL;
}
