/* plugin-check.h — `moad --check-plugin`: load one plugin file in
 * isolation, validate its descriptor and exercise its callbacks, and,
 * given labelled questions, measure how the router routes them with this
 * plugin beside the configured agents (precision and recall of its agent).
 * A command-line tool: prints to a FILE, never serves. */
#pragma once

#include <stdio.h>

/* Bounds on the labelled questions file. */
#define PLUGIN_CHECK_MAX_LINE 8192u
#define PLUGIN_CHECK_MAX_QUESTIONS 20000u
#define PLUGIN_CHECK_MAX_SHOWN 20u

/**
 * struct PluginCheckOptions - what to check.
 * @plugin:     the .so file.
 * @queries:    labelled questions (`[split TAB] labels TAB question`, labels
 *              comma-separated agent names), or NULL: descriptor only.
 * @agent_file: the plugin's agents.d file (options, knowledge, examples),
 *              or NULL: an agent named after the descriptor, with no options.
 * @config:     moad.yaml for the other agents and the router, or NULL.
 * @agents_dir: their agents.d, or NULL for the configuration's.
 */
typedef struct PluginCheckOptions {
        const char *plugin;
        const char *queries;
        const char *agent_file;
        const char *config;
        const char *agents_dir;
} PluginCheckOptions;

/**
 * plugin_check() - run the check, report to @out (problems also to the
 * log). Returns the process exit status: 0 the plugin loads and behaves
 * (whatever its precision), 1 it was refused or a callback failed or the
 * questions could not be routed, 2 a usage error (unreadable files).
 */
int plugin_check(const PluginCheckOptions *o, FILE *out);
