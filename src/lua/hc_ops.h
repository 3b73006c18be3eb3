/*
 * hc_ops.h -- what the cache API files share (hc_cache.c, hc_read.c,
 * hc_write.c, hc_lease.c): argument checks that raise (call them before
 * anything is borrowed or allocated in C), observation, decoding, and the
 * two halves of the no-stale protocol: reading an entry with its tags
 * checked, and building items of the WRITE script (docs/DESIGN.md).
 */
#ifndef HC_OPS_H
#define HC_OPS_H

#include "hc_client.h"
#include "hc_entry.h"

/* The wake-up list TTL (ms): an unconsumed wake-up token lives this long. */
#define HC_WAKE_TTL_MS 10000
/* A namespace epoch lives this long after its last use (ms). */
#define HC_EPOCH_TTL_MS 86400000LL
/* A probe reads this many bytes of a value to see its envelope header. */
#define HC_PROBE 1024

#define HC_OBSERVED(cl) ((cl)->stats != NULL || (cl)->hook != LUA_NOREF)

/* ---- arguments (may raise) ---------------------------------------------- */

/* prefix:version:key for the key at idx into buf (HC_FULLKEY_MAX bytes).
 * Never raises: the length, or 0 with *why set. */
size_t hc_key_compose(lua_State *L, const client *cl, long long version, int idx, char *buf,
                      const char **why);
/* The same at this cache's version; raises an argument error. */
size_t hc_key_arg(lua_State *L, const client *cl, int idx, char *buf);
/* TTL at idx in ms: none/nil -> the cache default, 0 -> never expires. */
long long hc_ttl_arg(lua_State *L, const client *cl, int idx);
/* Raises unless the value at idx is nil or a table whose keys are all
 * among the NULL-terminated option names `known`. */
void hc_opts_check(lua_State *L, int idx, int argn, const char *const *known);
/* Raises unless the table at idx is a list: keys 1..#t only. */
void hc_list_check(lua_State *L, int idx, int argn, const char *what);
/* opts.tags of the opts table at idx (argument argn), if any: 1 and *t
 * filled (canonical), or 0; opts keys other than `known` raise. The tags
 * stay anchored by the opts table. */
int hc_opts_tags(lua_State *L, int idx, int argn, hc_taglist *t, const char *const *known);
/* A decimal integer of n bytes that fits a long long: 0, or -1. */
int hc_parse_ll(const char *s, size_t n, long long *v);
/* Option names: tags only; set's nx, xx, tags. */
extern const char *const hc_opts_tags_only[];

/* ---- results -------------------------------------------------------------- */

/* After an operation that pushed n results: records it (an error when it
 * returned nil, err) and returns n. */
int hc_observe(lua_State *L, client *cl, int op, unsigned ev, const char *key, size_t kn, size_t in,
               size_t out, double t0, int n);
/* Runs the method fn (its key at stack index 2) and, when the cache is
 * observed, records it as op with events ev (and as an error when fn
 * returned nil, err). */
int hc_call_observed(lua_State *L, lua_CFunction fn, int op, unsigned ev);
/* nil, msg of an error reply (freed); nil, "unexpected reply" otherwise. */
int hc_unexpected(lua_State *L, redisReply *r);
/* Decodes p[0..n), stored at the full key (NULL: unknown, a sealed value
 * does not open): pushes the value, or nil, "decode error: ..." /
 * nil, "decrypt error: ...". With sealerr (HC_CODEC_ERRLEN bytes) a value
 * that does not open pushes nothing and returns 0 with sealerr set (the
 * caller's miss; "" otherwise). Frees r (if any) and what decoding
 * allocated, also when Lua raises. */
int hc_push_decoded(lua_State *L, client *cl, const char *p, size_t n, redisReply *r, const char *key, size_t kn,
                    char *sealerr);

/* ---- encrypted values (hc_lseal.c) ---------------------------------------- */

/* 1 when the value at the full key must be sealed: every value of a cache
 * made with encrypt and no families, else a family of encrypt.families or
 * memoize's encrypt, or a family keys.define declared encrypted (the key
 * text before its first ':' after prefix:version:, the whole key without
 * a ':'). */
int hc_seal_must(const client *cl, const char *key, size_t kn);
/* Seals the codec's bytes in *val for the key when it must be: 0, or -1
 * with err (no keys to seal with, out of memory). Never raises. */
int hc_seal_value(client *cl, const char *key, size_t kn, hc_buf *val, char *err, size_t errlen);
/* The same whatever the key's family (a value that was sealed stays so). */
int hc_seal_always(client *cl, const char *key, size_t kn, hc_buf *val, char *err, size_t errlen);
/* Lets d open sealed values stored at the key (and refuse plain ones where
 * they must be sealed). */
void hc_seal_decoding(const client *cl, hc_decoding *d, const char *key, size_t kn);
/* Reports a value that did not open (d->seal_failed: a miss): the op
 * "decrypt" with an error in stats and on_event. May raise (the hook):
 * call it when no C resource is held. */
void hc_seal_event(lua_State *L, client *cl, const char *key, size_t kn, const char *why);

/* ---- reads with tags checked (hc_read.c) --------------------------------- */

typedef struct hc_got {
    redisReply *r;   /* the GET reply (the caller frees it)              */
    int present;     /* the key holds something                          */
    int visible;     /* ... that reads may return: decode r->str         */
    int l1;          /* 1: a fresh L1 copy, 2: a stale one (Redis down)   */
    unsigned long long stamp; /* the L1 entry's stamp (l1 != 0)         */
    unsigned long long l1_seq; /* ... its shard's change counter, shard, */
    unsigned l1_shard, l1_epoch; /* trust epoch, expiry and size          */
    double l1_expires;
    size_t l1_len;
} hc_got;

/* GET v (and MGET of want's tag keys, in the same round trip) and, for a
 * tagged entry read without want, MGET of its tag keys. An entry is
 * visible when it exists, its tags (if any) are current, and, with want,
 * it carries exactly those tags. Never raises. 0, or -1 with err. */
int hc_read_one(client *cl, const char *v, size_t vn, const hc_taglist *want, hc_got *g, char *err);

/* For n entries (bytes p[i], len[i]: whole values, or the first bytes of
 * them holding their header), sets vis[i] = 1 unless the entry is tagged
 * and its tags are not current; one MGET for all tagged entries. Entries
 * that are not strings count as visible. Never raises. 0, or -1 + err. */
int hc_entries_visible(client *cl, int n, const char *const *p, const size_t *len, int *vis, char *err);

/* ---- WRITE items (hc_write.c) ---------------------------------------------- */

typedef struct hc_wr {
    hc_cmdb keys, args;
    int nkeys, items;
    /* on a cluster: where each item's keys and arguments start, so that
     * the items are run as one EVALSHA per slot (hc_wr_run) */
    int *kstart, *astart, cap, oom;
} hc_wr;

void hc_wr_init(hc_wr *w);
void hc_wr_free(hc_wr *w);
/* Bytes are borrowed: keep them alive until hc_wr_run returns. */
void hc_wr_set(hc_wr *w, const client *cl, const char *v, size_t vn, const char *bytes, size_t bn,
               long long px);
void hc_wr_cond(hc_wr *w, const client *cl, const char *v, size_t vn, int nx, const char *bytes,
                size_t bn, long long px, const char *known, size_t kn, int vis);
void hc_wr_del(hc_wr *w, const client *cl, const char *v, size_t vn);
void hc_wr_incr(hc_wr *w, const client *cl, const char *v, size_t vn, long long delta);
void hc_wr_rename(hc_wr *w, const client *cl, const char *v, size_t vn, const char *to, size_t tn);
void hc_wr_fill(hc_wr *w, const client *cl, const char *v, size_t vn, const char *lease_value,
                size_t lvn, const char *epoch, size_t en, const char *bytes, size_t bn, long long px);
void hc_wr_tag(hc_wr *w, const client *cl, const char *t, size_t tn);
/* Runs the items in one EVALSHA (plus `extra` commands after it, if not
 * NULL, in the same round trip: their replies follow). *r: the array of
 * per-item results (the caller frees it). Frees the items. On a cluster
 * the items are grouped by the slot of their keys, one EVALSHA per slot
 * (an item's keys share one slot: a value key and its companions, or a
 * tag key), all in the same round trip; *r is their results merged back
 * in item order (or the first group's error reply). */
int hc_wr_run(hc_wr *w, client *cl, hc_cmdb *extra, redisReply **r, char *err);
/* The same when extra holds EVALSHAs: extra_scripts[i] is the script of
 * its command i, or -1 (see hc_client_run). */
int hc_wr_run_with(hc_wr *w, client *cl, hc_cmdb *extra, const int *extra_scripts, redisReply **r, char *err);

/* The tokens of tags t (created when missing with mode 'p'; 'x' only
 * extends), each tag key made to live at least px ms (0: no expiry),
 * added as one EVALSHA of TAGS to b. */
void hc_tags_script(hc_cmdb *b, client *cl, const hc_taglist *t, char mode, long long px, char *tokens);

/* The namespace epoch key of value key v (on a cluster one per slot:
 * v's), and, for an epoch value, its wake-up list. */
size_t hc_epoch_name(const client *cl, const char *v, size_t vn, char *buf);
size_t hc_epoch_wake_name(const client *cl, const char *v, size_t vn, const char *epoch, size_t en, char *buf);
/* On a cluster: the epoch key of slot s, and its wake-up list. */
size_t hc_epoch_slot_name(const client *cl, int slot, char *buf);
size_t hc_epoch_slot_wake_name(const client *cl, int slot, const char *epoch, size_t en, char *buf);

/* ---- the keeper (hc_keeper.c) ---------------------------------------------- */

/* Pushes a watch that keeps key (holding val) alive with ttl ms, or
 * nil, err. */
int hc_keeper_watch(lua_State *L, client *cl, const char *key, size_t klen, const char *val, size_t vlen,
                    long long ttl);

#endif
