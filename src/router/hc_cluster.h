/*
 * hc_cluster.h -- router: a Redis Cluster.
 *
 * A cluster object holds the slot map (slot -> node, loaded with CLUSTER
 * SLOTS from a seed or a known node) and one pool per node (hc_pool:
 * shared process-wide through the pool registry, keyed by every setting,
 * so each node's pool is its own). It routes each command by the slot of
 * its first key (hc_cmd_keys, hc_slot), sends the commands of one call to
 * every node concerned before it reads any reply (one round trip to all of
 * them), and merges the replies back in the caller's order.
 *
 * Redirections, per command, at most 16 of them and within the command
 * timeout: MOVED updates the slot's owner (and the whole map is loaded
 * again before the next call) and resends to it; ASK resends to the node
 * named with ASKING first, for that command only; TRYAGAIN (a multi-key
 * command during a migration) and CLUSTERDOWN (no quorum, a failover) are
 * retried after a backoff of 2 ms doubling to 100 ms, CLUSTERDOWN after
 * the map is loaded again.
 *
 * Commands: HC_KEYS_ONE go to their key's node; HC_KEYS_EACH (MGET, DEL,
 * UNLINK, EXISTS, TOUCH) are split by slot and their replies merged (an
 * MGET's values back in key order, integers added; an error reply of a
 * part is the reply); HC_KEYS_ANY go to any master; SCRIPT goes to every
 * master (the first error, else the first reply); HC_KEYS_NONE are refused
 * ("<NAME> has no key: ...") unless pinned to a node by the caller.
 *
 * A connection error (refused, timeout, closed) fails the call and makes
 * the map be loaded again before the next call (at most every 100 ms), so
 * a failed-over master's slots move to its promoted replica as soon as the
 * cluster says so. Nodes that leave the map lose their pool.
 *
 * Thread rules: a cluster object is used by one thread at a time (its
 * client's Lua state); the pools it holds are thread-safe.
 */
#ifndef HC_CLUSTER_H
#define HC_CLUSTER_H

#include "hc_pool.h"

typedef struct hc_cluster hc_cluster;

/* Copies base (its host/port are ignored) and the seeds, and loads the
 * slot map from the first seed that answers. NULL + err ("no cluster seed
 * answered: <last error>", a seed that is not a cluster node, out of
 * memory). */
hc_cluster *hc_cluster_new(const hc_settings *base, int nseeds, const char *const *hosts, const int *ports,
                           char *err, size_t errlen);
void hc_cluster_free(hc_cluster *c);

/* Runs n commands, routed as above. pin >= 0: every command runs on that
 * master (hc_cluster_masters' index), keys or not, no redirection
 * followed. timeout > 0: the command timeout of this call. 0 with
 * replies[0..n-1] (caller frees), or -1 with err (HC_ERRLEN). */
int hc_cluster_exec(hc_cluster *c, int n, const hc_cmd *cmds, int pin, redisReply **replies, char *err,
                    double timeout);

/* The masters now (the map is loaded first when due): count, and each
 * one's "host:port" in addr (i < count). */
int hc_cluster_masters(hc_cluster *c);
const char *hc_cluster_master_addr(hc_cluster *c, int i);

/* The pool of the node serving key's slot now (a borrowed reference), or
 * NULL + err. */
hc_pool *hc_cluster_pool_for(hc_cluster *c, const char *key, size_t len, char *err);

/* Counters of every node's pool added up; *nodes: how many nodes. */
void hc_cluster_stats(hc_cluster *c, hc_pool_stats *st, int *nodes);

/* How many times the map was loaded, and redirections followed. */
void hc_cluster_counters(hc_cluster *c, unsigned long long *refreshes, unsigned long long *moved,
                         unsigned long long *ask, unsigned long long *retries);

#endif
