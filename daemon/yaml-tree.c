/* yaml-tree.c — builds a bounded YamlNode tree from libyaml's event stream.
 * No recursion while parsing (an explicit stack of at most
 * YAML_TREE_MAX_DEPTH open collections), aliases rejected, duplicate keys
 * rejected at the second occurrence. */
#include <yaml.h>

#include "util.h"
#include "yaml-tree.h"

typedef struct Builder {
        const char *file;
        const char *data;
        size_t size;
        YamlNode *root;
        YamlNode *stack[YAML_TREE_MAX_DEPTH];
        size_t depth;
        size_t n_nodes;
        unsigned n_documents;
        char *error;
} Builder;

YamlNode *yaml_tree_free(YamlNode *n) {
        if (!n)
                return NULL;
        /* Depth is bounded by YAML_TREE_MAX_DEPTH, so recursion is fine here. */
        for (size_t i = 0; i < n->n_items; i++)
                yaml_tree_free(n->items[i]);
        free(n->items);
        free(n->value);
        free(n);
        return NULL;
}

int yaml_node_is_null(const YamlNode *n) {
        if (!n)
                return 1;
        if (n->kind != YAML_TREE_SCALAR || !n->plain)
                return 0;
        return n->length == 0 || streq(n->value, "~") || streq(n->value, "null") ||
               streq(n->value, "Null") || streq(n->value, "NULL");
}

const char *yaml_node_kind_name(const YamlNode *n) {
        if (!n)
                return "nothing";
        switch (n->kind) {
        case YAML_TREE_SCALAR:
                return "scalar";
        case YAML_TREE_SEQUENCE:
                return "sequence";
        case YAML_TREE_MAPPING:
                return "mapping";
        }
        return "node";
}

static int fail(Builder *b, int err, unsigned line, unsigned column, const char *fmt, ...) _printf_(5, 6);
static int fail(Builder *b, int err, unsigned line, unsigned column, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;
        int r;

        if (b->error)
                return err;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(&b->error, "%s:%u:%u: %s", b->file, line, column, msg) < 0)
                b->error = NULL;
        return err;
}

/* libyaml reports reader errors (bad UTF-8, control characters) as a byte
 * offset, not a mark: turn it into a 1-based line and byte column. */
static void offset_to_line_column(const Builder *b, size_t offset, unsigned *ret_line,
                                  unsigned *ret_column) {
        unsigned line = 1;
        size_t line_start = 0;

        offset = MIN(offset, b->size);
        for (size_t i = 0; i < offset; i++)
                if (b->data[i] == '\n') {
                        line++;
                        line_start = i + 1;
                }
        *ret_line = line;
        *ret_column = (unsigned) (offset - line_start + 1);
}

static int parser_fail(Builder *b, const yaml_parser_t *p) {
        unsigned line, column;

        switch (p->error) {
        case YAML_MEMORY_ERROR:
                return -ENOMEM;
        case YAML_READER_ERROR:
                offset_to_line_column(b, p->problem_offset, &line, &column);
                return fail(b, -EINVAL, line, column, "invalid input: %s", p->problem ?: "unreadable");
        default:
                line = (unsigned) p->problem_mark.line + 1;
                column = (unsigned) p->problem_mark.column + 1;
                if (p->context)
                        return fail(b, -EINVAL, line, column, "syntax error: %s (%s at line %u)",
                                    p->problem ?: "invalid YAML", p->context,
                                    (unsigned) p->context_mark.line + 1);
                return fail(b, -EINVAL, line, column, "syntax error: %s", p->problem ?: "invalid YAML");
        }
}

static int attach(Builder *b, YamlNode *n) {
        YamlNode *parent;

        if (b->depth == 0) {
                if (b->root) {
                        yaml_tree_free(n);
                        return -EINVAL; /* cannot happen: one root per document */
                }
                b->root = n;
                return 0;
        }
        parent = b->stack[b->depth - 1];
        if (parent->n_items >= parent->n_allocated) {
                size_t m = MAX(parent->n_allocated * 2, (size_t) 8);
                YamlNode **items = reallocarray(parent->items, m, sizeof(YamlNode *));
                if (!items) {
                        yaml_tree_free(n);
                        return -ENOMEM;
                }
                parent->items = items;
                parent->n_allocated = m;
        }
        parent->items[parent->n_items++] = n;
        return 0;
}

static int new_node(Builder *b, YamlNodeKind kind, const yaml_mark_t *mark, YamlNode **ret) {
        YamlNode *n;
        int r;

        if (b->n_nodes >= YAML_TREE_MAX_NODES)
                return fail(b, -E2BIG, (unsigned) mark->line + 1, (unsigned) mark->column + 1,
                            "document too large (more than %u nodes)", (unsigned) YAML_TREE_MAX_NODES);
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->kind = kind;
        n->line = (unsigned) mark->line + 1;
        n->column = (unsigned) mark->column + 1;
        b->n_nodes++;
        /* Attached at once, so freeing the root frees it whatever happens next. */
        r = attach(b, n);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

static int key_cmp(const void *a, const void *b) {
        const YamlNode *x = *(YamlNode *const *) a, *y = *(YamlNode *const *) b;
        int c = strcmp(x->value, y->value);

        if (c != 0)
                return c;
        /* Stable by position so the later duplicate is the one reported. */
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return x->column < y->column ? -1 : x->column > y->column;
}

static int check_mapping(Builder *b, const YamlNode *m) {
        _cleanup_free_ YamlNode **keys = NULL;
        size_t n = m->n_items / 2;

        for (size_t i = 0; i < n; i++) {
                const YamlNode *k = m->items[2 * i];
                if (k->kind != YAML_TREE_SCALAR)
                        return fail(b, -EINVAL, k->line, k->column, "mapping keys must be scalars, not a %s",
                                    yaml_node_kind_name(k));
        }
        if (n < 2)
                return 0;
        keys = malloc(n * sizeof(YamlNode *));
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                keys[i] = m->items[2 * i];
        qsort(keys, n, sizeof(YamlNode *), key_cmp);
        /* Report the earliest-positioned second occurrence of any key. */
        const YamlNode *dup = NULL, *first = NULL;
        for (size_t i = 1; i < n; i++)
                if (streq(keys[i - 1]->value, keys[i]->value) &&
                    (!dup || keys[i]->line < dup->line ||
                     (keys[i]->line == dup->line && keys[i]->column < dup->column))) {
                        dup = keys[i];
                        first = keys[i - 1];
                }
        if (dup)
                return fail(b, -EINVAL, dup->line, dup->column,
                            "duplicate key '%s' (first defined at line %u)", dup->value, first->line);
        return 0;
}

static int handle_event(Builder *b, const yaml_event_t *e, int *done) {
        const yaml_mark_t *mark = &e->start_mark;
        YamlNode *n;
        int r;

        switch (e->type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
        case YAML_NO_EVENT:
                return 0;
        case YAML_STREAM_END_EVENT:
                *done = 1;
                return 0;
        case YAML_DOCUMENT_START_EVENT:
                if (++b->n_documents > 1)
                        return fail(b, -EINVAL, (unsigned) mark->line + 1, (unsigned) mark->column + 1,
                                    "only one YAML document is allowed");
                return 0;
        case YAML_ALIAS_EVENT:
                return fail(b, -EINVAL, (unsigned) mark->line + 1, (unsigned) mark->column + 1,
                            "aliases (*%s) are not supported", (const char *) e->data.alias.anchor);
        case YAML_SCALAR_EVENT:
                r = new_node(b, YAML_TREE_SCALAR, mark, &n);
                if (r < 0)
                        return r;
                n->value = strndup((const char *) e->data.scalar.value, e->data.scalar.length);
                if (!n->value)
                        return -ENOMEM;
                n->length = e->data.scalar.length;
                if (strlen(n->value) != n->length)
                        return fail(b, -EINVAL, n->line, n->column, "NUL byte in a scalar");
                n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !e->data.scalar.tag;
                return 0;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
                if (b->depth >= YAML_TREE_MAX_DEPTH)
                        return fail(b, -E2BIG, (unsigned) mark->line + 1, (unsigned) mark->column + 1,
                                    "nesting too deep (more than %u levels)",
                                    (unsigned) YAML_TREE_MAX_DEPTH);
                r = new_node(b, e->type == YAML_MAPPING_START_EVENT ? YAML_TREE_MAPPING : YAML_TREE_SEQUENCE,
                             mark, &n);
                if (r < 0)
                        return r;
                b->stack[b->depth++] = n;
                return 0;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
                if (b->depth == 0)
                        return fail(b, -EINVAL, (unsigned) mark->line + 1, (unsigned) mark->column + 1,
                                    "unbalanced collection end");
                n = b->stack[--b->depth];
                if (n->kind == YAML_TREE_MAPPING)
                        return check_mapping(b, n);
                return 0;
        }
        return 0;
}

int yaml_tree_parse(const char *file, const char *data, size_t size, YamlNode **ret, char **ret_error) {
        Builder b = {.file = file ?: "<input>", .data = data, .size = size};
        yaml_parser_t parser;
        int done = 0, r = 0;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) data, size);

        while (!done) {
                yaml_event_t event;

                if (!yaml_parser_parse(&parser, &event)) {
                        r = parser_fail(&b, &parser);
                        break;
                }
                r = handle_event(&b, &event, &done);
                yaml_event_delete(&event);
                if (r < 0)
                        break;
        }
        yaml_parser_delete(&parser);

        if (r < 0) {
                yaml_tree_free(b.root);
                if (ret_error)
                        *ret_error = TAKE_PTR(b.error);
                free(b.error);
                return r;
        }
        /* "---" followed by nothing is a null document: same as no document. */
        if (b.root && yaml_node_is_null(b.root))
                b.root = yaml_tree_free(b.root);
        *ret = b.root;
        return 0;
}
