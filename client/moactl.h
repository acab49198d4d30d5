/* moactl.h — what the pieces of moactl share: the parsed command line, the
 * documented exit codes, the HTTP-over-Unix-socket calls (http-client.c),
 * output helpers (output.c) and the commands (cmd-*.c). */
#pragma once

#include <stddef.h>

#include <jansson.h>

#include "pdf-text.h" /* ConvertLimits */
#include "util.h"

/* Exit codes, documented in moactl(1). */
enum {
        MOACTL_EXIT_OK = 0,
        MOACTL_EXIT_FAILED = 1,   /* the daemon answered with an error, or an operation failed */
        MOACTL_EXIT_USAGE = 2,    /* bad command line */
        MOACTL_EXIT_CONNECT = 3,  /* cannot connect to the daemon's socket */
        MOACTL_EXIT_PROTOCOL = 4, /* the reply was not what the API promises */
        MOACTL_EXIT_TIMEOUT = 5,  /* --timeout expired */
        MOACTL_EXIT_PARTIAL =
                6, /* batch: some lines failed (the output is complete); reload: agents refused */
};

#define MOACTL_DEFAULT_SOCKET "/run/moad/moad.sock"
#define MOACTL_DEFAULT_MODEL "moa"
/* Upper bound of a buffered reply and of one streamed answer. */
#define MOACTL_MAX_RESPONSE (64U * 1024U * 1024U)
/* Upper bound of one file given to "ingest" (the daemon has its own limit). */
#define MOACTL_MAX_INGEST_FILE (64U * 1024U * 1024U)
#define MOACTL_MAX_AGENTS 64
/* Files attached to one question ("ask -f", "review"): moactl's own hard
 * bounds; moad's limits.max_ask_* (smaller by default) are checked by moad. */
#define MOACTL_MAX_ASK_FILES 256
#define MOACTL_MAX_ASK_FILE (16U * 1024U * 1024U)
#define MOACTL_MAX_DOC_FILTERS 32
#define MOACTL_MAX_TITLE_BYTES 512
#define MOACTL_MAX_GLOBS 64

/* The options only "ingest" takes (cmd-docs.c). They are parsed with the
 * global ones, since getopt permutes the whole command line. */
typedef struct IngestOpts {
        const char *base;  /* --base DIR */
        const char *title; /* --title T, one file only */
        const char *sync;  /* --sync DIR */
        int recursive;     /* -r: directories are always walked; accepted for clarity */
        int dry_run;
        int server; /* --server: with --sync, a job moad runs (cmd-jobs.c) */
        const char *include[MOACTL_MAX_GLOBS];
        size_t n_include;
        const char *exclude[MOACTL_MAX_GLOBS];
        size_t n_exclude;
        const char *given; /* the first of these options given, for "only for ingest" */
} IngestOpts;

typedef struct Moactl {
        const char *socket_path;
        const char *model;
        const char *agents[MOACTL_MAX_AGENTS]; /* --agent, in order given */
        size_t n_agents;
        long timeout_sec; /* < 0: the command's default; 0: none */
        int json;
        int trace;
        IngestOpts ingest;
        const char *files[MOACTL_MAX_ASK_FILES]; /* ask -f FILE ("-": stdin) */
        size_t n_files;
        const char *docs[MOACTL_MAX_DOC_FILTERS]; /* ask --doc TITLE (globs) */
        size_t n_docs;
} Moactl;

/* One finished HTTP exchange. */
typedef struct Reply {
        long status; /* HTTP status, 0 if none was received */
        char *body;  /* NUL-terminated, may be NULL when empty */
        size_t size;
        char *content_type;  /* NULL if the header was absent */
        char request_id[80]; /* the x-request-id header, "" if absent */
        char error[1024];    /* why the call failed, for the user */
} Reply;

/* Called for each SSE event's data during ctl_stream(). Return
 * MOACTL_EXIT_OK to go on, anything else to stop the transfer with that exit
 * code (after writing the reason to reply->error). */
typedef int (*StreamEventFn)(void *userdata, const char *data, size_t len, int done, Reply *reply);

/**
 * ctl_global_init() / ctl_global_done() - libcurl's global state; call once
 * at the start and the end of main().
 */
int ctl_global_init(void);
void ctl_global_done(void);

/** reply_done() - free what a Reply holds and zero it; safe to repeat. */
void reply_done(Reply *r);

/**
 * ctl_call() - one buffered HTTP request to the daemon: @method on @path
 * (starting with '/'), with @body (JSON, NULL for none). Fills @reply and
 * returns a MOACTL_EXIT_* code: OK for a 2xx status, FAILED for a daemon
 * error status (reply->error holds the daemon's message), CONNECT,
 * PROTOCOL or TIMEOUT for transport trouble. @timeout_sec 0 means none.
 */
int ctl_call(const Moactl *m, const char *method, const char *path, const char *body, long timeout_sec,
             Reply *reply);

/**
 * ctl_stream() - POST @body to @path expecting text/event-stream; each
 * event's data goes to @fn as it arrives (events may be split across reads
 * in any way). A non-stream reply is buffered into @reply and, for an
 * error status, handled like ctl_call(). Returns a MOACTL_EXIT_* code;
 * a stream that ends without "[DONE]" is a PROTOCOL error.
 */
int ctl_stream(const Moactl *m, const char *path, const char *body, long timeout_sec, StreamEventFn fn,
               void *userdata, Reply *reply);

/**
 * ctl_upload() - POST a multipart/form-data form to @path: the field
 * "purpose" and the field "file" holding @len bytes of @data named
 * @filename, as the OpenAI SDKs upload files. Returns like ctl_call().
 */
int ctl_upload(const Moactl *m, const char *path, const char *purpose, const char *filename,
               const char *data, size_t len, long timeout_sec, Reply *reply);

/**
 * reply_json() - parse a successful reply's body as a JSON object into
 * *@ret (new reference). Returns MOACTL_EXIT_OK, or MOACTL_EXIT_PROTOCOL
 * with reply->error set.
 */
int reply_json(Reply *reply, json_t **ret);

/**
 * ctl_call_json() - ctl_call() and reply_json() in one: on MOACTL_EXIT_OK
 * *@ret holds the parsed reply object (new reference).
 */
int ctl_call_json(const Moactl *m, const char *method, const char *path, const char *body, long timeout_sec,
                  Reply *reply, json_t **ret);

/**
 * ctl_escape() - @s percent-encoded for one URL path segment (every byte
 * but unreserved ones, so "/" cannot split the segment). Returns 0 and a
 * malloc'ed string, -ENAMETOOLONG beyond 4096 bytes, or -ENOMEM.
 */
int ctl_escape(const char *s, char **ret);

/** ctl_fail() - print "moactl: <reply->error>" to stderr and return @code. */
int ctl_fail(const Reply *reply, int code);

/* output.c */

/** json_str() - @key of @o as a string, or @def when absent / not a string. */
const char *json_str(const json_t *o, const char *key, const char *def);
/** json_num() - @key of @o as a number (integer or real), or @def. */
double json_num(const json_t *o, const char *key, double def);
/** json_int() - @key of @o as an integer (a real is truncated), or @def. */
long long json_int(const json_t *o, const char *key, long long def);

/** json_yes_no() - "yes"/"no" for a boolean @key of @o, "-" otherwise. */
const char *json_yes_no(const json_t *o, const char *key);

/**
 * json_fmt_num() - @key of @o printed with @decimals digits and @suffix
 * (may be NULL) into @buf, or "-" when it is not a number.
 */
void json_fmt_num(char *buf, size_t n, const json_t *o, const char *key, int decimals, const char *suffix);

typedef struct Table Table;

/**
 * table_new() - a text table with @n_cols columns titled by @headers
 * (strings are copied). Returns NULL on out-of-memory.
 */
Table *table_new(size_t n_cols, const char *const *headers);
/** table_free() - free a table; NULL is a no-op. Returns NULL. */
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
/**
 * table_add() - append a row of exactly the table's column count of cells
 * (printf-formatted is the caller's job; NULL prints "-"). Control
 * characters in cells are replaced so a hostile reply cannot drive the
 * terminal. Returns 0 or -ENOMEM.
 */
int table_add(Table *t, const char *const *cells);
/**
 * table_print() - print to @f, columns padded to their widest cell, the
 * last column unpadded; cells wider than @max_width (0: no limit) are cut
 * with "...".
 */
void table_print(const Table *t, FILE *f, size_t max_width);

/** print_raw() - the reply body as received, ending in a newline (for --json). */
void print_raw(const Reply *reply);

/**
 * print_sanitized() - write @len bytes of @s to @f with control characters
 * other than '\n' and '\t' shown as '?', so daemon-supplied text cannot send
 * terminal escape sequences.
 */
void print_sanitized(FILE *f, const char *s, size_t len);

/* Commands: each returns a MOACTL_EXIT_* code. @argv holds the command's
 * operands (after the command word). */
int cmd_ask(const Moactl *m, int argc, char **argv);
int cmd_models(const Moactl *m, int argc, char **argv);
int cmd_health(const Moactl *m, int argc, char **argv);
int cmd_route(const Moactl *m, int argc, char **argv);
int cmd_agents(const Moactl *m, int argc, char **argv);
int cmd_status(const Moactl *m, int argc, char **argv);
int cmd_reload(const Moactl *m, int argc, char **argv);
int cmd_metrics(const Moactl *m, int argc, char **argv);
int cmd_ingest(const Moactl *m, int argc, char **argv);
int cmd_documents(const Moactl *m, int argc, char **argv); /* also "docs" */
int cmd_delete(const Moactl *m, int argc, char **argv);
/* review parses the options after its name itself: argv[-1] is "review". */
int cmd_review(const Moactl *m, int argc, char **argv);
/* batch parses the options after its name itself: argv[-1] is "batch". */
int cmd_batch(const Moactl *m, int argc, char **argv);
int cmd_plugin(const Moactl *m, int argc, char **argv);
int cmd_jobs(const Moactl *m, int argc, char **argv);

/**
 * batch_on_server() - "moactl batch --server": upload @input, create a
 * batch, wait for it (progress on stderr unless @quiet) and write its
 * output and error lines to @output. @model fills plain-question lines.
 * Returns a MOACTL_EXIT_* code (6 when some lines failed).
 */
int batch_on_server(const Moactl *m, const char *input, const char *output, const char *model, int quiet);

/**
 * ingest_on_server() - "moactl ingest --sync DIR --server": have moad sync
 * the directory @dir into @agent's knowledge as an ingest job, follow it
 * and print its summary. Returns a MOACTL_EXIT_* code.
 */
int ingest_on_server(const Moactl *m, const char *agent, const char *dir);

/**
 * ingest_jobs_rows() - append moad's ingest jobs to the "moactl jobs" table
 * @t (its columns), their number in @ret_n (0 from a moad without them).
 * Returns a MOACTL_EXIT_* code.
 */
int ingest_jobs_rows(const Moactl *m, Table *t, size_t *ret_n);

/** ingest_job_show() - "moactl jobs show|cancel ID" of an ingest job. */
int ingest_job_show(const Moactl *m, const char *id, int cancel);

/**
 * jobs_table_add() - one row of the "moactl jobs" table: @job's id and
 * status, @done, @failed, its creation time and owner. 0 or -ENOMEM.
 */
int jobs_table_add(Table *t, const json_t *job, const char *done, long long failed);

/** jobs_fmt_time() - "2026-12-03 08:00:00" (UTC) of the Unix time @o[@key], "-" for none. */
void jobs_fmt_time(char *buf, size_t n, const json_t *o, const char *key);

/**
 * ingest_option() - store one of ingest's options in @o: @which is 'r' or
 * the index of the option in --base, --title, --include, --exclude,
 * --sync, --dry-run, --server; @arg its argument. Returns 0, -EINVAL for an empty
 * argument, -E2BIG past MOACTL_MAX_GLOBS patterns.
 */
int ingest_option(IngestOpts *o, int which, const char *arg);

/**
 * ask_attach() - read, convert and put @files (paths, "-" for stdin at most
 * once) into @moa's "documents" ({title: the path as given, source: its
 * absolute path, text}) and @docs into its "doc_filter". Prints why a file
 * cannot be attached. Returns a MOACTL_EXIT_* code.
 */
int ask_attach(json_t *moa, const char *const *files, size_t n_files, const char *const *docs,
               size_t n_docs);

/** parse_timeout() - a --timeout value: whole seconds, 0 to 604800 (a week); 0 or -EINVAL. */
int parse_timeout(const char *s, long *ret);

/** usage_error() - print "moactl: <message>" and a hint; returns MOACTL_EXIT_USAGE. */
int usage_error(const char *fmt, ...) _printf_(1, 2);

/**
 * read_question() - @arg itself, or all of stdin when @arg is "-" (bounded
 * by MOACTL_MAX_RESPONSE, trailing white space removed). Returns 0 and a
 * malloc'ed string, -EILSEQ when it is not UTF-8 text, or another -errno.
 */
int read_question(const char *arg, char **ret);

/**
 * moactl_convert_limits() - the limits of a document conversion
 * (CONVERT_LIMITS_DEFAULT, the times overridden by MOACTL_CONVERT_TIMEOUT
 * and MOACTL_CONVERT_CPU when those hold 1 to 86400 seconds), no cancel fd.
 */
ConvertLimits moactl_convert_limits(void);
