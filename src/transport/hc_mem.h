/*
 * hc_mem.h -- transport: an in-process node (backend = "memory"). It runs
 * the commands hicache sends -- argument vectors (hc_cmd.h), the bytes a
 * socket would carry are never made -- against a store of the process
 * (hc_store.h) and answers with hiredis replies, so everything above the
 * transport (stats, events, codec, tags, envelopes, leases, locks, the
 * keeper, reserve) runs unchanged on it.
 *
 * Contract:
 *  - one node per name and limits (max_bytes, max_items) and process,
 *    created empty by its first user (hc_mnode_current), then shared,
 *    reference counted (a process-wide registry under a mutex);
 *  - atomicity as in Redis: a command that writes (every script
 *    included) holds the node's write lock, a pure read its read lock, so
 *    a script or MSET is atomic with respect to every other command of the
 *    process. Pipelined commands take the lock one command at a time;
 *  - replies are what Redis 7 answers, freed with hiredis 0.14's
 *    freeReplyObject (calloc'ed structs, malloc'ed NUL-terminated strings
 *    and element arrays); error replies carry Redis's own strings ("ERR
 *    value is not an integer or out of range", "WRONGTYPE ...", "OOM ..."
 *    when the store refuses a value). A command the node does not run
 *    answers "ERR unknown command '<name>' (not supported by the memory
 *    backend)"; MULTI, WATCH, SUBSCRIBE, SELECT, CLIENT ... are refused so
 *    (a memory connection never holds state) and EVAL/SCRIPT LOAD accept
 *    hicache's own six scripts only (hc_scripts.h), run natively in C;
 *  - types: strings and lists; TTLs on the monotonic clock;
 *  - BLPOP waits on the node's condition variable, never holding a lock,
 *    at most its own timeout and at most `timeout` (the connection's
 *    command timeout, as a socket's read would): then err = "timeout";
 *  - fork: a child never touches a node of its parent (its mutexes may
 *    have been held by another thread at the fork). The child's registry
 *    starts empty; hc_mnode_current gives a pool a node of its own, empty,
 *    in place of the parent's copy, which is leaked (it shares the
 *    parent's pages until written, and the child never writes it).
 */
#ifndef HC_MEM_H
#define HC_MEM_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "hc_cmd.h"

typedef struct hc_mnode hc_mnode;

/* Drops a reference (NULL: none); the last one frees the node and its
 * data. Does nothing to a node inherited from a parent process. */
void hc_mnode_release(hc_mnode *n);

/* The node of a pool: *slot's when it belongs to this process; else
 * (*slot NULL: the pool's first connection; or a node of the parent after
 * a fork) the node of this process called name with these limits
 * (max_items 0: bytes only), made empty if there is none, stored in *slot,
 * which then holds a reference to it (a parent's node is left as it is:
 * leaked). The registry mutex guards the slot; it is never held with
 * another lock, so a pool calls this with none of its own held. NULL
 * with err when memory ran out. */
hc_mnode *hc_mnode_current(hc_mnode **slot, const char *name, double max_bytes, double max_items,
                           char *err, size_t errlen);

/* Runs n commands, in order, and fills replies[0..n-1] (the caller frees
 * them with freeReplyObject): 0. -1 with err, every reply already made
 * freed: "out of memory", or "timeout" (a BLPOP that outlived `timeout`
 * seconds). */
int hc_mnode_exec(hc_mnode *node, int n, const hc_cmd *cmds, redisReply **replies, char *err,
                  size_t errlen, double timeout);

#endif
