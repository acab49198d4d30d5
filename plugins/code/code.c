/* SPDX-License-Identifier: MIT */
/* code.c — the software specialist: routes programming, debugging, tooling
 * and operations questions (English, German, French, Spanish) and also
 * looks at the raw query for code syntax (braces, calls, operators,
 * keywords, stack traces); gives its passages as fenced snippets with their
 * origin; reviews answers by fencing unfenced code lines in ``` blocks
 * with a language tag and redacting secrets (API keys, tokens, passwords).
 *
 * Options: language (default language tag for fences, e.g. "c"),
 * fence (yes/no), plus the common max_passages, max_passage_chars, review. */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <moa/plugin-util.h>

static const char default_prompt[] =
        "You are a senior software engineer. Answer with correct, minimal, runnable code in fenced "
        "blocks tagged with the language, explain the root cause before the fix, mention edge cases, "
        "error handling and security implications, and cite the numbered references from the "
        "context as [n]. Do not invent APIs or flags; say which version a behaviour depends on.";

static const MuLex lexicon[] = {
        {"programming|programmer*|coding|coder|source code|codebase|software "
         "engineer*|developer*|software|refactor*|code review",
         1.2, NULL, "programming"},
        {"code", 0.7, NULL, "code"},
        {"python|javascript|typescript|java|golang|rust|rustc|c++|cpp|c#|csharp|kotlin|swift|ruby|php|perl|"
         "haskell|scala|elixir|erlang|lua|bash|zsh|powershell|sql|html|css|wasm|webassembly|fortran|cobol|"
         "assembly|asm",
         1.1, NULL, "language"},
        {"in c|c program|c code|c function|c pointer*|ansi "
         "c|c11|c99|gcc|clang|llvm|cmake|makefile|linker|compile*|compiler|segfault|segmentation fault|core "
         "dump*|undefined reference|undefined behavio*|valgrind|gdb|asan|sanitizer",
         1.3, NULL, "C toolchain"},
        {"bug|bugs|debug*|stack trace|stacktrace|traceback|exception|exceptions|null "
         "pointer|nullpointerexception|typeerror|valueerror|keyerror|syntaxerror|indexerror|attributeerror|"
         "runtimeerror|error message|throws|throw|stack overflow|off by one|race condition|deadlock|memory "
         "leak|dangling|use after free|buffer overflow",
         1.1, NULL, "debugging"},
        {"function|functions|method|methods|variable*|array|arrays|string|strings|integer|int|float|struct|"
         "structs|pointer*|class|classes|object|objects|interface|enum|typedef|loop|loops|for loop|while "
         "loop|recursion|recursive|callback*|closure*|lambda*|regex|regular "
         "expression|json|yaml|xml|csv|parse|parsing|parser",
         0.5, NULL, "constructs"},
        {"dependency injection|design pattern*|singleton|inversion of control|solid principles|object "
         "oriented|oop|mvc|microservice*|solidity|smart contract*|web3|evm",
         1.2, NULL, "architecture"},
        {"password hash*|hash passwords|hashing|store passwords|storing passwords|encrypt*|decrypt*|sql "
         "injection|xss|csrf|authentication|oauth|jwt",
         1.0, NULL, "security"},
        {"algorithm*|data structure*|linked list|hash map|hashmap|hash table|binary tree|binary "
         "search|sorting algorithm|quicksort|merge sort|big o|time complexity|dynamic "
         "programming|leetcode|graph traversal|bfs|dfs",
         1.1, NULL, "algorithms"},
        {"git|github|gitlab|commit|commits|merge conflict|pull request|rebase|git branch|cherry "
         "pick|stash|repo|repository",
         1.1, NULL, "version control"},
        {"docker|dockerfile|container|containers|kubernetes|k8s|kubectl|helm|pod|pods|terraform|ansible|ci "
         "cd|ci pipeline|github actions|jenkins|deploy*|nginx|apache httpd|systemd|systemctl|cron|crontab",
         1.1, NULL, "devops"},
        {"linux|ubuntu|debian|fedora|kernel panic|kernel module|kernel|syscall*|system "
         "call|posix|unix|terminal|command line|shell script|cli|ssh|sudo|chmod|permissions "
         "denied|permission denied|file descriptor*|epoll|socket|sockets|tcp|udp|http|https|dns|tls|ssl "
         "certificate",
         0.9, NULL, "systems"},
        {"api|apis|rest "
         "api|endpoint*|graphql|grpc|backend|frontend|server|microservice*|database|databases|postgres*|"
         "postgresql|mysql|sqlite|mongodb|redis|orm|query optimi*|index on|sql query|schema migration",
         0.9, NULL, "backend"},
        {"react|vue|angular|svelte|node|nodejs|node js|npm|yarn|webpack|vite|django|flask|fastapi|spring "
         "boot|rails|laravel|express js|next js|dom|browser console|jquery",
         1.1, NULL, "web"},
        {"pip|pip install|conda|virtualenv|venv|cargo|crate|crates|maven|gradle|nuget|package "
         "manager|dependency|dependencies|library|libraries|framework|sdk|ide|vscode|vs "
         "code|vim|emacs|intellij|eclipse|jupyter|notebook",
         0.6, NULL, "tooling"},
        {"unit test*|pytest|junit|test suite|mock|mocking|tdd|integration test*|flaky test*|code "
         "coverage|linter|lint|type checker|mypy|eslint",
         1.0, NULL, "testing"},
        {"machine learning|neural "
         "network*|pytorch|tensorflow|numpy|pandas|dataframe|scikit|sklearn|gpu|cuda|llm fine tun*|training "
         "loop",
         0.9, NULL, "ML engineering"},
        {"async|await|promise|promises|thread|threads|threading|mutex|concurrency|parallelism|goroutine*|"
         "coroutine*|event loop|futures",
         0.8, NULL, "concurrency"},
        {"heap memory|heap allocation|malloc|calloc|realloc|garbage collect*|memory allocation|stack "
         "memory|heap sort|min heap|max heap",
         0.8, NULL, "memory"},
        {"install|installed|installation|configure|config file|build|build "
         "error|crash|crashes|crashing|freez*|slow|performance|optimi*|cache|caching|timeout|latency",
         0.25, NULL, NULL},
        {"app|apps|application|website|web app|mobile app|android|ios|windows|macos|excel "
         "formula|vba|spreadsheet formula|script|scripts|automate|automation",
         0.35, NULL, NULL},
        {"syntax|compile error|runtime error|type error|stack|queue|bitwise|binary|hexadecimal|utf "
         "8|unicode|encoding|byte|bytes|bit|bits",
         0.5, NULL, NULL},
        {"how to implement|implement a|implementation of|write a function|write a script|write a "
         "program|code snippet|example code|sample code|hello world",
         1.0, NULL, "implementation"},

        /* German, French, Spanish */
        {"programmier*|quellcode|fehlermeldung|datenbank|entwickler*|softwareentwickl*|kompilier*|skript|"
         "funktion|schleife|absturz|sturzt ab|speicherleck",
         1.1, NULL, "Programmierung (de)"},
        {"programmation|programmer en|langage de programmation|base de "
         "donnees|logiciel*|developpeur*|compil*|fonction|boucle|serveur|bogue|plantage|script",
         1.0, NULL, "programmation (fr)"},
        {"programacion|programar|programador*|lenguaje de programacion|base de datos|codigo "
         "fuente|desarrollador*|compilar|funcion|bucle|servidor|depurar|fallo de segmentacion",
         1.0, NULL, "programacion (es)"},

        /* other senses */
        {"python|pythons", -2.2,
         "snake|snakes|pet|reptile|ball python|burmese|terrarium|zoo|feed "
         "my|eat|ate|swallow|constrictor|monty python|flying circus",
         "python (snake/comedy)"},
        {"java", -1.8, "coffee|island|indonesia|jakarta|bali|sumatra|sea|trip|travel|visit",
         "Java (island/coffee)"},
        {"rust|rusty|rusted", -2.2,
         "car|bike|bicycle|chain|metal|iron|steel|stain*|remove "
         "rust|tools|pipes|fence|boat|paint|vinegar|oxid*|sink|bathroom|clean*|cast iron|pan|pans",
         "rust (corrosion)"},
        {"ruby", -1.5, "ring|gemstone|gem|jewel*|necklace|birthstone|red ruby|anniversary", "ruby (gem)"},
        {"kernel", -1.6,
         "popcorn|corn|wheat|nut|kernels of|kernel of truth|grain|seed|kernel density|svm kernel|gaussian "
         "kernel",
         "kernel (grain)"},
        {"bug|bugs", -2.0,
         "bite|bites|insect*|bed bug*|bedbug*|stomach "
         "bug|spray|garden|ladybug|itchy|mosquito*|ants|cockroach*|pest*",
         "bug (insect/illness)"},
        {"code", -1.6,
         "zip code|dress code|postal code|postcode|area code|penal code|civil code|tax code|legal code|code "
         "of conduct|morse code|country code|qr code|discount code|promo code|coupon code|cheat code|da "
         "vinci code|building code|code civil|code penal|codigo civil|codigo penal|code red|code blue|bar "
         "code|barcode",
         "code (non-software)"},
        {"function|functions", -1.1,
         "kidney|liver|lung|thyroid|brain|cognitive|bodily|heart function|immune|sexual|function of "
         "the|social function|wedding|event",
         "bodily function"},
        {"program|programs|programme|programmes", -0.5,
         "tv|television|radio|exchange program|training program|loyalty program|degree program|phd "
         "program|master s program|government program|aid program",
         NULL},
        {"programming", -1.0,
         "tv programming|television programming|radio programming|neuro linguistic|nlp coaching", NULL},
        {"compile*", -1.3,
         "list|report|recipe*|book|anthology|bibliography|album|playlist|photos|scrapbook|statistics "
         "on|evidence",
         "compile (collect)"},
        {"crash|crashes|crashing", -0.5,
         "car crash|plane crash|market crash|stock market crash|crash diet|crash course|crashed my "
         "car|crash landing|wall street crash",
         NULL},
        {"container|containers", -1.1,
         "shipping container|food container|plastic container|tupperware|storage container",
         "container (box)"},
        {"shell", -0.8,
         "sea shell|seashell|egg shell|eggshell|shell company|shell companies|turtle shell|nut shell|in a "
         "nutshell",
         NULL},
        {"pod|pods", -1.0, "coffee pod|pea pod|seed pod|airpods|tide pods|podcast", "pod (other)"},
        {"commit|commits|repository|repo", -1.2,
         "crime|suicide|murder|fraud|perjury|adultery|commit to|committed to|commitment|repo rate|repo "
         "market|repurchase",
         "commit (other)"},
        {"deploy*", -1.0, "troops|soldiers|army|military|airbag|airbags|parachute", "deploy (military)"},
        {"exception|exceptions", -0.8,
         "exception to the rule|with the exception|exceptions to|legal exception|tax exception", NULL},
        {"string|strings", -0.5,
         "guitar|violin|cello|string quartet|string instrument|string beans|no strings attached|puppet",
         NULL},
        {"loop|loops", -0.5, "loop trail|hiking loop|feedback loop|in the loop|loop road|loop bus", NULL},
        {"server|servers", -0.6, "waiter|waitress|restaurant|tennis|tip the", "server (waiter)"},
        {"stack", -0.4, "stack of|pancakes|stack of books|chips", NULL},
        {"library|libraries", -0.6,
         "public library|library card|library books|borrow a book|librarian|local library", NULL},
        {"thread|threads", -0.8, "sewing|needle|twitter|reddit|forum|embroidery|thread count|fabric|cotton",
         "thread (other)"},
        {"script|scripts", -0.8,
         "movie script|film script|screenplay|play script|theater|theatre|actor|actors|screenwriter|script "
         "supervisor",
         "script (film)"},
        {"android|ios|windows|macos|app|apps", -0.2,
         "buy|purchase|which phone|best phone|tablet|laptop to buy", NULL},
        {"binary|bits|bit", -0.6, "non binary|nonbinary|binary star|a bit|bit of|bit more|little bit", NULL},
        {"terminal", -0.9,
         "airport|terminal illness|terminally ill|bus terminal|terminal cancer|ferry terminal|terminal "
         "1|terminal 2|terminal 3|terminal 5",
         "terminal (other)"},
        {"node", -0.6, "lymph node|lymph nodes", "lymph node"},
        {"mock|mocking", -0.7, "mock exam|mock trial|mock interview|mocking me|make fun", NULL},
        {"class|classes", -0.5,
         "yoga class|cooking class|class action|first class|business class|middle class|working class|class "
         "trip|dance class|fitness class",
         NULL},
        {"freez*|slow|crash", -0.25, "freezer|frozen food|slow cooker|freeze dried|slowly", NULL},
        {"lambda*", -0.4, "lambda sensor|lambda probe|greek letter", NULL},
        {"software|developer|developers|development", -0.7,
         "tax|taxes|income|salary|invoice|freelance|hiring|career|job offer", "software as a business"},
        {"futures", -0.8,
         "futures contract*|futures market|commodity futures|oil futures|trading futures|index futures",
         NULL},
        {"optimi*|performance", -0.25, "tax|portfolio|returns|athletic|sports|exam|workout|sleep|diet",
         NULL},
        {"fonction|funcion|funktion", -0.8, "renale|renal|hepatica|nierenfunktion|publique|publica", NULL},
};

/* Raw-text code signals that normalisation erases. */
static double syntax_evidence(const char *q, char *what, size_t what_size) {
        static const struct {
                const char *needle;
                double weight;
        } sig[] = {
                {"```", 1.5},       {"`", 0.4},         {"();", 1.0},       {"()", 0.6},
                {"{", 0.4},         {"};", 1.0},        {"->", 0.6},        {"=>", 0.5},
                {"==", 0.6},        {"!=", 0.6},        {"&&", 0.6},        {"||", 0.6},
                {"#include", 1.5},  {"def ", 0.6},      {"import ", 0.5},   {"console.log", 1.5},
                {"printf", 1.2},    {"std::", 1.5},     {"self.", 0.8},     {"this.", 0.5},
                {"$ ", 0.3},        {"--", 0.2},        {"/usr/", 0.8},     {".py", 0.9},
                {".js", 0.9},       {".c ", 0.5},       {".h ", 0.5},       {".rs", 0.6},
                {".go ", 0.4},      {".java", 0.9},     {".cpp", 1.0},      {".json", 0.8},
                {".yaml", 0.8},     {".sh", 0.6},       {"npm ", 1.0},      {"Error:", 0.8},
                {"error:", 0.8},    {"Exception", 0.8}, {"Traceback", 1.5}, {"errno", 1.0},
                {"SIGSEGV", 1.5},   {"0x", 0.5},        {"null", 0.4},      {"NULL", 0.8},
                {"[]", 0.5},        {"sudo ", 1.0},     {"./", 0.4},        {"snake_case", 0.5},
                {"camelCase", 0.5},
        };
        double ev = 0;
        size_t len = strnlen(q, MU_MAX_TEXT);
        unsigned n = 0;
        what[0] = 0;
        for (size_t i = 0; i < sizeof(sig) / sizeof(sig[0]); i++) {
                if (memmem(q, len, sig[i].needle, strlen(sig[i].needle))) {
                        ev += sig[i].weight;
                        if (n++ < 3) {
                                size_t l = strlen(what);
                                snprintf(what + l, what_size - l, "%s%s", l ? " " : "", sig[i].needle);
                        }
                }
        }
        /* identifiers_with_underscores or camelCase words (a lower-case start
         * of at least three letters, then an upper-case letter: "parseInt",
         * not "YouTube" or "iPhone") are code-ish */
        size_t lower_run = 0;
        for (size_t k = 0; k + 1 < len; k++) {
                unsigned char ch = (unsigned char) q[k];
                if (k > 0 && ch == '_' && isalpha((unsigned char) q[k - 1]) &&
                    isalpha((unsigned char) q[k + 1])) {
                        ev += 0.6;
                        break;
                }
                if (isupper(ch) && lower_run >= 3 && islower((unsigned char) q[k + 1])) {
                        ev += 0.6;
                        break;
                }
                if (islower(ch) && (lower_run > 0 || k == 0 || !isalnum((unsigned char) q[k - 1])))
                        lower_run++;
                else
                        lower_run = 0;
        }
        return ev > 2.5 ? 2.5 : ev;
}

typedef struct CodeState {
        MuState base;
        const char *language;
        int fence;
} CodeState;

static int32_t code_init(const MoaHost *host, MoaHostContext *ctx, const MoaAgentInfo *info,
                         void **ret_state) {
        CodeState *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        int r = mu_state_setup(&s->base, host, ctx, info, default_prompt);
        if (r < 0) {
                free(s);
                return r;
        }
        s->language = mu_option(host, ctx, "language");
        s->fence = mu_option_bool(host, ctx, "fence", 1);
        *ret_state = s;
        return 0;
}

static void code_fini(void *state) {
        free(state);
}

static int32_t code_score(void *state, const char *query, double *ret_score, char *reason,
                          uint32_t reason_size) {
        MuText t;
        char syn[64];
        if (mu_text_init(&t, query) < 0)
                return -ENOMEM;
        double ev = mu_lex_score(&t, lexicon, sizeof(lexicon) / sizeof(lexicon[0]), reason, reason_size);
        mu_text_done(&t);
        double sx = syntax_evidence(query, syn, sizeof(syn));
        ev += sx;
        if (sx > 0 && reason && reason_size) {
                char tmp[MOA_PLUGIN_REASON_MAX];
                snprintf(tmp, sizeof(tmp), "%s; syntax: %s", reason, syn);
                mu_set_reason(reason, reason_size, tmp);
        }
        *ret_score = mu_squash_signed(ev, 1.0);
        return 0;
}

/* Is this line of an answer code rather than prose? */
static int code_line(const char *l, size_t n) {
        size_t i = 0;
        while (i < n && (l[i] == ' ' || l[i] == '\t'))
                i++;
        if (i == n)
                return 0;
        const char *s = l + i;
        size_t m = n - i;
        if (i >= 4) {
                /* an indented block, unless it is a nested Markdown list item */
                if (m >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && s[1] == ' ')
                        return 0;
                size_t d = 0;
                while (d < m && isdigit((unsigned char) s[d]))
                        d++;
                if (d > 0 && d + 1 < m && (s[d] == '.' || s[d] == ')') && s[d + 1] == ' ')
                        return 0;
                return 1;
        }
        static const char *const starts[] = {
                "#include", "#define",  "def ",    "class ",  "import ", "from ", "return ", "int ",
                "void ",    "char ",    "static ", "const ",  "let ",    "var ",  "fn ",     "func ",
                "public ",  "private ", "if (",    "for (",   "while (", "}",     "$ ",      "sudo ",
                "git ",     "pip ",     "npm ",    "SELECT ", "select ", "#!/"};
        for (size_t k = 0; k < sizeof(starts) / sizeof(starts[0]); k++)
                if (m >= strlen(starts[k]) && memcmp(s, starts[k], strlen(starts[k])) == 0)
                        return 1;
        char last = s[m - 1];
        if (last == ';' || last == '{' || last == '}')
                return 1;
        return 0;
}

/* A language tag for a run of code lines. */
static const char *guess_language(const char *s, size_t n, const char *fallback) {
        static const struct {
                const char *needle, *lang;
        } g[] = {
                {"#include", "c"},
                {"printf(", "c"},
                {"def ", "python"},
                {"import ", "python"},
                {"console.log", "javascript"},
                {"function ", "javascript"},
                {"fn ", "rust"},
                {"func ", "go"},
                {"SELECT ", "sql"},
                {"select ", "sql"},
                {"public class", "java"},
                {"$ ", "sh"},
                {"sudo ", "sh"},
                {"git ", "sh"},
                {"#!/", "sh"},
                {"pip ", "sh"},
                {"npm ", "sh"},
        };
        for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
                size_t nl = strlen(g[i].needle);
                for (size_t k = 0; k + nl <= n; k++)
                        if (memcmp(s + k, g[i].needle, nl) == 0)
                                return g[i].lang;
        }
        return fallback ? fallback : "";
}

/* Secrets the code agent recognises: replace the value, keep the key. */
static unsigned redact_secrets(const char *s, MuBuf *out) {
        static const char *const prefixes[] = {"sk-",   "ghp_", "gho_", "github_pat_", "xoxb-",
                                               "xoxp-", "AKIA", "AIza", "glpat-"};
        static const char *const keys[] = {
                "password=", "password:", "passwd=", "secret=",   "api_key=", "apikey=", "token=",
                "api_key:",  "secret:",   "token:",  "PASSWORD=", "SECRET=",  "TOKEN="};
        unsigned n = 0;
        const char *p = s;
        while (*p) {
                int hit = 0;
                if (p == s || !isalnum((unsigned char) p[-1])) {
                        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && !hit; i++) {
                                size_t pl = strlen(prefixes[i]);
                                if (strncmp(p, prefixes[i], pl) != 0)
                                        continue;
                                size_t l = pl;
                                while (isalnum((unsigned char) p[l]) || p[l] == '_' || p[l] == '-')
                                        l++;
                                if (l - pl >= 12) {
                                        mu_buf_add(out, "[redacted secret]");
                                        p += l;
                                        n++;
                                        hit = 1;
                                }
                        }
                        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !hit; i++) {
                                size_t kl = strlen(keys[i]);
                                if (strncmp(p, keys[i], kl) != 0)
                                        continue;
                                size_t l = kl;
                                while (p[l] == ' ' || p[l] == '"' || p[l] == '\'')
                                        l++;
                                size_t v = l;
                                while (p[l] && !isspace((unsigned char) p[l]) && p[l] != '"' &&
                                       p[l] != '\'' && p[l] != ',')
                                        l++;
                                if (l - v >= 4) {
                                        mu_buf_add_n(out, p, v);
                                        mu_buf_add(out, "[redacted]");
                                        p += l;
                                        n++;
                                        hit = 1;
                                }
                        }
                }
                if (!hit) {
                        mu_buf_add_n(out, p, 1);
                        p++;
                }
        }
        return n;
}

/* Wrap runs of code lines that are outside ``` fences in fences. */
static void fence_code(const char *s, const char *default_lang, MuBuf *out) {
        int in_fence = 0;
        const char *p = s;
        while (*p) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t) (e - p) : strlen(p);
                if (n >= 3 && memcmp(p, "```", 3) == 0) {
                        in_fence = !in_fence;
                        mu_buf_add_n(out, p, n);
                        mu_buf_add(out, "\n");
                } else if (!in_fence && code_line(p, n)) {
                        /* collect the run (blank lines inside it belong to it) */
                        const char *q = p, *run_end = p;
                        while (*q) {
                                const char *qe = strchr(q, '\n');
                                size_t qn = qe ? (size_t) (qe - q) : strlen(q);
                                int blank = 1;
                                for (size_t k = 0; k < qn; k++)
                                        blank &= q[k] == ' ' || q[k] == '\t' || q[k] == '\r';
                                if (!code_line(q, qn) &&
                                    !(blank && qe && code_line(qe + 1, strcspn(qe + 1, "\n"))))
                                        break;
                                run_end = q + qn;
                                if (!qe)
                                        break;
                                q = qe + 1;
                        }
                        mu_buf_printf(out, "```%s\n",
                                      guess_language(p, (size_t) (run_end - p), default_lang));
                        mu_buf_add_n(out, p, (size_t) (run_end - p));
                        mu_buf_add(out, "\n```\n");
                        e = *run_end ? run_end : NULL;
                } else {
                        mu_buf_add_n(out, p, n);
                        if (e)
                                mu_buf_add(out, "\n");
                }
                if (!e)
                        break;
                p = e + 1;
        }
        if (in_fence)
                mu_buf_add(out, "\n```\n"); /* close a fence the model left open */
}

static int32_t code_build_prompt(void *state, const char *query, const MoaKbHit *hits, uint32_t n_hits,
                                 char **ret_system, char **ret_context) {
        CodeState *s = state;
        MuBuf sys = {0}, ctx = {0};

        mu_buf_add(&sys, s->base.prompt);
        if (s->language)
                mu_buf_printf(&sys, "\nUnless the user names a language, answer in %s.", s->language);

        if (n_hits > 0) {
                mu_buf_add(&ctx, "References (cite as [n]):\n");
                for (uint32_t i = 0; i < n_hits && i < s->base.max_passages; i++) {
                        mu_buf_printf(&ctx, "\n[%u] %s%s%s\n", i + 1, hits[i].title,
                                      *hits[i].source ? " — " : "", hits[i].source);
                        int has_fence = strstr(hits[i].text, "```") != NULL;
                        if (!has_fence)
                                mu_buf_add(&ctx, "~~~text\n");
                        mu_add_clipped(&ctx, hits[i].text, s->base.max_passage_chars);
                        if (!has_fence)
                                mu_buf_add(&ctx, "\n~~~");
                        mu_buf_add(&ctx, "\n");
                }
        }
        return mu_return_prompt(&s->base, &sys, &ctx, ret_system, ret_context);
}

static int32_t code_review(void *state, const char *answer, char **ret_answer) {
        CodeState *s = state;
        MuBuf redacted = {0}, out = {0};

        if (!s->base.review) {
                *ret_answer = NULL;
                return 0;
        }
        redact_secrets(answer, &redacted);
        if (redacted.oom) {
                mu_buf_free(&redacted);
                return -ENOMEM;
        }
        if (s->fence)
                fence_code(redacted.s ? redacted.s : "", s->language, &out);
        else
                mu_buf_add(&out, redacted.s ? redacted.s : "");
        mu_buf_free(&redacted);
        if (answer[0] && answer[strlen(answer) - 1] != '\n')
                mu_buf_rtrim(&out);
        return mu_buf_finish(s->base.host, &out, ret_answer);
}

static const MoaPlugin descriptor = {
        MOA_PLUGIN_HEADER,
        .name = "code",
        .version = "1.0.0",
        .description = "Software engineering: programming, debugging, tooling, operations; fences code in "
                       "answers and redacts secrets",
        .init = code_init,
        .score = code_score,
        .build_prompt = code_build_prompt,
        .review = code_review,
        .fini = code_fini,
};

MOA_PLUGIN_DEFINE(descriptor)
