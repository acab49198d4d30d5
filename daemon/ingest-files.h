/* ingest-files.h — which files "moactl ingest" (or an ingest job) reads and what each
 * document is called: directory walks with --include/--exclude, and titles
 * that are paths relative to a base directory, so two files of the same
 * name in different directories never collide. */
#pragma once

#include <stddef.h>

/* Bounds on what one ingest run looks at. */
#define INGEST_MAX_FILES 100000u /* files found (refused ones included) */
#define INGEST_MAX_DEPTH 64u     /* directory levels below an argument */
#define INGEST_MAX_PATH 4096u    /* bytes of a path, as PATH_MAX */
#define INGEST_MAX_GLOBS 64u     /* --include plus --exclude options */

typedef struct IngestFile {
        char *path;        /* as found: the argument, or a directory argument joined with names */
        char *title;       /* path relative to the base; NULL when it could not be made (see error) */
        const char *error; /* static: why this file is refused before reading it, or NULL */
} IngestFile;

typedef struct IngestFiles {
        IngestFile *files;
        size_t n, cap;
        /* Every relative path (title) seen under a directory, filtered or not,
         * for --sync to tell "gone" from "excluded". */
        char **seen;
        size_t n_seen, cap_seen;
        int seen_sorted;
        /* Links to a file of the same tree ("GPL" -> "GPL-3" in
         * /usr/share/common-licenses), not ingested twice: that file is,
         * under its own name. */
        size_t n_links;
} IngestFiles;

typedef struct IngestFilter {
        const char *const *include; /* empty: everything */
        size_t n_include;
        const char *const *exclude;
        size_t n_exclude;
} IngestFilter;

/** ingest_files_done() - free what @f holds and zero it. */
void ingest_files_done(IngestFiles *f);

/**
 * path_common_parent() - the deepest directory containing each of the @n
 * absolute, normalised paths @paths (the parent of each path, for a file
 * or a directory alike). Returns 0 and a malloc'ed path ("/" at worst),
 * -EINVAL for no or relative paths, -ENOMEM.
 */
int path_common_parent(const char *const *paths, size_t n, char **ret);

/**
 * path_relative() - @path (absolute, normalised) relative to the directory
 * @base (likewise). Returns 0 and a malloc'ed path, -EXDEV when @path is
 * not below @base (or is @base itself), -ENOMEM.
 */
int path_relative(const char *base, const char *path, char **ret);

/**
 * ingest_filter_match() - whether a file passes @f: it matches one
 * --include (if any) and no --exclude. A file is matched by its title
 * @rel and, if not NULL, by its path @rel_arg relative to the directory
 * argument it was found in; a pattern with a '/' is fnmatch(3)ed against
 * those whole paths ('*' crosses '/'), one without also against the file
 * name alone, so "*.md" and "copyright" match at any depth.
 */
int ingest_filter_match(const IngestFilter *f, const char *rel, const char *rel_arg);

/**
 * ingest_files_add() - add the argument @arg: a file as it is (no filter;
 * title @title if not NULL, else its path relative to @base), a directory
 * walked recursively in name order (hidden entries and symbolic links to
 * directories skipped, files filtered by @filter, titles relative to
 * @base). Per-file trouble (unreadable, too deep, path or title too long,
 * not below @base) is recorded in the file's error and does not stop the
 * walk. Returns 0, -E2BIG past INGEST_MAX_FILES, -ENOMEM, or -errno when
 * @arg itself cannot be examined.
 */
int ingest_files_add(IngestFiles *files, const char *arg, const char *base, const char *title,
                     const IngestFilter *filter);

/**
 * ingest_files_dedup() - refuse every file whose title an earlier file in
 * @files already has (an argument given twice, or a file both named and
 * inside a named directory), so no document is sent twice in one run.
 * Returns 0 or -ENOMEM.
 */
int ingest_files_dedup(IngestFiles *files);

/**
 * ingest_files_seen() - whether the relative path @rel was seen under a
 * walked directory (filtered out or not). Call after the last add (the
 * first call sorts, the rest search in O(log n)).
 */
int ingest_files_seen(IngestFiles *files, const char *rel);
