/* fuzz-config.c — fuzz target for daemon/config.c and daemon/yaml-tree.c.
 * The first input byte picks the mode: 'a' parses the rest as an agent file
 * (agents.d/x.yaml), anything else as moad.yaml. Beyond "no crash, no leak"
 * it checks properties: the tree respects its depth and node bounds, and a
 * failed load always gives a message starting with "FILE:" naming the file.
 *
 * Built with clang -fsanitize=fuzzer and -DFUZZ_NO_MAIN it is a libFuzzer
 * target; otherwise main() replays the files/directories given on the
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

#ifndef FUZZ_NO_MAIN
static int run_file(const char *path) {
        FILE *f = fopen(path, "re");
        uint8_t *buf;
        long n;

        if (!f)
                return -errno;
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -EIO;
        }
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n) {
                free(buf);
                fclose(f);
                return -EIO;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        size_t n = 0;
        int ok = 1;

        for (int i = 1; i < argc && ok; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        ok = 0;
                        break;
                }
                if (!S_ISDIR(st.st_mode)) {
                        ok = run_file(argv[i]) >= 0;
                        n += ok;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                if (!d) {
                        ok = 0;
                        break;
                }
                for (struct dirent *de; ok && (de = readdir(d));) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
                        ok = run_file(path) >= 0;
                        n += ok;
                }
                closedir(d);
        }
        printf("%zu inputs ok\n", n);
        return ok && n > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
