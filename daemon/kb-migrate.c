/* kb-migrate.c — moad --migrate-knowledge: every agent's knowledge copied
 * from the other backend into the configured one, document by document
 * with its chunks as they were cut, then checked on both sides. */
#include <sys/stat.h>

#include "build-config.h"
#include "kb-migrate.h"
#include "kb-pg.h"
#include "log.h"
#include "sha256.h"
#include "util.h"

typedef struct DocList {
        KbDocInfo *v;
        char **strings; /* title, source, sha256 of each, owned */
        size_t n;
} DocList;

static void doc_list_done(DocList *l) {
        strv_free_n(l->strings, l->n * 3);
        free(l->v);
        *l = (DocList){};
}

static int doc_list_add(const KbDocInfo *d, void *userdata) {
        DocList *l = userdata;
        KbDocInfo *v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        l->v = v;
        char **s = realloc(l->strings, (l->n + 1) * 3 * sizeof(char *));
        if (!s)
                return -ENOMEM;
        l->strings = s;
        s += l->n * 3;
        s[0] = strdup(d->title);
        s[1] = strdup(d->source ?: "");
        s[2] = strdup(d->sha256 ?: "");
        if (!s[0] || !s[1] || !s[2]) {
                free(s[0]);
                free(s[1]);
                free(s[2]);
                return -ENOMEM;
        }
        v[l->n] = *d;
        v[l->n].title = s[0];
        v[l->n].source = s[1];
        v[l->n].sha256 = s[2];
        l->n++;
        return 0;
}

/* A SHA-256 over a document's chunks: each text and heading with its
 * length, so that moving them between backends is checked byte for byte. */
static int chunks_digest(Kb *kb, const char *title, char ret[static 65], size_t *ret_n) {
        char **t = NULL, **h = NULL;
        size_t n = 0;
        int r = kb_document_chunks(kb, title, &t, &h, &n);
        if (r < 0)
                return r;
        Sha256 c;
        sha256_init(&c);
        for (size_t i = 0; i < n; i++) {
                uint64_t lens[2] = {strlen(t[i]), strlen(h[i])};
                sha256_update(&c, lens, sizeof(lens));
                sha256_update(&c, t[i], lens[0]);
                sha256_update(&c, h[i], lens[1]);
        }
        sha256_final_hex(&c, ret);
        strv_free_n(t, n);
        strv_free_n(h, n);
        *ret_n = n;
        return 0;
}

static const KbDocInfo *doc_find(const DocList *l, const char *title) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->v[i].title, title))
                        return &l->v[i];
        return NULL;
}

/* Copies and checks one agent; 0 or -errno, with what went wrong on @out. */
static int migrate_agent(const char *agent, Kb *from, Kb *to, const char *from_name, const char *to_name,
                         FILE *out) {
        _cleanup_(doc_list_done) DocList src = {}, dst = {};
        int r = kb_list(from, doc_list_add, &src);
        if (r < 0) {
                fprintf(out, "%s: cannot list %s: %s\n", agent, from_name, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < src.n; i++) {
                char **t = NULL, **h = NULL;
                size_t n = 0;
                r = kb_document_chunks(from, src.v[i].title, &t, &h, &n);
                if (r >= 0)
                        r = kb_ingest_chunks(to, &src.v[i], t, h, n);
                strv_free_n(t, n);
                strv_free_n(h, n);
                if (r < 0) {
                        fprintf(out, "%s: cannot copy '%s' into %s: %s\n", agent, src.v[i].title, to_name,
                                strerror(-r));
                        return r;
                }
        }
        /* the check: every document on the other side, with the same
         * file hash, size and chunks */
        r = kb_list(to, doc_list_add, &dst);
        if (r < 0) {
                fprintf(out, "%s: cannot list %s: %s\n", agent, to_name, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < src.n; i++) {
                const KbDocInfo *a = &src.v[i], *b = doc_find(&dst, a->title);
                char da[65], db[65];
                size_t na = 0, nb = 0;
                if (!b || !streq(a->sha256, b->sha256) || a->bytes != b->bytes ||
                    a->n_chunks != b->n_chunks || chunks_digest(from, a->title, da, &na) < 0 ||
                    chunks_digest(to, a->title, db, &nb) < 0 || na != nb || !streq(da, db)) {
                        fprintf(out, "%s: '%s' differs in %s after copying\n", agent, a->title, to_name);
                        return -EIO;
                }
        }
        fprintf(out, "%s: %zu documents copied from %s to %s and checked (%zu documents there)\n", agent,
                src.n, from_name, to_name, dst.n);
        return 0;
}

/** kb_migrate() - see kb-migrate.h. */
int kb_migrate(const Config *cfg, FILE *out) {
        const KnowledgeConfig *kc = &cfg->knowledge;
        int to_pg = kc->backend == KNOWLEDGE_POSTGRESQL, failed = 0;
        _cleanup_free_ char *dir = NULL;

        if (!kc->conninfo) {
                fprintf(out, "moad: --migrate-knowledge moves knowledge between SQLite and PostgreSQL: set "
                             "knowledge.conninfo (and knowledge.backend to the backend to move to)\n");
                return -EINVAL;
        }
        KbPgConfig pc = {.conninfo = kc->conninfo,
                         .password_file = kc->password_file,
                         .connect_timeout_s = kc->connect_timeout_s,
                         .statement_timeout_ms = kc->statement_timeout_ms};
        if (kb_pg_configure(&pc) < 0)
                return -ENOMEM;
        if (asprintf(&dir, "%s/kb", isempty(cfg->state_dir) ? MOAD_STATE_DIR : cfg->state_dir) < 0)
                return -ENOMEM;
        if (!to_pg && mkdir(dir, 0750) < 0 && errno != EEXIST) {
                int r = -errno;
                fprintf(out, "moad: cannot create %s: %s\n", dir, strerror(-r));
                return r;
        }

        for (size_t i = 0; i < cfg->n_agents; i++) {
                const AgentConfig *ac = &cfg->agents[i];
                _cleanup_free_ char *file = NULL, *locator = kb_pg_locator(ac->name, ac->language);
                Kb *sqlite = NULL, *pg = NULL;
                int r;

                if (!ac->enabled || isempty(ac->name))
                        continue;
                if (!locator || asprintf(&file, "%s/%s.db", dir, ac->name) < 0)
                        return -ENOMEM;
                if (to_pg && access(file, F_OK) < 0) {
                        fprintf(out, "%s: no SQLite knowledge at %s, nothing to copy\n", ac->name, file);
                        continue;
                }
                r = kb_open(file, 0, &sqlite);
                if (r >= 0)
                        r = kb_open(locator, 0, &pg);
                if (r >= 0)
                        r = kb_check(pg);
                if (r < 0)
                        fprintf(out, "%s: cannot open %s: %s\n", ac->name, sqlite ? locator : file,
                                strerror(-r));
                else
                        r = to_pg ? migrate_agent(ac->name, sqlite, pg, file, locator, out)
                                  : migrate_agent(ac->name, pg, sqlite, locator, file, out);
                kb_close(pg);
                kb_close(sqlite);
                failed |= r < 0;
        }
        return failed ? -EIO : 0;
}
