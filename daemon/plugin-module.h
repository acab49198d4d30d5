/* plugin-module.h — the shared objects behind plugins, loaded from a
 * private copy so that a rebuilt file is really loaded again.
 *
 * dlopen() of a path that is already loaded returns the cached handle: a
 * plugin rebuilt in place would keep running its old code across reloads,
 * and a file overwritten in place (cp, same inode) would change under the
 * running mapping. So each module is the file's content copied into a
 * sealed memfd and dlopened from /proc/self/fd/N. Modules are shared by
 * file identity (device, inode, size, mtime): an unchanged file is not
 * copied again, a changed one gets a new module while the old one lives on
 * for whoever still holds it (a request on the previous configuration) and
 * is dlclosed with its last reference.
 *
 * Used from one thread (the event loop, or a command-line tool). */
#pragma once

#include <stdint.h>

typedef struct PluginModule PluginModule;

/* A plugin file larger than this is refused (the copy is in memory). */
#define PLUGIN_MODULE_MAX_BYTES (256u * 1024u * 1024u)

/**
 * plugin_module_open() - a reference to the module for the file at @path:
 * the one already loaded when the file is unchanged since, else a private
 * copy of it loaded now. *@ret_fresh (may be NULL) says which.
 * Returns 0 and the reference in *@ret (drop it with plugin_module_unref()),
 * or -errno and a malloc'ed reason in *@ret_error (may be NULL): -ENOENT
 * and the like from stat/open, -EFBIG (too large), -ENOEXEC (dlopen failed,
 * with dlerror's text), -EBUSY (the file kept changing while being copied).
 */
int plugin_module_open(const char *path, PluginModule **ret, int *ret_fresh, char **ret_error);

/** plugin_module_ref() - another reference to @m. NULL ok. */
PluginModule *plugin_module_ref(PluginModule *m);

/** plugin_module_unref() - drop a reference; the last one dlcloses the
 * module and closes its copy. NULL ok; returns NULL. */
PluginModule *plugin_module_unref(PluginModule *m);

/** plugin_module_sym() - dlsym(@name) in @m, or NULL. */
void *plugin_module_sym(PluginModule *m, const char *name);

/** plugin_module_count() - modules loaded now (for tests and the check tools). */
unsigned plugin_module_count(void);
