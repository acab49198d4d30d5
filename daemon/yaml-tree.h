/* yaml-tree.h — a tiny, bounded YAML node tree built from libyaml's event
 * parser: scalars, sequences and mappings, each node with the 1-based line
 * and column where it starts. Aliases are rejected (no billion laughs),
 * depth and node count are bounded, mapping keys must be unique scalars.
 * Used by config.c; knows nothing about moad's configuration keys. */
#pragma once

#include <stddef.h>

#define YAML_TREE_MAX_DEPTH 64
#define YAML_TREE_MAX_NODES 100000

typedef enum YamlNodeKind {
        YAML_TREE_SCALAR,
        YAML_TREE_SEQUENCE,
        YAML_TREE_MAPPING,
} YamlNodeKind;

typedef struct YamlNode YamlNode;
struct YamlNode {
        YamlNodeKind kind;
        unsigned line;   /* 1-based */
        unsigned column; /* 1-based */
        /* scalar */
        char *value; /* NUL-terminated; libyaml rejects embedded NULs */
        size_t length;
        int plain; /* unquoted, not a block literal: may be a number, bool or null */
        /* sequence: the items; mapping: key, value, key, value, ... */
        YamlNode **items;
        size_t n_items;
        size_t n_allocated;
};

/**
 * yaml_tree_parse() - parse @size bytes of @data (one YAML document) into a
 * node tree. An input with no document (empty, only comments) yields
 * *@ret == NULL and returns 0. On error returns a negative errno (-EINVAL for
 * bad input, -E2BIG for exceeded bounds, -ENOMEM) and, if @ret_error is
 * given, a malloc'ed "@file:line:col: message". The caller frees the tree
 * with yaml_tree_free().
 */
int yaml_tree_parse(const char *file, const char *data, size_t size, YamlNode **ret, char **ret_error);

/** yaml_tree_free() - free a node and everything below it; NULL is a no-op. Returns NULL. */
YamlNode *yaml_tree_free(YamlNode *n);

/** yaml_node_is_null() - 1 if @n is absent or a plain null scalar ("", "~", "null"). */
int yaml_node_is_null(const YamlNode *n);

/** yaml_node_kind_name() - "scalar", "sequence" or "mapping". */
const char *yaml_node_kind_name(const YamlNode *n);

static inline void yaml_tree_freep(YamlNode **n) {
        yaml_tree_free(*n);
}
