/* access.h — who may call which endpoint: peer credentials (SO_PEERCRED)
 * on the Unix socket against the configured allow lists, and a bearer
 * token on the TCP listener. */
#pragma once

#include <stddef.h>

#include "config.h"
#include "http.h"

typedef enum AccessClass {
        ACCESS_OPEN,  /* health and readiness: anyone who can connect */
        ACCESS_ASK,   /* questions, routing, listings, metrics */
        ACCESS_ADMIN, /* ingest, delete, reload */
} AccessClass;

/**
 * access_check() - may @req use an endpoint of class @cls? Returns 0 if
 * allowed, -EACCES if not, with a reason for the log (never a secret) in
 * @reason. @bearer_token is the TCP listener's token (NULL: none set: ask is
 * open over TCP); admin over TCP needs @cfg->tcp_admin_token (NULL: refused).
 */
int access_check(const AccessConfig *cfg, const char *bearer_token, HttpRequest *req, AccessClass cls,
                 char *reason, size_t reason_size);

/** access_token_equal() - constant-time comparison of two tokens. */
int access_token_equal(const char *a, const char *b);
