/*
 * hc_l1.h -- the L1 near cache of a pool: an in-process store (hc_store.h)
 * in front of Redis, kept consistent by Redis client-side caching.
 *
 * Every connection of the pool runs CLIENT TRACKING ON REDIRECT <id>
 * (RESP2) when it is opened, <id> being the client id of the pool's one
 * invalidation connection, which SUBSCRIBEs to __redis__:invalidate and is
 * read by a background thread that drops the named keys (a null payload,
 * sent on FLUSHDB/FLUSHALL, drops everything).
 *
 * Trust: entries carry the epoch they were filled in. The epoch moves on
 * (every entry stops being fresh at once) when the invalidation
 * connection breaks or is replaced, when a tracked connection of the pool
 * is closed (Redis forgets what it tracked for it), and when the pool's
 * circuit breaker closes again. An entry of an older epoch is served only
 * as a stale copy while Redis cannot be reached (stale_if_error).
 *
 * The GET-versus-invalidation race on two connections: a read marks its
 * key as filling (hc_l1_fill_begin) before the GET is sent; an
 * invalidation or a flush that arrives meanwhile drops the mark, and the
 * fill (hc_l1_fill_end) then stores nothing.
 *
 * Thread rules: every function may be called from any thread.
 */
#ifndef HC_L1_H
#define HC_L1_H

#include <stdint.h>

#include "hc_conn.h"
#include "hc_store.h"

typedef struct hc_l1 hc_l1;

/* Flag bits of an L1 entry (the low byte; the epoch is above it). */
#define HC_L1_TAGGED 1u
#define HC_L1_LOCAL 2u /* computed while Redis was unreachable: stale only */
/* The trust epoch an entry's flags carry. */
#define HC_L1_EPOCH(flags) ((flags) >> 8)

/* Created with the pool; s and tls are the pool's (they outlive it). */
hc_l1 *hc_l1_new(const hc_settings *s, hc_tls_ctx *tls, char *err, size_t errlen);
/* Stops the invalidation thread (joins it) and frees the store. */
void hc_l1_free(hc_l1 *l1);
/* After fork(2), in the child: the parent's thread does not exist here;
 * a fresh empty store replaces the inherited one (leaked: its locks may
 * have been held by a parent thread at fork time). */
void hc_l1_forked(hc_l1 *l1);

/* fn(ctx) is called by the invalidation thread every 10 ms (the pool
 * checks its idle tracked connections: hc_pool_l1_sweep). */
void hc_l1_set_tick(hc_l1 *l1, void (*fn)(void *), void *ctx);
/* Starts the invalidation thread if it does not run yet. */
void hc_l1_start(hc_l1 *l1);
/* For a connection being opened: the redirect id (0 while the
 * invalidation connection is down) and the epoch it belongs to. */
long long hc_l1_redirect(hc_l1 *l1, uint32_t *epoch);
/* The subscription generation idle connections must be tracked to (0:
 * the invalidation connection is down, nothing to check). */
unsigned hc_l1_sub_gen(hc_l1 *l1);
/* The epoch now (entries of another epoch are not fresh). */
uint32_t hc_l1_epoch(hc_l1 *l1);
/* Every entry stops being fresh (kept as stale copies). */
void hc_l1_distrust(hc_l1 *l1);
/* CLIENT TRACKING's arguments for redirect id into argv (at most 4 +
 * the BCAST prefixes): argc. */
int hc_l1_tracking_argv(hc_l1 *l1, long long id, char *idbuf, const char **argv, size_t *lens, int max);

/* HC_STORE_HIT (fresh), HC_STORE_STALE (only with allow_stale: a copy
 * past its L1 TTL or of an older epoch, within stale_if_error) or
 * HC_STORE_MISS; out as hc_store_get's (no copy when the entry's stamp
 * is have_stamp: the caller holds its value already). */
int hc_l1_get(hc_l1 *l1, const char *key, size_t kn, int allow_stale, uint64_t have_stamp,
              hc_store_val *out);
/* 1 when an entry read as a fresh hit (its shard, the shard's seq and
 * its epoch then, its expiry) is still fresh and unchanged: no lock. */
int hc_l1_unchanged(hc_l1 *l1, unsigned shard, uint64_t seq, uint32_t epoch, double expires);
/* 0 when no fill can be trusted now (then just do not fill). */
uint64_t hc_l1_fill_begin(hc_l1 *l1, const char *key, size_t kn, uint32_t *epoch);
/* pttl_ms: the key's PTTL in Redis (-1: none); the entry lives the
 * smaller of it and the L1 ttl from `sent` (hc_now() before the read was
 * sent), plus stale_if_error as a stale copy. */
void hc_l1_fill_end(hc_l1 *l1, const char *key, size_t kn, uint64_t ticket, uint32_t epoch,
                    const char *val, size_t vn, uint32_t flags, long long pttl_ms, double sent);
void hc_l1_fill_abort(hc_l1 *l1, const char *key, size_t kn, uint64_t ticket);
/* A value computed while Redis is unreachable, kept ttl seconds as a
 * stale-only copy. */
void hc_l1_keep_local(hc_l1 *l1, const char *key, size_t kn, const char *val, size_t vn, double ttl);
void hc_l1_drop(hc_l1 *l1, const char *key, size_t kn);
void hc_l1_flush(hc_l1 *l1);

typedef struct hc_l1_stats {
    hc_store_stats store;
    int up;                 /* the invalidation connection is subscribed */
    unsigned long long invalidations, flushes, distrusts, reconnects;
    uint32_t epoch;
} hc_l1_stats;
void hc_l1_get_stats(hc_l1 *l1, hc_l1_stats *st);

#endif
