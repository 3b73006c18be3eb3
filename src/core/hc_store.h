/*
 * hc_store.h -- the in-process store: entries of bytes with a TTL, bounded
 * by max_bytes (and optionally max_items), shared by every Lua state and
 * thread of the process. No socket, no Lua.
 *
 * Used three ways: the data of backend = "memory" (hc_mem.c, a Redis-like
 * node in the process), the L1 near cache in front of Redis, and the
 * fallback copies served while Redis is down.
 *
 * Concurrency: the key space is split into HC_STORE_SHARDS shards, each
 * with its own mutex, hash table, queues and byte budget (max_bytes /
 * shards); an operation locks exactly one shard, and no function holds
 * two shard locks at once. Counters are per shard, summed on read. There
 * is no global lock on any path (the registry of named stores has one,
 * taken only by hc_store_acquire/release).
 *
 * Keys are hashed with SipHash-2-4 (libsodium's crypto_shorthash) under a
 * random key per store: the top 4 bits pick the shard, the low 32 the
 * bucket of its chained table (which doubles past one entry per bucket).
 * A keyed hash because keys may come from users: no one can aim many keys
 * at one chain.
 *
 * Eviction: S3-FIFO (Yang et al., SOSP'23) per shard: new keys enter a
 * small FIFO (10% of the shard's bytes); a key read again before it
 * leaves it moves to the main FIFO, a key read once is evicted and
 * remembered by hash in a ghost FIFO; a ghost key inserted again goes
 * straight to main; main is a FIFO with reinsertion (2-bit frequency: an
 * entry read since it last came round is put back at the head, one use
 * less). The ghost keeps as many hashes as main can hold entries of the
 * shard's average size. One-off scans pass through small without
 * disturbing main. Small is evicted from while it holds 10% or more of
 * the shard's bytes (or main is empty), else main. The policy
 * HC_STORE_LRU (one list, a hit moves the entry to the front, the tail is
 * evicted) exists for the comparison in the bench. Replacing a key keeps
 * its queue and frequency.
 *
 * Expiry: an entry is expired from `expires` on (now >= expires), and
 * dead from `stale_until` on. An expired entry is a miss, or with
 * allow_stale a stale hit until it is dead. Dead entries are dropped (and
 * counted `expired`) lazily when read, and first when room is needed:
 * each eviction round looks at a few buckets for them, and a dead or
 * expired entry reaching a queue's tail is never reinserted.
 *
 * Accounting: an entry costs key length + value length + HC_STORE_OVERHEAD
 * bytes; the bytes counted never exceed max_bytes (each shard stays
 * within max_bytes / shards). HC_STORE_OVERHEAD is measured: the entry
 * header (74 bytes, key and value follow it in the same malloc), malloc's
 * header and rounding (8 to 23 on glibc), its hash bucket (8 to 16), its
 * share of the ghost FIFO (up to 12 after the first evictions) and the
 * heap's fragmentation under churn. A 64 MiB store of 16-byte keys, filled
 * and churned through once more (bench/store_trace.lua, glibc x86-64),
 * grew RSS by 123 B + key + value per entry for 16-byte values, 122 for
 * 100-byte ones, 116 for 1000-byte ones: RSS / bytes counted 0.97-0.99.
 * A placeholder costs its key + HC_STORE_OVERHEAD. An entry is
 * refused (-1) when its value is larger than max_bytes / shards / 2 or
 * its cost larger than max_bytes / shards (hc_store_fits tells): a store
 * needs max_bytes well above shards * HC_STORE_OVERHEAD to hold anything.
 * max_items (when set) is split per shard rounded up, so the store holds
 * at most HC_STORE_SHARDS * ceil(max_items / HC_STORE_SHARDS) entries;
 * `items` counts entries and filling placeholders.
 *
 * Time: expiry times are hc_now() seconds (monotonic); 0 = never.
 *
 * Fork: a store's mutexes are copied by fork(2) in whatever state a
 * parent thread left them; a child must not use an inherited store (make
 * a new one, leak the old). The registry's mutex likewise: a child that
 * calls hc_store_acquire while a parent thread held it deadlocks.
 */
#ifndef HC_STORE_H
#define HC_STORE_H

#include <stddef.h>
#include <stdint.h>

#define HC_STORE_SHARDS 16
#define HC_STORE_OVERHEAD 128

typedef struct hc_store hc_store;

enum { HC_STORE_S3FIFO = 0, HC_STORE_LRU = 1 };

typedef struct hc_store_opts {
    size_t max_bytes; /* > 0 */
    size_t max_items; /* 0: no limit but bytes */
    int policy;       /* HC_STORE_S3FIFO or HC_STORE_LRU */
} hc_store_opts;

typedef struct hc_store_stats {
    uint64_t hits, misses, stale_hits, sets, evictions, expired, invalidations, flushes,
        fills_cancelled;
    size_t bytes, items, max_bytes, max_items;
} hc_store_stats;

/* A value read: data is a malloc'ed copy the caller frees (NULL when the
 * caller already holds the entry with this stamp, see hc_store_get). */
typedef struct hc_store_val {
    char *data;
    size_t len;
    uint32_t flags;   /* the caller's bits, stored as given */
    double expires;   /* 0: never */
    double stale_until;
    uint64_t stamp;   /* unique per stored entry, process-wide, never 0 */
    unsigned shard;   /* (hits) the entry's shard and that shard's change  */
    uint64_t seq;     /* counter when it was read: see hc_store_seq         */
} hc_store_val;

/* Results of hc_store_get. */
enum { HC_STORE_MISS = 0, HC_STORE_HIT = 1, HC_STORE_STALE = 2 };

/* set modes */
enum { HC_STORE_ALWAYS = 0, HC_STORE_NX = 1, HC_STORE_XX = 2 };

/* A store of its own (freed with hc_store_free). NULL when out of memory
 * or o->max_bytes is 0. */
hc_store *hc_store_new(const hc_store_opts *o);
void hc_store_free(hc_store *s);

/* The process-wide store called name, created with o by its first user
 * (later users get it as it is, whatever their o), reference counted:
 * the last hc_store_release frees it. Release only what acquire returned
 * (never hc_store_free it). */
hc_store *hc_store_acquire(const char *name, const hc_store_opts *o);
void hc_store_release(hc_store *s);

/* Reads key at time now. An entry past expires but before stale_until is
 * HC_STORE_STALE when allow_stale, a miss otherwise. A filling
 * placeholder is a miss. out->data is a copy (malloc, len + 1 bytes, NUL
 * after the value) unless out->stamp equals have_stamp (then NULL); -1
 * when out of memory. On a miss *out is zeroed. A hit counts as a use for
 * eviction (a stale hit does not). */
int hc_store_get(hc_store *s, const char *key, size_t kn, double now, int allow_stale,
                 uint64_t have_stamp, hc_store_val *out);
/* The same, the copy made into *buf (a malloc'ed buffer of *cap bytes
 * that the caller owns, realloc'ed when too small; both may start NULL /
 * 0): out->data == *buf. For a caller that reads many values. */
int hc_store_get_buf(hc_store *s, const char *key, size_t kn, double now, int allow_stale,
                     uint64_t have_stamp, hc_store_val *out, char **buf, size_t *cap);
/* 1 when an entry of these sizes is not too large for s (-1 from a write
 * of such an entry is then out of memory). */
int hc_store_fits(const hc_store *s, size_t kn, size_t vn);

/* Stores a copy. mode: HC_STORE_ALWAYS, NX (only if absent, expired or
 * only a placeholder), XX (only if present and not expired).
 * stale_until < expires is taken as expires (with expires 0 it is
 * ignored). 1 stored, 0 not (NX/XX), -1 too large or out of memory (then
 * nothing changed). Replacing an entry or placeholder cancels a fill of
 * that key. Every stored entry gets a new stamp. */
int hc_store_set(hc_store *s, const char *key, size_t kn, const char *val, size_t vn, uint32_t flags,
                 double expires, double stale_until, int mode, double now);

/* Removes key (entry or filling placeholder): 1 when a live (not
 * expired) entry was there. Counted as an invalidation when something
 * was removed. */
int hc_store_del(hc_store *s, const char *key, size_t kn, double now);

/* New expiry of a live entry (0: never), its stale window (stale_until -
 * expires) kept: 1 done, 0 no such entry (or only expired). */
int hc_store_expire(hc_store *s, const char *key, size_t kn, double expires, double now);

/* A fill: mark key as filling before reading it from elsewhere; the mark
 * is dropped by any hc_store_del/set of the key and by a flush, and the
 * fill then stores nothing. Returns a ticket (0: could not mark, then the
 * fill is simply not stored). Without an entry, the mark is a placeholder
 * (no value: a miss; costs its key + HC_STORE_OVERHEAD; evictable, which
 * cancels the fill too); on an entry, the mark goes on it and its value
 * stays readable (a stale copy while the fill runs). A later fill_begin
 * of the key takes the mark over (the earlier ticket is cancelled). */
uint64_t hc_store_fill_begin(hc_store *s, const char *key, size_t kn, double now);
/* 1 stored, 0 cancelled (the key was invalidated or flushed since begin,
 * or another fill took over, or the mark was evicted: counted
 * fills_cancelled), -1 too large / out of memory (the mark, and an older
 * value it was on, are dropped: what was read is newer). */
int hc_store_fill_end(hc_store *s, const char *key, size_t kn, uint64_t ticket, const char *val,
                      size_t vn, uint32_t flags, double expires, double stale_until, double now);
/* Drops the mark if it is still ticket's. */
void hc_store_fill_abort(hc_store *s, const char *key, size_t kn, uint64_t ticket);

/* Drops everything, filling marks and the ghost included (counted once in
 * flushes). */
void hc_store_flush(hc_store *s);

/* Calls fn for every live entry (placeholders and expired entries
 * skipped), one shard locked at a time: fn must not call the store (nor
 * raise a Lua error). v->data points into the entry itself (len bytes,
 * no NUL): valid only during the call, never to be freed or written.
 * fn returns non-zero to stop. */
typedef int (*hc_store_each_fn)(void *ctx, const char *key, size_t kn, const hc_store_val *v);
void hc_store_each(hc_store *s, double now, hc_store_each_fn fn, void *ctx);

/* Sums of the shards' counters (each read under its lock). */
void hc_store_get_stats(hc_store *s, hc_store_stats *st);

/* A shard's change counter, read without its lock: it moves on whenever
 * an entry of the shard changes value or expiry or goes (set over it,
 * del, eviction, expiry drop, flush). While it still equals the seq of a
 * hit (and the entry's expiry has not passed), that entry is unchanged:
 * a caller that kept what it decoded from it may serve that again
 * without locking (the L1's memo of decoded tables). */
uint64_t hc_store_seq(hc_store *s, unsigned shard);

#endif
