/* fuzz-config.c — fuzz target for daemon/config.c and daemon/yaml-tree.c.
 * The first input byte picks the mode: 'a' parses the rest as an agent file
 * (agents.d/x.yaml), anything else as moad.yaml. Beyond "no crash, no leak"
 * it checks properties: the tree respects its depth and node bounds, and a
 * failed load always gives a message starting with "FILE:" naming the file.
 *
 * Built with clang -fsanitize=fuzzer (without fuzz-main.c) it is a libFuzzer
 * target; linked with tests/fuzz/fuzz-main.c it replays the files given on the
 * command line (the CTest "fuzz" corpus run). */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>

#include "config.h"
#include "util.h"
#include "yaml-tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], main_path[128], agents_dir[128], agent_path[160];

static void cleanup(void);

static void setup_once(void) {
        if (dir[0])
                return;
        strcpy(dir, "/tmp/moad-fuzz-config-XXXXXX");
        if (!mkdtemp(dir))
                abort();
        snprintf(main_path, sizeof main_path, "%s/moad.yaml", dir);
        snprintf(agents_dir, sizeof agents_dir, "%s/agents.d", dir);
        snprintf(agent_path, sizeof agent_path, "%s/x.yaml", agents_dir);
        if (mkdir(agents_dir, 0700) < 0)
                abort();
        atexit(cleanup); /* libFuzzer never returns to a main() of ours */
}

static void cleanup(void) {
        unlink(agent_path);
        unlink(main_path);
        rmdir(agents_dir);
        rmdir(dir);
}

static void write_all(const char *path, const uint8_t *data, size_t size) {
        FILE *f = fopen(path, "we");
        if (!f || fwrite(data, 1, size, f) != size)
                abort();
        fclose(f);
}

static size_t check_tree(const YamlNode *n, unsigned depth) {
        size_t count = 1;

        if (n->line < 1 || n->column < 1)
                abort();
        if (n->kind != YAML_TREE_SCALAR && depth > YAML_TREE_MAX_DEPTH)
                abort();
        if (n->kind == YAML_TREE_MAPPING && n->n_items % 2 != 0)
                abort();
        for (size_t i = 0; i < n->n_items; i++)
                count += check_tree(n->items[i], depth + 1);
        return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        YamlNode *root = NULL;
        Config *c = NULL;
        char *err = NULL;
        const char *file;
        int agent, r;

        if (size < 1 || size > 2 * 1024 * 1024)
                return 0;
        setup_once();
        agent = data[0] == 'a';
        data++;
        size--;

        r = yaml_tree_parse("in.yaml", (const char *) data, size, &root, &err);
        if (r < 0) {
                if (r != -ENOMEM && (!err || strncmp(err, "in.yaml:", 8) != 0))
                        abort();
        } else if (root && check_tree(root, 1) > YAML_TREE_MAX_NODES)
                abort();
        yaml_tree_free(root);
        free(err);
        err = NULL;

        if (agent) {
                write_all(main_path, (const uint8_t *) "", 0);
                write_all(agent_path, data, size);
                file = agent_path;
        } else {
                unlink(agent_path);
                write_all(main_path, data, size);
                file = main_path;
        }
        r = config_load(main_path, agents_dir, &c, &err);
        if (r < 0) {
                if (c || !err)
                        abort();
                /* Errors name the file (or, for I/O errors, a directory). */
                if (strncmp(err, file, strlen(file)) != 0 && strncmp(err, dir, strlen(dir)) != 0)
                        abort();
        } else if (!c || !config_find_provider(c, "builtin") || !config_find_pipeline(c, "moa"))
                abort();
        config_free(c);
        free(err);
        return 0;
}
