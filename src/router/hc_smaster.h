/*
 * hc_smaster.h -- router: the master of a Redis Sentinel group.
 *
 * Holds the pool of the master the sentinels name (hc_sentinel_discover:
 * asked of the sentinels, then ROLE checked on the node: an address is
 * never trusted without both). The master is looked for again:
 *  - when a call fails with a connection error (refused, timeout, closed)
 *    or a reply says READONLY (the node was demoted): at most every 100 ms;
 *  - before a call that follows a quiet second (no call answered for 1 s:
 *    the pool's connections may have died with a master that was replaced
 *    and restarted meanwhile, and reconnecting to its address is not
 *    enough);
 *  - then, for 30 s after such a failure, once a second before a call,
 *    even while calls succeed: a restarted old master answers ROLE master
 *    and accepts writes for seconds before Sentinel demotes it, so a
 *    pool that reconnected to it must move on when the sentinels say so.
 * After a failure, no call is sent before a discovery succeeds (the call
 * fails at once with "no master confirmed by the sentinels: <why>"): the
 * pool's breaker probe may have reconnected to the old address, which a
 * restarted old master answers. A discovery that follows a quiet second
 * and fails leaves the pool as it was (no failure was seen).
 * When the address changes, the pool moves to the new master (the old
 * pool is released: its idle connections close). A call that got
 * READONLY replies only (nothing ran) is sent once more to the new
 * master; a call that failed on a connection error is not (it may have
 * run): it returns its error, and the next call goes to the new master.
 *
 * Thread rules: used by one thread at a time (its client's Lua state).
 */
#ifndef HC_SMASTER_H
#define HC_SMASTER_H

#include "hc_pool.h"
#include "hc_sentinel.h"

typedef struct hc_smaster hc_smaster;

/* Copies node (host/port ignored) and cfg; discovers the master and
 * acquires its pool. NULL + err (hc_sentinel_discover's errors). */
hc_smaster *hc_smaster_new(const hc_settings *node, const hc_sentinel_cfg *cfg, char *err, size_t errlen);
void hc_smaster_free(hc_smaster *m);

/* The pool of the current master (borrowed: valid until the next call of
 * hc_smaster_exec or hc_smaster_check). */
hc_pool *hc_smaster_pool(hc_smaster *m);

/* Before a call that does not go through hc_smaster_exec (a reserved
 * connection, the keeper): looks for the master again when due. */
void hc_smaster_check(hc_smaster *m);

/* Runs a formatted request on the current master (see above). 0 with
 * replies, or -1 with err. */
int hc_smaster_exec(hc_smaster *m, const char *req, size_t len, int n, const hc_cmd *cmds,
                    redisReply **replies, char *err, double timeout);

/* How many times the master changed, and discoveries made. */
void hc_smaster_counters(hc_smaster *m, unsigned long long *switches, unsigned long long *discoveries);

#endif
