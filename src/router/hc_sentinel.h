/*
 * hc_sentinel.h -- router: which node is the master, asked of Redis
 * Sentinel (issue 13). One blocking call; no pool, no thread, no global.
 *
 * Contract:
 *  - the sentinels are asked in order, starting at *first, each over a
 *    fresh connection (hc_conn_open) that is closed before the next one;
 *  - the master a sentinel names is checked with ROLE before it is
 *    returned: a node that is not (or no longer) a master is refused;
 *  - every wait is bounded (hc_conn.h): a connect (+ TLS handshake) by
 *    node->connect_timeout, every read or write by node->timeout; a
 *    sentinel that is down or silent costs at most connect_timeout +
 *    2 * timeout (AUTH, then the command) before the next one is asked;
 *  - it never raises, never leaks, and may be called from any thread;
 *  - messages are stable and lower-case (but for the text of a server's
 *    error reply they quote), and never contain a password.
 */
#ifndef HC_SENTINEL_H
#define HC_SENTINEL_H

#include <stddef.h>

#include "hc_conn.h"

typedef struct hc_sentinel_cfg {
    int n;                     /* number of sentinels, >= 1             */
    char **hosts; int *ports;  /* each sentinel's address               */
    char *master_name;
    char *username, *password; /* sentinel AUTH (NULL: none) -- not the data nodes' */
} hc_sentinel_cfg;

/*
 * Finds the current master: asks the sentinels in order (each one a fresh
 * connection opened with hc_conn_open using `node`'s timeouts and TLS
 * settings -- tls_server_name included, when set -- but the sentinel's
 * host/port, db 0, and the sentinel's AUTH),
 * `SENTINEL get-master-addr-by-name <name>`; the first answer with an
 * address is taken. Then opens a connection to that address with `node`'s
 * settings (host/port replaced; AUTH/SELECT of the data node) and sends
 * ROLE: only when ROLE's first element is "master" is it returned. A
 * sentinel that cannot be reached or answers an error is skipped (its error
 * kept); a sentinel answering nil (unknown name) is also skipped.
 * *first (in/out, may be NULL): index of the sentinel to ask first; set to
 * the one that answered (so the next call starts there). Returns 0 with
 * host (NUL-terminated, hostlen bytes max) and *port; -1 with err:
 *   "no sentinel answered: <last error>"   (none reachable / all errors;
 *        <last error> is "sentinel <host>:<port>: <why>")
 *   "sentinels do not know master '<name>'" (at least one answered nil,
 *        none answered an address)
 *   "master <host>:<port> reported by the sentinels is not a master (role <role>)"
 *   or the data node's connect (or ROLE) error prefixed "master <host>:<port>: ".
 * A TLS context that cannot be made (node->tls) gives hc_tls_ctx_new's
 * "tls: ..." message as is.
 */
int hc_sentinel_discover(const hc_sentinel_cfg *cfg, const hc_settings *node, int *first,
                         char *host, size_t hostlen, int *port, char *err, size_t errlen);

#endif
