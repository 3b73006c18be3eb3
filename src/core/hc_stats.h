/*
 * hc_stats.h -- cache observability kept in C: counters and latency
 * histograms per operation, for the whole cache and per key family (the
 * part of the key before its first ':', which is what keys.define and
 * memoize produce). Costs two clock reads and a few additions per
 * operation; nothing when the cache was made with stats = false.
 */
#ifndef HC_STATS_H
#define HC_STATS_H

#include <stddef.h>
#include <lua.h>

enum {
    HC_OP_GET, HC_OP_SET, HC_OP_GET_MANY, HC_OP_SET_MANY, HC_OP_DELETE, HC_OP_INCR,
    HC_OP_GET_OR_SET, HC_OP_LOCK, HC_OP_INVALIDATE, HC_OP_HAS_KEY, HC_OP_TTL, HC_OP_EXPIRE,
    HC_OP_DECRYPT, HC_OP_PUBLISH, HC_OPS
};

/* What an operation did, for the counters. */
enum {
    HC_EV_HIT = 1, HC_EV_MISS = 2, HC_EV_SET = 4, HC_EV_DELETE = 8, HC_EV_ERROR = 16,
    HC_EV_STALE = 32, HC_EV_WAIT = 64, HC_EV_COMPUTE = 128, HC_EV_LOCK_WAIT = 256,
    HC_EV_INVALIDATE = 512
};

typedef struct hc_stats hc_stats;

hc_stats *hc_stats_new(void);
void hc_stats_free(hc_stats *s);

/* Records one operation on the user key k (may be NULL): its events, the
 * bytes read and written, and its latency since t0 (hc_now()); t0 0: an
 * operation that did no I/O and took far less than the smallest bucket (a
 * lock-free L1 hit), recorded in it without reading the clock. */
void hc_stats_record(hc_stats *s, int op, unsigned events, const char *k, size_t kn,
                     size_t bytes_in, size_t bytes_out, double t0);

/* Adds n to a counter without an operation (get_many hits/misses). */
void hc_stats_count(hc_stats *s, unsigned events, unsigned long long n, const char *k, size_t kn);

/* Adds bytes read and written without an operation (get_or_set's reads,
 * whose operation is recorded by the Lua layer). */
void hc_stats_bytes(hc_stats *s, size_t bytes_in, size_t bytes_out, const char *k, size_t kn);

/* Pushes the stats table (see README: cache:stats). */
void hc_stats_push(lua_State *L, const hc_stats *s);

void hc_stats_reset(hc_stats *s);

int hc_stats_op_index(const char *name);
/* The name of op (HC_OP_*), as stats() and events show it. */
const char *hc_stats_op_name(int op);

#endif
