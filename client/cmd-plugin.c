/* cmd-plugin.c — moactl plugin new NAME [--dir DIR]: write a buildable
 * plugin skeleton (C file, Makefile using pkg-config moa-plugin, agents.d
 * file, knowledge folder, labelled example questions). Local only: it
 * never talks to moad. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sys/stat.h>

#include "moactl.h"

#define PLUGIN_NAME_MAX 32

typedef struct Scaffold {
        const char *name; /* validated [a-z][a-z0-9_]* */
        char *dir;        /* absolute DIR/NAME */
} Scaffold;

/* The C file. @NAME@ is replaced by the plugin's name. */
static const char scaffold_c[] =
        "/* @NAME@.c — the @NAME@ expert, a moad agent plugin.\n"
        " *\n"
        " * Built by `make` against the installed SDK (pkg-config moa-plugin); the\n"
        " * ABI is documented in <moa/plugin.h>, the helpers in <moa/plugin-util.h>,\n"
        " * the whole path (build, add, reload, check, debug) in moad's\n"
        " * docs/plugins.md. */\n"
        "#include <errno.h>\n"
        "#include <stdlib.h>\n"
        "#include <string.h>\n"
        "\n"
        "#include <moa/plugin.h>\n"
        "#include <moa/plugin-util.h>\n"
        "\n"
        "/* The default system prompt; an agent file's `prompt:` replaces it. */\n"
        "#define DEFAULT_PROMPT                                                                  \\\n"
        "        \"You are the @NAME@ expert. Answer from the numbered context passages, cite \"     \\\n"
        "        \"them as [n], and say plainly when they do not answer the question.\"\n"
        "\n"
        "/* The routing prior: words of the domain (weight > 0) and other senses of\n"
        " * them (weight < 0). Patterns are matched on normalised words (lower case,\n"
        " * accents folded): `*` is a prefix, `|` separates alternatives, a space\n"
        " * separates the words of a phrase. See docs/routing.md. */\n"
        "static const MuLex lexicon[] = {\n"
        "        {\"@NAME@\", 1.0, NULL, \"@NAME@\"},\n"
        "        /* TODO: the words your users use, e.g.\n"
        "         * {\"certificate*|tls|ssl\", 1.0, NULL, \"certificates\"},\n"
        "         * {\"security deposit\", -1.0, NULL, \"other sense: tenancy\"}, */\n"
        "};\n"
        "\n"
        "/* The notice review appends, by answer language (en, de, fr, es), and the\n"
        " * words that show an answer already carries it. */\n"
        "static const char *const notices[4] = {\n"
        "        \"This answer is general information from the @NAME@ expert.\",\n"
        "        \"Diese Antwort ist eine allgemeine Information des @NAME@-Experten.\",\n"
        "        \"Cette réponse est une information générale de l'expert @NAME@.\",\n"
        "        \"Esta respuesta es información general del experto en @NAME@.\",\n"
        "};\n"
        "static const char *const markers[4] = {\"general information from the @NAME@\",\n"
        "                                       \"allgemeine Information des @NAME@\",\n"
        "                                       \"information générale de l'expert @NAME@\",\n"
        "                                       \"información general del experto en @NAME@\"};\n"
        "\n"
        "typedef struct Expert {\n"
        "        MuState mu; /* prompt, host, options max_passages, max_passage_chars, review */\n"
        "        int disclaimer;\n"
        "} Expert;\n"
        "\n"
        "static int32_t @NAME@_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,\n"
        "                          void **ret_state) {\n"
        "        Expert *e = calloc(1, sizeof(*e));\n"
        "        if (!e)\n"
        "                return -ENOMEM;\n"
        "        int r = mu_state_setup(&e->mu, host, ctx, info, DEFAULT_PROMPT);\n"
        "        if (r < 0) {\n"
        "                free(e);\n"
        "                return r;\n"
        "        }\n"
        "        e->disclaimer = mu_option_bool(host, ctx, \"disclaimer\", 1);\n"
        "        *ret_state = e;\n"
        "        return 0;\n"
        "}\n"
        "\n"
        "static void @NAME@_fini(void *state) {\n"
        "        free(state);\n"
        "}\n"
        "\n"
        "static int32_t @NAME@_score(void *state, const char *query, double *ret_score, char *reason,\n"
        "                           uint32_t reason_size) {\n"
        "        MuText t;\n"
        "        (void) state; /* one lexicon for every instance */\n"
        "        if (mu_text_init(&t, query) < 0)\n"
        "                return -ENOMEM;\n"
        "        double evidence = mu_lex_score(&t, lexicon, sizeof(lexicon) / sizeof(lexicon[0]), reason,\n"
        "                                       reason_size);\n"
        "        mu_text_done(&t);\n"
        "        *ret_score = mu_squash_signed(evidence, 1.0); /* [-1, 1]: below 0 is an other sense */\n"
        "        return 0;\n"
        "}\n"
        "\n"
        "static int32_t @NAME@_build_prompt(void *state, const char *query, const MoaKbHit *hits,\n"
        "                                  uint32_t n_hits, char **ret_system, char **ret_context) {\n"
        "        const Expert *e = state;\n"
        "        MuBuf sys = {0}, ctx = {0};\n"
        "        (void) query; /* @hits were retrieved for it */\n"
        "        mu_buf_add(&sys, e->mu.prompt);\n"
        "        for (uint32_t i = 0; i < n_hits && i < e->mu.max_passages; i++) {\n"
        "                mu_buf_printf(&ctx, \"[%u] %s\\n\", (unsigned) i + 1, hits[i].title);\n"
        "                mu_add_clipped(&ctx, hits[i].text, e->mu.max_passage_chars);\n"
        "                mu_buf_add(&ctx, \"\\n\\n\");\n"
        "        }\n"
        "        return mu_return_prompt(&e->mu, &sys, &ctx, ret_system, ret_context);\n"
        "}\n"
        "\n"
        "/* @answer is the final answer; it may end in a newline (mu_buf_rtrim). */\n"
        "static int32_t @NAME@_review(void *state, const char *answer, char **ret_answer) {\n"
        "        const Expert *e = state;\n"
        "        MuBuf out = {0};\n"
        "        if (!e->mu.review) {\n"
        "                *ret_answer = NULL; /* unchanged */\n"
        "                return 0;\n"
        "        }\n"
        "        mu_redact(answer, MU_REDACT_EMAIL | MU_REDACT_PHONE, &out);\n"
        "        mu_buf_rtrim(&out);\n"
        "        if (e->disclaimer)\n"
        "                mu_append_notice(&out, answer, markers, notices);\n"
        "        return mu_buf_finish(e->mu.host, &out, ret_answer);\n"
        "}\n"
        "\n"
        "static const MoaPlugin descriptor = {\n"
        "        MOA_PLUGIN_HEADER,\n"
        "        .name = \"@NAME@\",\n"
        "        .version = \"0.1.0\",\n"
        "        .description = \"TODO: what the @NAME@ expert knows\",\n"
        "        .init = @NAME@_init,\n"
        "        .score = @NAME@_score,\n"
        "        .build_prompt = @NAME@_build_prompt,\n"
        "        .review = @NAME@_review,\n"
        "        .fini = @NAME@_fini,\n"
        "};\n"
        "MOA_PLUGIN_DEFINE(descriptor)\n";

static const char scaffold_makefile[] =
        "# Builds the @NAME@ plugin against the installed moad plugin SDK.\n"
        "#   make            @NAME@.so\n"
        "#   make check      moad --check-plugin on it, with questions.tsv\n"
        "#   make install    into moad's plugin directory (DESTDIR honoured)\n"
        "PKG_CONFIG ?= pkg-config\n"
        "MOAD ?= moad\n"
        "CFLAGS ?= -O2 -g -Wall -Wextra\n"
        "SDK_CFLAGS := $(shell $(PKG_CONFIG) --cflags moa-plugin)\n"
        "SDK_LIBS := $(shell $(PKG_CONFIG) --libs moa-plugin)\n"
        "PLUGINDIR ?= $(shell $(PKG_CONFIG) --variable=plugindir moa-plugin)\n"
        "\n"
        "all: @NAME@.so\n"
        "\n"
        "# Written in one step: a running moad loads the new file on its next reload.\n"
        "@NAME@.so: @NAME@.c\n"
        "\t$(CC) $(CFLAGS) -fPIC -fvisibility=hidden $(SDK_CFLAGS) $(LDFLAGS) -shared -o $@ $< $(SDK_LIBS) "
        "$(LDLIBS)\n"
        "\n"
        "check: @NAME@.so\n"
        "\t$(MOAD) --check-plugin ./@NAME@.so --agent-file @NAME@.yaml --queries questions.tsv\n"
        "\n"
        "install: @NAME@.so\n"
        "\tinstall -D -m 0644 @NAME@.so $(DESTDIR)$(PLUGINDIR)/@NAME@.so\n"
        "\n"
        "clean:\n"
        "\trm -f @NAME@.so\n"
        "\n"
        ".PHONY: all check install clean\n";

static const char scaffold_yaml[] =
        "# The @NAME@ agent. Copy this file into moad's agents.d (e.g.\n"
        "# /etc/moad/agents.d/), then `moactl reload`.\n"
        "name: @NAME@\n"
        "description: TODO one line on what the @NAME@ expert knows\n"
        "# the built plugin; after `make install` simply: plugin: @NAME@\n"
        "plugin: \"@DIR@/@NAME@.so\"\n"
        "weight: 1.0\n"
        "# Ingested when the agent's knowledge base is empty. After editing it:\n"
        "#   moactl ingest --agent @NAME@ --sync \"@DIR@/knowledge\"\n"
        "knowledge:\n"
        "  - \"@DIR@/knowledge\"\n"
        "# Questions people ask this expert, in their words: the router learns from them.\n"
        "examples:\n"
        "  - TODO what is a typical question for the @NAME@ expert?\n"
        "options:\n"
        "  disclaimer: \"yes\"\n";

static const char scaffold_knowledge[] =
        "# The @NAME@ expert\n"
        "\n"
        "TODO: replace this file with the @NAME@ expert's documents (Markdown, text,\n"
        "HTML, PDF). Sections follow the headings; answers quote the best passage.\n";

static const char scaffold_questions[] =
        "# Labelled questions for `make check` (moad --check-plugin --queries):\n"
        "# labels<TAB>question, labels being agent names, comma-separated\n"
        "# (a question for two experts: legal,@NAME@). Add real questions for\n"
        "# @NAME@ and questions that must NOT reach it (labelled with the agent\n"
        "# that should answer, or general).\n"
        "@NAME@\tWhat does the @NAME@ expert say about this?\n"
        "legal\tCan my landlord keep my deposit after I moved out?\n"
        "medical\tI have had a fever for three days, should I see a doctor?\n"
        "general\tWhat is the capital of Australia?\n";

static int name_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > PLUGIN_NAME_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return 0;
        return 1;
}

/* @tmpl with @NAME@ and @DIR@ replaced; @DIR@ is YAML-escaped (it sits in
 * double quotes). */
static char *expand(const Scaffold *s, const char *tmpl) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        for (const char *p = tmpl; *p;) {
                if (strncmp(p, "@NAME@", 6) == 0) {
                        fputs(s->name, f);
                        p += 6;
                } else if (strncmp(p, "@DIR@", 5) == 0) {
                        for (const char *d = s->dir; *d; d++) {
                                if (*d == '"' || *d == '\\')
                                        fputc('\\', f);
                                fputc(*d, f);
                        }
                        p += 5;
                } else
                        fputc(*p++, f);
        }
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(buf);
}

/* Write @rel under the scaffold directory; never overwrites. */
static int write_file(const Scaffold *s, const char *rel, const char *tmpl) {
        _cleanup_free_ char *path = NULL, *text = expand(s, tmpl);
        _cleanup_close_ int fd = -1;

        if (!text || asprintf(&path, "%s/%s", s->dir, rel) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
                fprintf(stderr, "moactl: cannot create %s: %s\n", path, strerror(errno));
                return -errno;
        }
        size_t n = strlen(text);
        for (size_t done = 0; done < n;) {
                ssize_t w = write(fd, text + done, n - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0) {
                        fprintf(stderr, "moactl: cannot write %s: %s\n", path, strerror(errno));
                        return -errno;
                }
                done += (size_t) w;
        }
        printf("  %s\n", path);
        return 0;
}

static int plugin_new(int argc, char **argv) {
        static const struct option options[] = {{"dir", required_argument, NULL, 'd'}, {}};
        _cleanup_free_ char *parent = NULL, *knowledge = NULL, *c_file = NULL, *yaml = NULL, *doc = NULL;
        const char *dir = ".";
        Scaffold s = {};
        int c, code = MOACTL_EXIT_FAILED;

        optind = 0;
        while ((c = getopt_long(argc, argv, ":d:", options, NULL)) >= 0) {
                if (c == 'd' && *optarg)
                        dir = optarg;
                else if (c == 'd')
                        return usage_error("--dir needs a non-empty argument");
                else
                        return usage_error("plugin new: %s %s",
                                           c == ':' ? "option needs an argument:" : "unknown option",
                                           argv[optind - 1]);
        }
        if (argc - optind != 1)
                return usage_error("plugin new needs exactly one NAME");
        s.name = argv[optind];
        if (!name_valid(s.name))
                return usage_error("plugin name \"%.64s\" must be 1-%d characters a-z, 0-9 or _, starting "
                                   "with a letter (it becomes a C identifier and a file name)",
                                   s.name, PLUGIN_NAME_MAX);
        parent = realpath(dir, NULL);
        if (!parent) {
                fprintf(stderr, "moactl: %s: %s\n", dir, strerror(errno));
                return MOACTL_EXIT_FAILED;
        }
        if (asprintf(&s.dir, "%s/%s", parent, s.name) < 0) {
                s.dir = NULL;
                goto out;
        }
        if (asprintf(&knowledge, "%s/knowledge", s.dir) < 0) {
                knowledge = NULL;
                goto out;
        }
        for (const char *p = s.dir; *p; p++)
                if ((unsigned char) *p < 0x20) {
                        fprintf(stderr, "moactl: the directory name has control characters\n");
                        goto out;
                }
        if (mkdir(s.dir, 0755) < 0) {
                fprintf(stderr, "moactl: cannot create %s: %s%s\n", s.dir, strerror(errno),
                        errno == EEXIST ? " (nothing was overwritten)" : "");
                goto out;
        }
        if (mkdir(knowledge, 0755) < 0) {
                fprintf(stderr, "moactl: cannot create %s: %s\n", knowledge, strerror(errno));
                goto out;
        }
        printf("moactl: plugin %s written:\n", s.name);
        if (asprintf(&c_file, "%s.c", s.name) < 0)
                c_file = NULL;
        if (asprintf(&yaml, "%s.yaml", s.name) < 0)
                yaml = NULL;
        if (asprintf(&doc, "knowledge/%s.md", s.name) < 0)
                doc = NULL;
        if (!c_file || !yaml || !doc)
                goto out;
        if (write_file(&s, c_file, scaffold_c) < 0 || write_file(&s, "Makefile", scaffold_makefile) < 0 ||
            write_file(&s, yaml, scaffold_yaml) < 0 || write_file(&s, doc, scaffold_knowledge) < 0 ||
            write_file(&s, "questions.tsv", scaffold_questions) < 0)
                goto out;
        printf("Next: cd %s && make && make check, then copy %s.yaml into moad's agents.d and run "
               "'moactl reload' (see docs/plugins.md).\n",
               s.dir, s.name);
        code = MOACTL_EXIT_OK;
out:
        free(s.dir);
        return code;
}

int cmd_plugin(const Moactl *m, int argc, char **argv) {
        if (argc < 1)
                return usage_error("plugin needs a subcommand: new");
        if (streq(argv[0], "new"))
                return plugin_new(argc, argv);
        return usage_error("unknown plugin subcommand \"%.64s\" (known: new)", argv[0]);
}
