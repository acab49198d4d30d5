/* kb-migrate.h — moving knowledge between the SQLite and PostgreSQL
 * backends (moad --migrate-knowledge). */
#pragma once

#include <stdio.h>

#include "config.h"
#include "kb.h"

/**
 * kb_migrate() - copy every enabled agent's knowledge of @cfg from the
 * other backend into the configured one: with knowledge.backend
 * postgresql from the SQLite files state_dir/kb/AGENT.db, with sqlite
 * from PostgreSQL (knowledge.conninfo is needed either way). Each
 * document keeps its title, source, size, file metadata and chunks as
 * they were cut (its ingest time becomes now), replacing one of the same
 * title. Then every copied document is checked on the target: present,
 * with the same sha256, size, chunk count and a SHA-256 over its chunks.
 * One line per agent on @out. Returns 0 when every agent was copied and
 * checked, else -errno.
 */
int kb_migrate(const Config *cfg, FILE *out);
