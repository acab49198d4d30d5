/* access.c — see access.h. Decisions use only the kernel's view of the
 * peer (SO_PEERCRED, SO_PEERGROUPS), never anything the client says. */
#include <strings.h>

#include "access.h"
#include "util.h"

int access_token_equal(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        unsigned char diff = (unsigned char) (la != lb);

        for (size_t i = 0; i < la; i++)
                diff |= (unsigned char) (a[i] ^ b[i % (lb ? lb : 1)]);
        return diff == 0;
}

/* Supplementary groups as the kernel recorded them for the connection. */
#define ACCESS_MAX_GROUPS 1024

static int rule_allows(const AccessRule *rule, HttpRequest *req, uid_t uid, gid_t gid) {
        gid_t groups[ACCESS_MAX_GROUPS];
        int n = -1;

        for (size_t i = 0; i < rule->n_uids; i++)
                if (rule->uids[i] == uid)
                        return 1;
        for (size_t i = 0; i < rule->n_gids; i++) {
                if (rule->gids[i] == gid)
                        return 1;
                if (n < 0)
                        n = http_request_peer_groups(req, groups, ELEMENTSOF(groups));
                for (int k = 0; k < n; k++)
                        if (groups[k] == rule->gids[i])
                                return 1;
        }
        return 0;
}

static int bearer_ok(HttpRequest *req, const char *token) {
        const char *h = http_request_header(req, "Authorization");

        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return 0;
        return access_token_equal(h + 7, token);
}

int access_check(const AccessConfig *cfg, const char *bearer_token, HttpRequest *req, AccessClass cls,
                 char *reason, size_t reason_size) {
        const AccessRule *rule;
        uid_t uid;
        gid_t gid;
        pid_t pid;

        if (cls == ACCESS_OPEN)
                return 0;

        if (http_request_is_tcp(req)) {
                /* No credentials over TCP: a token is the only proof, and the
                 * ask token never grants admin (access.admin has no meaning
                 * without credentials): admin needs its own token. */
                const char *admin = cfg->tcp_admin_token;
                if (cls == ACCESS_ADMIN) {
                        if (admin && bearer_ok(req, admin))
                                return 0;
                        snprintf(reason, reason_size,
                                 admin ? "tcp peer without the admin token"
                                       : "admin endpoints are off over tcp (no listen.admin_token_file)");
                        return -EACCES;
                }
                if (!bearer_token || bearer_ok(req, bearer_token) || (admin && bearer_ok(req, admin)))
                        return 0;
                snprintf(reason, reason_size, "tcp peer without a valid bearer token");
                return -EACCES;
        }

        if (http_request_peer(req, &uid, &gid, &pid) < 0) {
                snprintf(reason, reason_size, "peer credentials unavailable");
                return -EACCES;
        }
        if (uid == 0)
                return 0;
        rule = cls == ACCESS_ADMIN ? &cfg->admin : &cfg->ask;
        if (rule->n_uids == 0 && rule->n_gids == 0) {
                /* Unset: ask is open to whoever may connect; admin is the daemon's own user. */
                if (cls == ACCESS_ASK || uid == geteuid())
                        return 0;
        } else if (rule_allows(rule, req, uid, gid))
                return 0;
        snprintf(reason, reason_size, "uid %u gid %u (pid %d) not allowed for %s endpoints", (unsigned) uid,
                 (unsigned) gid, (int) pid, cls == ACCESS_ADMIN ? "admin" : "ask");
        return -EACCES;
}
