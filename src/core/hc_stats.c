/* hc_stats.c -- counters and latency histograms (see hc_stats.h). */
#include "hc_stats.h"
#include "hc_time.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define BUCKETS 64          /* bucket b holds latencies in [2^(b/4), 2^((b+1)/4)) µs */
#define FAMILIES 64
#define FAMILY_LEN 64

static const char *const op_names[HC_OPS] = {
    "get", "set", "get_many", "set_many", "delete", "incr", "get_or_set", "lock", "invalidate",
    "has_key", "ttl", "expire", "decrypt", "publish"};

typedef struct counters {
    unsigned long long hits, misses, sets, deletes, invalidations, errors, stale, waits, computes,
        lock_waits, bytes_in, bytes_out;
    unsigned long long ops[HC_OPS];
    unsigned long long lat[HC_OPS][BUCKETS];
    double sum[HC_OPS]; /* seconds */
} counters;

struct hc_stats {
    counters all;
    int nfam;
    char names[FAMILIES][FAMILY_LEN];
    counters *fam[FAMILIES];
};

hc_stats *hc_stats_new(void)
{
    return (hc_stats *)calloc(1, sizeof(hc_stats));
}

void hc_stats_free(hc_stats *s)
{
    int i;
    if (s == NULL) return;
    for (i = 0; i < s->nfam; i++) free(s->fam[i]);
    free(s);
}

void hc_stats_reset(hc_stats *s)
{
    int i;
    memset(&s->all, 0, sizeof s->all);
    for (i = 0; i < s->nfam; i++) memset(s->fam[i], 0, sizeof *s->fam[i]);
}

int hc_stats_op_index(const char *name)
{
    int i;
    for (i = 0; i < HC_OPS; i++)
        if (strcmp(name, op_names[i]) == 0) return i;
    return -1;
}

const char *hc_stats_op_name(int op)
{
    return op >= 0 && op < HC_OPS ? op_names[op] : "?";
}

/* The family of a key: the part before its first ':' (none if no ':'). */
static counters *family(hc_stats *s, const char *k, size_t kn)
{
    const char *colon;
    size_t n;
    int i;
    if (k == NULL || (colon = memchr(k, ':', kn)) == NULL) return NULL;
    n = (size_t)(colon - k);
    if (n == 0 || n >= FAMILY_LEN) return NULL;
    for (i = 0; i < s->nfam; i++)
        if (strncmp(s->names[i], k, n) == 0 && s->names[i][n] == '\0') return s->fam[i];
    if (s->nfam == FAMILIES) return NULL; /* bounded: later families count in the total only */
    s->fam[s->nfam] = (counters *)calloc(1, sizeof(counters));
    if (s->fam[s->nfam] == NULL) return NULL;
    memcpy(s->names[s->nfam], k, n);
    s->names[s->nfam][n] = '\0';
    return s->fam[s->nfam++];
}

static void add(counters *c, unsigned ev, unsigned long long n)
{
    if (ev & HC_EV_HIT) c->hits += n;
    if (ev & HC_EV_MISS) c->misses += n;
    if (ev & HC_EV_SET) c->sets += n;
    if (ev & HC_EV_DELETE) c->deletes += n;
    if (ev & HC_EV_ERROR) c->errors += n;
    if (ev & HC_EV_STALE) c->stale += n;
    if (ev & HC_EV_WAIT) c->waits += n;
    if (ev & HC_EV_COMPUTE) c->computes += n;
    if (ev & HC_EV_LOCK_WAIT) c->lock_waits += n;
    if (ev & HC_EV_INVALIDATE) c->invalidations += n;
}

/* Any double (negative, NaN, infinite from a bad t0) maps to a bucket. */
static int bucket(double seconds)
{
    double us = seconds * 1e6;
    if (!(us >= 1)) return 0;
    if (us >= 1e15) return BUCKETS - 1;
    us = 4.0 * log2(us) + 1;
    return us >= BUCKETS - 1 ? BUCKETS - 1 : (int)us;
}

/* A latency for the sums and buckets: finite, from 0 to 1e9 s (NaN and
 * negative -> 0, huge and infinite -> 1e9). */
static double clamp_seconds(double seconds)
{
    if (!(seconds >= 0)) return 0;
    return seconds < 1e9 ? seconds : 1e9;
}

static void record(counters *c, int op, unsigned ev, size_t in, size_t out, int b, double secs)
{
    add(c, ev, 1);
    c->bytes_in += in;
    c->bytes_out += out;
    c->ops[op]++;
    c->lat[op][b]++;
    c->sum[op] += secs;
}

void hc_stats_record(hc_stats *s, int op, unsigned events, const char *k, size_t kn,
                     size_t bytes_in, size_t bytes_out, double t0)
{
    /* t0 0: an operation known to take well under the smallest bucket
     * (an L1 hit served from the memo), recorded there without a clock read */
    double secs = t0 > 0 ? clamp_seconds(hc_now() - t0) : 0;
    int b = bucket(secs);
    counters *f;
    if (op < 0 || op >= HC_OPS) return;
    f = family(s, k, kn);
    record(&s->all, op, events, bytes_in, bytes_out, b, secs);
    if (f) record(f, op, events, bytes_in, bytes_out, b, secs);
}

void hc_stats_count(hc_stats *s, unsigned events, unsigned long long n, const char *k, size_t kn)
{
    counters *f = family(s, k, kn);
    add(&s->all, events, n);
    if (f) add(f, events, n);
}

void hc_stats_bytes(hc_stats *s, size_t bytes_in, size_t bytes_out, const char *k, size_t kn)
{
    counters *f = family(s, k, kn);
    s->all.bytes_in += bytes_in;
    s->all.bytes_out += bytes_out;
    if (f) {
        f->bytes_in += bytes_in;
        f->bytes_out += bytes_out;
    }
}

/* The upper bound (ms) of the bucket holding quantile q of op. */
static double quantile(const counters *c, int op, double q)
{
    unsigned long long want, seen = 0;
    int b;
    if (c->ops[op] == 0) return 0;
    want = (unsigned long long)ceil(q * (double)c->ops[op]);
    for (b = 0; b < BUCKETS; b++) {
        seen += c->lat[op][b];
        if (seen >= want) return pow(2.0, (double)b / 4.0) / 1000.0;
    }
    return pow(2.0, (double)BUCKETS / 4.0) / 1000.0;
}

static void set_int(lua_State *L, const char *k, unsigned long long v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void push_counters(lua_State *L, const counters *c)
{
    int op;
    unsigned long long lookups = c->hits + c->misses;
    lua_createtable(L, 0, 16);
    set_int(L, "hits", c->hits);
    set_int(L, "misses", c->misses);
    lua_pushnumber(L, lookups ? (lua_Number)c->hits / (lua_Number)lookups : 0);
    lua_setfield(L, -2, "hit_rate");
    set_int(L, "sets", c->sets);
    set_int(L, "deletes", c->deletes);
    set_int(L, "invalidations", c->invalidations);
    set_int(L, "errors", c->errors);
    set_int(L, "stale", c->stale);
    set_int(L, "waits", c->waits);
    set_int(L, "computes", c->computes);
    set_int(L, "lock_waits", c->lock_waits);
    set_int(L, "bytes_in", c->bytes_in);
    set_int(L, "bytes_out", c->bytes_out);
    lua_createtable(L, 0, HC_OPS);
    for (op = 0; op < HC_OPS; op++) {
        if (c->ops[op] == 0) continue;
        lua_createtable(L, 0, 4);
        set_int(L, "count", c->ops[op]);
        lua_pushnumber(L, quantile(c, op, 0.50));
        lua_setfield(L, -2, "p50");
        lua_pushnumber(L, quantile(c, op, 0.90));
        lua_setfield(L, -2, "p90");
        lua_pushnumber(L, quantile(c, op, 0.99));
        lua_setfield(L, -2, "p99");
        lua_pushnumber(L, c->sum[op] * 1000.0);
        lua_setfield(L, -2, "sum_ms");
        lua_setfield(L, -2, op_names[op]);
    }
    lua_setfield(L, -2, "ops");
}

void hc_stats_push(lua_State *L, const hc_stats *s)
{
    int i;
    push_counters(L, &s->all);
    lua_createtable(L, 0, s->nfam);
    for (i = 0; i < s->nfam; i++) {
        push_counters(L, s->fam[i]);
        lua_setfield(L, -2, s->names[i]);
    }
    lua_setfield(L, -2, "families");
}
