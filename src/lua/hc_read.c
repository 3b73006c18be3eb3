/*
 * hc_read.c -- reads: get, get_many, has_key, ttl, expire / touch,
 * persist, and the read of get_or_set (_read) and of keys() (_visible).
 *
 * Every read answers the same question the same way: a key holds a
 * visible entry when it exists and, if the entry is tagged, every tag's
 * token is still current (hc_entry.h); a read that names tags also
 * requires the entry to carry exactly those. A plain GET of an untagged
 * value stays one round trip; a tagged entry costs one more (MGET of its
 * tag keys), or none when the read names its tags (both in one pipeline).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_l1.h"
#include "hc_ops.h"
#include "hc_reply.h"
#include "hc_time.h"

/* MGET of the tags of the entry in p (already parsed into e): *visible. */
static int check_tags(client *cl, const hc_entry *e, int *visible, char *err)
{
    hc_cmdb b;
    redisReply *t;
    int rc;
    hc_cmdb_init(&b);
    hc_taglist_mget(&b, &e->tags, cl->prefix, cl->prefix_len);
    rc = hc_client_run(cl, &b, NULL, &t, err);
    hc_cmdb_free(&b);
    if (rc != 0) return -1;
    *visible = hc_taglist_current(&e->tags, t);
    freeReplyObject(t);
    return 0;
}

/* ---- L1 ------------------------------------------------------------------ */

/* A reply object that owns a copy read from the L1 (freeReplyObject frees
 * both); NULL when out of memory (the copy is freed). */
static redisReply *l1_reply(hc_store_val *sv)
{
    redisReply *r = calloc(1, sizeof *r);
    if (r && sv->data == NULL) sv->data = calloc(1, 1);
    if (r == NULL || sv->data == NULL) {
        free(r);
        free(sv->data);
        return NULL;
    }
    r->type = REDIS_REPLY_STRING;
    r->str = sv->data;
    r->len = sv->len;
    return r;
}

/* The L1 copy of v (stale: also a copy past its freshness, for when Redis
 * cannot be reached). 1 found (g filled), 0 not, -1 out of memory. */
static int l1_lookup(client *cl, const char *v, size_t vn, int stale, hc_got *g)
{
    hc_store_val sv;
    int st = hc_l1_get(cl->l1, v, vn, stale, 0, &sv);
    if (st == HC_STORE_MISS) return 0;
    if (sv.flags & HC_L1_TAGGED) { /* not kept today; never served */
        free(sv.data);
        return 0;
    }
    g->stamp = sv.stamp;
    g->l1_seq = sv.seq;
    g->l1_shard = sv.shard;
    g->l1_expires = sv.expires;
    g->l1_len = sv.len;
    g->l1_epoch = HC_L1_EPOCH(sv.flags);
    if ((g->r = l1_reply(&sv)) == NULL) return -1;
    g->present = g->visible = 1;
    g->l1 = st == HC_STORE_HIT ? 1 : 2;
    return 1;
}

/* The read of an untagged entry through L1: a fresh copy is served
 * without I/O; otherwise GET + PTTL with the key marked as filling, and
 * an untagged value found is kept (unless an invalidation came between).
 * When Redis cannot be reached, a stale copy within stale_if_error is
 * served (g->l1 = 2). */
static int l1_read(client *cl, const char *v, size_t vn, hc_got *g, char *err)
{
    const char *argv[4] = {"GET", v, "PTTL", v};
    size_t lens[4] = {3, vn, 4, vn};
    redisReply *r[2] = {NULL, NULL};
    long long pttl = -1;
    uint32_t epoch;
    uint64_t ticket;
    double sent;
    hc_cmd c[2];
    hc_entry e;
    int rc;
    rc = l1_lookup(cl, v, vn, 0, g);
    if (rc != 0) {
        if (rc < 0) snprintf(err, HC_ERRLEN, "out of memory");
        return rc < 0 ? -1 : 0;
    }
    if (cl->xio) { /* runs of one operation over a Lua transport: one mark, set before the GET is sent */
        unsigned long long a, b;
        if (hc_xio_memo_get(cl->xio, &a, &b)) {
            ticket = a;
            epoch = (uint32_t)b;
        } else {
            ticket = hc_l1_fill_begin(cl->l1, v, vn, &epoch);
            hc_xio_memo_set(cl->xio, ticket, epoch);
        }
    } else {
        ticket = hc_l1_fill_begin(cl->l1, v, vn, &epoch);
    }
    sent = cl->xio ? hc_xio_t0(cl->xio) : hc_now(); /* the operation's start: no later than the send */
    c[0].argc = c[1].argc = 2;
    c[0].argv = argv;
    c[1].argv = argv + 2;
    c[0].argvlen = lens;
    c[1].argvlen = lens + 2;
    if (hc_client_exec(cl, ticket ? 2 : 1, c, r, err) != 0) {
        if (hc_client_pending(cl)) return -1; /* the round is on its way: the mark stays */
        hc_l1_fill_abort(cl->l1, v, vn, ticket);
        rc = l1_lookup(cl, v, vn, 1, g); /* Redis is unreachable: a stale copy? */
        if (rc < 0) snprintf(err, HC_ERRLEN, "out of memory");
        return rc > 0 ? 0 : -1;
    }
    if (r[1]) {
        if (r[1]->type == REDIS_REPLY_INTEGER) pttl = r[1]->integer;
        freeReplyObject(r[1]);
    }
    g->r = r[0];
    if (r[0]->type != REDIS_REPLY_STRING) { /* Redis has nothing: neither may L1 (a local or stale copy) */
        hc_l1_fill_abort(cl->l1, v, vn, ticket);
        hc_l1_drop(cl->l1, v, vn);
        return 0;
    }
    g->present = 1;
    if (hc_entry_parse(r[0]->str, r[0]->len, 1, &e, NULL) != HC_ENTRY_OK || e.tags.n == 0) {
        g->visible = 1;
        hc_l1_fill_end(cl->l1, v, vn, ticket, epoch, r[0]->str, r[0]->len, 0, pttl, sent);
        return 0;
    }
    /* a tagged entry: checked in Redis, not kept in L1 */
    hc_l1_fill_abort(cl->l1, v, vn, ticket);
    hc_l1_drop(cl->l1, v, vn);
    if (check_tags(cl, &e, &g->visible, err) != 0) {
        freeReplyObject(r[0]);
        g->r = NULL;
        return -1;
    }
    return 0;
}

int hc_read_one(client *cl, const char *v, size_t vn, const hc_taglist *want, hc_got *g, char *err)
{
    redisReply *r[2] = {NULL, NULL};
    hc_entry e;
    int rc = 0;
    g->r = NULL;
    g->present = g->visible = 0;
    g->l1 = 0;
    g->stamp = 0;
    if (want == NULL && hc_client_l1_covers(cl, v, vn)) return l1_read(cl, v, vn, g, err);
    if (want == NULL) { /* the hot path: one GET, no allocation */
        const char *argv[2] = {"GET", v};
        size_t lens[2] = {3, vn};
        hc_cmd c;
        c.argc = 2;
        c.argv = argv;
        c.argvlen = lens;
        if (hc_client_exec(cl, 1, &c, r, err) != 0) return -1;
    } else {
        hc_cmdb b;
        hc_cmdb_init(&b);
        hc_cmdb_str(&b, "GET");
        hc_cmdb_ref(&b, v, vn);
        hc_cmdb_end(&b);
        hc_taglist_mget(&b, want, cl->prefix, cl->prefix_len);
        rc = hc_client_run(cl, &b, NULL, r, err);
        hc_cmdb_free(&b);
        if (rc != 0) return -1;
    }
    g->r = r[0];
    if (r[0]->type == REDIS_REPLY_STRING) {
        g->present = 1;
        if (hc_entry_parse(r[0]->str, r[0]->len, 1, &e, NULL) != HC_ENTRY_OK || e.tags.n == 0) {
            g->visible = want == NULL; /* a corrupt envelope: the decode reports it */
        } else if (want) {
            g->visible = hc_taglist_same_names(want, &e.tags) && hc_taglist_current(&e.tags, r[1]);
        } else if (check_tags(cl, &e, &g->visible, err) != 0) {
            freeReplyObject(r[0]);
            g->r = NULL;
            rc = -1;
        }
    }
    if (r[1]) freeReplyObject(r[1]);
    return rc;
}

int hc_entries_visible(client *cl, int n, const char *const *p, const size_t *len, int *vis, char *err)
{
    hc_entry e;
    hc_cmdb b;
    redisReply *t;
    int i, j, any = 0, rc;
    hc_cmdb_init(&b);
    hc_cmdb_str(&b, "MGET");
    for (i = 0; i < n; i++) {
        vis[i] = 1;
        if (p[i] == NULL || hc_entry_parse(p[i], len[i], 0, &e, NULL) != HC_ENTRY_OK) continue;
        for (j = 0; j < e.tags.n; j++) {
            char key[HC_PREFIX_MAX + HC_TAG_MAX + 8];
            hc_cmdb_add(&b, key, hc_name_tag(key, cl->prefix, cl->prefix_len, e.tags.name[j], e.tags.name_len[j]));
            any = 1;
        }
    }
    hc_cmdb_end(&b);
    if (!any) {
        hc_cmdb_free(&b);
        return 0;
    }
    rc = hc_client_run(cl, &b, NULL, &t, err);
    hc_cmdb_free(&b);
    if (rc != 0) return -1;
    for (i = 0, j = 0; i < n; i++) {
        int k;
        if (p[i] == NULL || hc_entry_parse(p[i], len[i], 0, &e, NULL) != HC_ENTRY_OK || e.tags.n == 0) continue;
        vis[i] = 0;
        if (t->type != REDIS_REPLY_ARRAY || t->elements < (size_t)(j + e.tags.n)) continue;
        /* the part of the MGET answer for this entry */
        for (k = 0; k < e.tags.n; k++) {
            const redisReply *x = t->element[j + k];
            if (x->type != REDIS_REPLY_STRING || x->len != e.tags.tok_len[k] ||
                memcmp(x->str, e.tags.tok[k], x->len) != 0)
                break;
        }
        vis[i] = k == e.tags.n;
        j += e.tags.n;
    }
    freeReplyObject(t);
    return 0;
}

/* ---- get ------------------------------------------------------------------ */

/* The memo of an L1 cache: for each key whose L1 copy decoded to a table,
 * {table, rec}. rec says which store entry the table was decoded from and
 * how to tell, without a lock, that the entry is still there unchanged
 * (hc_store_seq). Bounded: emptied when it reaches cl->memo_max keys. */
typedef struct memo_rec {
    unsigned long long stamp, seq;
    double expires;
    size_t len;
    unsigned shard, epoch;
} memo_rec;

static void memo_fill(memo_rec *m, const hc_got *g)
{
    m->stamp = g->stamp;
    m->seq = g->l1_seq;
    m->expires = g->l1_expires;
    m->len = g->l1_len;
    m->shard = g->l1_shard;
    m->epoch = g->l1_epoch;
}

/* The L1 hit of a table this Lua state decoded before: when the memo holds
 * a table for key and L1 still holds the very entry it was decoded from
 * (its shard unchanged since -- no lock --, or the same stamp found under
 * the lock), pushes it (1); else 0, stack unchanged. *in: its size. */
static int l1_memo_hit(lua_State *L, client *cl, const char *key, size_t kn, size_t *in)
{
    hc_store_val sv;
    memo_rec *m;
    int st;
    lua_rawgeti(L, LUA_REGISTRYINDEX, cl->memo);
    lua_pushlstring(L, key, kn);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return 0;
    }
    lua_rawgeti(L, -1, 2);
    m = (memo_rec *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (m == NULL) {
        lua_pop(L, 2);
        return 0;
    }
    if (!hc_l1_unchanged(cl->l1, m->shard, m->seq, m->epoch, m->expires)) {
        st = hc_l1_get(cl->l1, key, kn, 0, m->stamp, &sv);
        if (st != HC_STORE_HIT || sv.stamp != m->stamp || (sv.flags & HC_L1_TAGGED)) {
            if (st != HC_STORE_MISS) free(sv.data);
            lua_pop(L, 2);
            return 0;
        }
        m->seq = sv.seq; /* the same entry: its shard moved on for another key */
        m->shard = sv.shard;
        m->epoch = HC_L1_EPOCH(sv.flags);
        m->expires = sv.expires;
    }
    *in = m->len;
    lua_rawgeti(L, -1, 1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 1;
}

/* Decodes an L1 copy (frees g->r) and remembers a table in the memo. */
static int l1_memo_push(lua_State *L, client *cl, const char *key, size_t kn, hc_got *g, char *sealerr)
{
    int n = hc_push_decoded(L, cl, g->r->str, g->r->len, g->r, key, kn, sealerr);
    g->r = NULL;
    if (n == 1 && lua_istable(L, -1) && g->l1 == 1) {
        memo_rec *m;
        lua_rawgeti(L, LUA_REGISTRYINDEX, cl->memo);
        if (++cl->memo_n > cl->memo_max) { /* full: start again */
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_rawseti(L, LUA_REGISTRYINDEX, cl->memo);
            cl->memo_n = 1;
        }
        lua_pushlstring(L, key, kn);
        lua_createtable(L, 2, 0);
        lua_pushvalue(L, -4);
        lua_rawseti(L, -2, 1);
        m = (memo_rec *)lua_newuserdata(L, sizeof *m);
        memo_fill(m, g);
        lua_rawseti(L, -2, 2);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    return n;
}

/* cache:get(key, default, opts) -> value | default (miss) | nil, err */
static int cache_get(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN];
    hc_taglist want;
    int has_want, n;
    size_t kn;
    double t0;
    hc_got g;
    lua_settop(L, 4);
    has_want = hc_opts_tags(L, 4, 4, &want, hc_opts_tags_only);
    kn = hc_key_arg(L, cl, 2, key);
    if (!has_want && cl->memo != LUA_NOREF && hc_client_l1_covers(cl, key, kn)) {
        size_t in;
        if (l1_memo_hit(L, cl, key, kn, &in)) /* no I/O, no clock: see hc_stats_record */
            return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_GET, HC_EV_HIT, key, kn, in, 0, 0, 1) : 1;
    }
    t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    if (hc_read_one(cl, key, kn, has_want ? &want : NULL, &g, err) != 0) {
        n = hc_fail(L, err);
        return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_GET, 0, key, kn, 0, 0, t0, n) : n;
    }
    if (g.visible) {
        char sealerr[HC_CODEC_ERRLEN];
        size_t in = g.r->len;
        unsigned ev = g.l1 == 2 ? HC_EV_HIT | HC_EV_STALE : HC_EV_HIT;
        if (g.l1 && cl->memo != LUA_NOREF) {
            n = l1_memo_push(L, cl, key, kn, &g, sealerr);
        } else {
            n = hc_push_decoded(L, cl, g.r->str, g.r->len, g.r, key, kn, sealerr);
        }
        if (n == 0) { /* an encrypted value that does not open: a miss, and an error event */
            lua_pushvalue(L, 3);
            n = HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_GET, HC_EV_MISS, key, kn, in, 0, t0, 1) : 1;
            hc_seal_event(L, cl, key, kn, sealerr);
            return n;
        }
        return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_GET, ev, key, kn, in, 0, t0, n) : n;
    }
    if (g.r->type != REDIS_REPLY_NIL && g.r->type != REDIS_REPLY_STRING) {
        n = hc_unexpected(L, g.r);
        return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_GET, 0, key, kn, 0, 0, t0, n) : n;
    }
    freeReplyObject(g.r);
    lua_pushvalue(L, 3); /* the default, or nil */
    return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_GET, HC_EV_MISS, key, kn, 0, 0, t0, 1) : 1;
}

/* ---- get_many ---------------------------------------------------------------- */

/* Composes the keys of the list at idx into GC-owned memory and returns
 * the argument vector with `lead` free slots in front. Raises naming the
 * bad key. */
static hc_cmd keys_vector(lua_State *L, const client *cl, int idx, int lead, int *n)
{
    int i, count;
    size_t total = 0;
    char *bytes, key[HC_FULLKEY_MAX];
    const char **argv;
    size_t *lens;
    hc_cmd c;

    luaL_checktype(L, idx, LUA_TTABLE);
    hc_list_check(L, idx, idx, "keys");
    count = (int)lua_rawlen(L, idx);
    for (i = 1; i <= count; i++) {
        const char *why = NULL;
        size_t kn;
        lua_rawgeti(L, idx, i);
        kn = hc_key_compose(L, cl, cl->version, lua_gettop(L), key, &why);
        lua_pop(L, 1);
        if (kn == 0) luaL_argerror(L, idx, lua_pushfstring(L, "keys[%d]: %s", i, why));
        total += kn;
    }
    lens = (size_t *)lua_newuserdata(L, (size_t)(count + lead) * (sizeof *lens + sizeof *argv) + total + 1);
    argv = (const char **)(lens + count + lead);
    bytes = (char *)(argv + count + lead);
    for (i = 1; i <= count; i++) {
        const char *why;
        size_t kn;
        lua_rawgeti(L, idx, i);
        kn = hc_key_compose(L, cl, cl->version, lua_gettop(L), key, &why);
        lua_pop(L, 1);
        memcpy(bytes, key, kn);
        argv[lead + i - 1] = bytes;
        lens[lead + i - 1] = kn;
        bytes += kn;
    }
    *n = count;
    c.argc = count + lead;
    c.argv = argv;
    c.argvlen = lens;
    return c;
}

typedef struct many {
    client *cl;
    redisReply *r;
    int *vis;      /* set to 2 where an encrypted value did not open */
    const hc_cmd *keys; /* the MGET: its argument i + 1 is the key of element i */
    hc_decoding d; /* the element being decoded; freed again by the caller */
} many;

/* args: keys list, a table for why encrypted values did not open (by
 * index). Returns values map (+ errors map when some failed). */
static int get_many_cb(lua_State *L, void *ud)
{
    many *m = (many *)ud;
    size_t i;
    int has_errors = 0;
    lua_createtable(L, 0, (int)m->r->elements); /* 3: values */
    lua_newtable(L);                             /* 4: errors */
    for (i = 0; i < m->r->elements; i++) {
        redisReply *e = m->r->element[i];
        int rc;
        if (e->type != REDIS_REPLY_STRING || !m->vis[i]) continue; /* a miss */
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        hc_decoding_init(&m->d, &m->cl->codec, e->str, e->len);
        hc_seal_decoding(m->cl, &m->d, m->keys->argv[i + 1], m->keys->argvlen[i + 1]);
        rc = hc_decode_push(L, &m->d);
        hc_decoding_done(&m->d);
        if (rc == 0) {
            lua_rawset(L, 3);
        } else if (m->d.seal_failed) { /* a miss, reported once the replies are freed */
            lua_pop(L, 1);
            m->vis[i] = 2;
            lua_pushstring(L, m->d.err);
            lua_rawseti(L, 2, (lua_Integer)i + 1);
        } else {
            lua_pushfstring(L, "decode error: %s", m->d.err);
            lua_rawset(L, 4);
            has_errors = 1;
        }
    }
    if (!has_errors) lua_pop(L, 1);
    return has_errors ? 2 : 1;
}

/* Which elements of the MGET answer r are visible (vis), given the MGET
 * of the wanted tags (w, when the read names tags). */
static int many_visible(client *cl, redisReply *r, const hc_taglist *want, redisReply *w, int *vis,
                        const char **p, size_t *len, char *err)
{
    size_t i;
    if (want) {
        for (i = 0; i < r->elements; i++) {
            hc_entry e;
            redisReply *x = r->element[i];
            vis[i] = x->type == REDIS_REPLY_STRING && hc_entry_parse(x->str, x->len, 1, &e, NULL) == HC_ENTRY_OK &&
                     e.tags.n > 0 && hc_taglist_same_names(want, &e.tags) && hc_taglist_current(&e.tags, w);
        }
        return 0;
    }
    for (i = 0; i < r->elements; i++) {
        redisReply *x = r->element[i];
        p[i] = x->type == REDIS_REPLY_STRING ? x->str : NULL;
        len[i] = x->type == REDIS_REPLY_STRING ? x->len : 0;
    }
    return hc_entries_visible(cl, (int)r->elements, p, len, vis, err);
}

/* cache:get_many(keys, opts) -> {key = value} (misses absent)[, {key = err}] | nil, err */
static int cache_get_many(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    redisReply *r[2] = {NULL, NULL};
    hc_taglist want;
    hc_cmd c;
    hc_cmdb b;
    many m;
    int n, top, st, has_want, *vis, rc, fails;
    const char **p;
    size_t *len, i, hits = 0, in = 0;
    double t0;

    lua_settop(L, 3);
    has_want = hc_opts_tags(L, 3, 3, &want, hc_opts_tags_only);
    c = keys_vector(L, cl, 2, 1, &n);
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    /* everything this call needs in C, owned by the GC: nothing raises later */
    /* pointers first, ints last: every array stays aligned */
    p = (const char **)lua_newuserdata(L, (size_t)n * (sizeof *vis + sizeof *p + sizeof *len));
    len = (size_t *)(p + n);
    vis = (int *)(len + n);
    lua_newtable(L); /* why encrypted values did not open */
    fails = lua_gettop(L);
    hc_cmdb_init(&b);
    hc_cmdb_str(&b, "MGET");
    for (i = 1; i < (size_t)c.argc; i++) hc_cmdb_ref(&b, c.argv[i], c.argvlen[i]);
    hc_cmdb_end(&b);
    if (has_want) hc_taglist_mget(&b, &want, cl->prefix, cl->prefix_len);
    t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    rc = hc_client_run(cl, &b, NULL, r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != (size_t)n) {
        if (r[1]) freeReplyObject(r[1]);
        return hc_unexpected(L, r[0]);
    }
    rc = many_visible(cl, r[0], has_want ? &want : NULL, r[1], vis, p, len, err);
    if (r[1]) freeReplyObject(r[1]);
    if (rc != 0) {
        freeReplyObject(r[0]);
        return hc_fail(L, err);
    }
    for (i = 0; i < (size_t)n; i++)
        if (vis[i] && r[0]->element[i]->type == REDIS_REPLY_STRING) {
            hits++;
            in += r[0]->element[i]->len;
        }
    m.cl = cl;
    m.r = r[0];
    m.vis = vis;
    m.keys = &c;
    hc_decoding_init(&m.d, &cl->codec, NULL, 0);
    top = lua_gettop(L);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, fails);
    st = hc_pcall(L, get_many_cb, &m, 2, LUA_MULTRET);
    hc_decoding_done(&m.d);
    freeReplyObject(r[0]);
    if (st == -1) return luaL_error(L, "stack overflow");
    if (st != 0) return lua_error(L);
    for (i = 0; i < (size_t)n; i++)
        if (vis[i] == 2) { /* did not open: a miss; the keys live in GC memory */
            hits--;
            lua_rawgeti(L, fails, (lua_Integer)i + 1);
            hc_seal_event(L, cl, c.argv[i + 1], c.argvlen[i + 1], lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    if (HC_OBSERVED(cl)) {
        if (cl->stats) {
            hc_stats_count(cl->stats, HC_EV_HIT, hits, NULL, 0);
            hc_stats_count(cl->stats, HC_EV_MISS, (unsigned long long)n - hits, NULL, 0);
        }
        hc_client_event(L, cl, HC_OP_GET_MANY, 0, NULL, 0, in, 0, t0, NULL);
    }
    return lua_gettop(L) - top;
}

/* ---- probes: has_key, ttl, expire, persist ------------------------------------ */

/* Runs GETRANGE v 0 HC_PROBE-1 and the nx commands x in one round trip
 * (their replies into xr, which the caller frees), reads further when
 * the entry's header is longer, and sets *vis: 0 when v holds a tagged
 * entry whose tags are not current (or that cannot be read), else 1. A
 * visible tagged entry gets its tag keys extended to tags_ms (0: no
 * expiry) when tags_ms >= 0. *soft_ms (if soft_ms is not NULL): the soft
 * expiry of an envelope that carries one (Unix ms), else -1. */
static int probe(client *cl, const char *v, size_t vn, int nx, const hc_cmd *x, redisReply **xr, int *vis,
                 long long tags_ms, long long *soft_ms, char *err)
{
    char to[24];
    const char *argv[4] = {"GETRANGE", v, "0", to};
    size_t lens[4] = {8, vn, 1, 0};
    hc_cmd c[3];
    redisReply *r[3];
    hc_entry e;
    size_t need;
    int i, st;
    lens[3] = (size_t)snprintf(to, sizeof to, "%d", HC_PROBE - 1);
    c[0].argc = 4;
    c[0].argv = argv;
    c[0].argvlen = lens;
    for (i = 0; i < nx; i++) c[1 + i] = x[i];
    if (hc_client_exec(cl, 1 + nx, c, r, err) != 0) return -1;
    for (i = 0; i < nx; i++) xr[i] = r[1 + i];
    *vis = 1;
    if (soft_ms) *soft_ms = -1;
    if (r[0]->type != REDIS_REPLY_STRING) { /* another type: it exists, the other commands tell */
        freeReplyObject(r[0]);
        return 0;
    }
    st = hc_entry_parse(r[0]->str, r[0]->len, r[0]->len < HC_PROBE, &e, &need);
    if (st == HC_ENTRY_SHORT) { /* a long header: read all of it */
        lens[3] = (size_t)snprintf(to, sizeof to, "%zu", need - 1);
        freeReplyObject(r[0]);
        if (hc_client_exec(cl, 1, c, r, err) != 0) goto fail;
        if (r[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r[0]);
            return 0;
        }
        st = hc_entry_parse(r[0]->str, r[0]->len, 0, &e, &need);
    }
    if (st == HC_ENTRY_OK && e.has_soft && soft_ms) *soft_ms = e.soft_ms;
    if (st == HC_ENTRY_OK && e.tags.n > 0) {
        const char *hp = r[0]->str;
        size_t hn = r[0]->len;
        if (hc_entries_visible(cl, 1, &hp, &hn, vis, err) != 0) {
            freeReplyObject(r[0]);
            goto fail;
        }
        if (*vis && tags_ms >= 0) {
            redisReply *t;
            hc_cmdb b;
            hc_cmdb_init(&b);
            hc_tags_script(&b, cl, &e.tags, 'x', tags_ms, NULL);
            i = HC_SCRIPT_TAGS;
            st = hc_client_run(cl, &b, &i, &t, err);
            hc_cmdb_free(&b);
            if (st == 0) freeReplyObject(t);
            else {
                freeReplyObject(r[0]);
                goto fail;
            }
        }
    }
    freeReplyObject(r[0]);
    return 0;
fail:
    for (i = 0; i < nx; i++) freeReplyObject(xr[i]);
    return -1;
}

static hc_cmd cmd2(const char **argv, size_t *lens, const char *name, const char *k, size_t kn)
{
    hc_cmd c;
    argv[0] = name;
    lens[0] = strlen(name);
    argv[1] = k;
    lens[1] = kn;
    c.argc = 2;
    c.argv = argv;
    c.argvlen = lens;
    return c;
}

static long long int_of(redisReply *r, long long dflt)
{
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : dflt;
    freeReplyObject(r);
    return v;
}

/* One command on the key beside the probe: true when it answered 1 and a
 * get would see the entry. */
static int probe_bool(lua_State *L, const char *command, long long tags_ms)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key);
    const char *argv[2];
    size_t lens[2];
    hc_cmd x = cmd2(argv, lens, command, key, kn);
    redisReply *xr;
    int vis;
    if (probe(cl, key, kn, 1, &x, &xr, &vis, tags_ms, NULL, err) != 0) return hc_fail(L, err);
    lua_pushboolean(L, int_of(xr, 0) == 1 && vis);
    return 1;
}

static int has_key_raw(lua_State *L) { return probe_bool(L, "EXISTS", -1); }

/* cache:has_key(key) -> bool | nil, err: whether a get would hit */
static int cache_has_key(lua_State *L) { return hc_call_observed(L, has_key_raw, HC_OP_HAS_KEY, 0); }

/* cache:ttl(key) -> seconds left | 0 (no expiry) | nil (no such entry) | nil, err
 *
 * An entry get_or_set wrote with stale / stale_if_error / early carries a
 * soft expiry (hc_entry.h, flag 1): its key lives ttl + the stale window,
 * but the TTL the caller asked for ends at the soft expiry, so that is
 * what is reported (or the key's own TTL, when that is shorter). Past the
 * soft expiry (a stale value, still returned by get) it reports 0.001:
 * the smallest time left that is not 0, which means "never expires". The
 * soft expiry is the writer's wall clock; entries without one report the
 * key's PTTL as before. */
static int ttl_raw(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key);
    const char *argv[2];
    size_t lens[2];
    hc_cmd x = cmd2(argv, lens, "PTTL", key, kn);
    redisReply *xr;
    long long ms, soft;
    int vis;
    if (probe(cl, key, kn, 1, &x, &xr, &vis, -1, &soft, err) != 0) return hc_fail(L, err);
    ms = int_of(xr, -2);
    if (ms == -2 || !vis) {
        lua_pushnil(L);
        return 1;
    }
    if (soft >= 0) {
        struct timespec ts;
        long long left;
        clock_gettime(CLOCK_REALTIME, &ts);
        left = soft - ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (left < 1) left = 1;
        if (ms < 0 || left < ms) ms = left;
    }
    if (ms == -1) lua_pushinteger(L, 0);
    else lua_pushnumber(L, (lua_Number)ms / 1000.0);
    return 1;
}

/* cache:expire(key, ttl) / cache:touch(key, ttl) -> true (the entry
 * exists) | false | nil, err. ttl nil: the cache default; 0: no expiry.
 * A tagged entry's tag keys are made to live as long. */
static int expire_raw(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN], num[32];
    size_t kn = hc_key_arg(L, cl, 2, key);
    long long ms = hc_ttl_arg(L, cl, 3);
    const char *a1[3], *a2[2];
    size_t l1[3], l2[2];
    hc_cmd x[2];
    redisReply *xr[2];
    int vis, ok;
    if (ms > 0) {
        x[0] = cmd2(a1, l1, "PEXPIRE", key, kn);
        a1[2] = num;
        l1[2] = (size_t)snprintf(num, sizeof num, "%lld", ms);
        x[0].argc = 3;
        if (probe(cl, key, kn, 1, x, xr, &vis, ms, NULL, err) != 0) return hc_fail(L, err);
        ok = int_of(xr[0], 0) == 1;
    } else {
        x[0] = cmd2(a1, l1, "PERSIST", key, kn);
        x[1] = cmd2(a2, l2, "EXISTS", key, kn);
        if (probe(cl, key, kn, 2, x, xr, &vis, 0, NULL, err) != 0) return hc_fail(L, err);
        freeReplyObject(xr[0]);
        ok = int_of(xr[1], 0) == 1;
    }
    lua_pushboolean(L, ok && vis);
    return 1;
}

static int cache_ttl(lua_State *L) { return hc_call_observed(L, ttl_raw, HC_OP_TTL, 0); }
/* A changed TTL: this process's L1 copy (sized to the old one) goes. */
static void l1_drop_arg(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    const char *why;
    size_t kn;
    if (cl->l1 == NULL) return;
    kn = hc_key_compose(L, cl, cl->version, 2, key, &why);
    if (kn > 0) hc_l1_drop(cl->l1, key, kn);
}

static int cache_expire(lua_State *L)
{
    int n = hc_call_observed(L, expire_raw, HC_OP_EXPIRE, 0);
    l1_drop_arg(L);
    return n;
}

static int persist_raw(lua_State *L) { return probe_bool(L, "PERSIST", 0); }

/* cache:persist(key) -> true (a TTL was removed) | false | nil, err */
static int cache_persist(lua_State *L)
{
    int n = hc_call_observed(L, persist_raw, HC_OP_EXPIRE, 0);
    l1_drop_arg(L);
    return n;
}

/* ---- get_or_set's read, keys()'s filter -------------------------------------- */

typedef struct meta {
    hc_decoding d;
} meta;

static int read_meta_cb(lua_State *L, void *ud)
{
    meta *m = (meta *)ud;
    lua_pushboolean(L, 1);
    if (hc_decode_push(L, &m->d) != 0) {
        lua_pop(L, 1);
        if (m->d.seal_failed) { /* a miss of something stored: get_or_set computes and overwrites */
            lua_pushboolean(L, 0);
            lua_pushboolean(L, 1);
            return 2;
        }
        lua_pushnil(L);
        lua_pushfstring(L, "decode error: %s", m->d.err);
        return 2;
    }
    if (!m->d.enveloped) return 2;
    lua_pushinteger(L, (lua_Integer)m->d.soft_ms);
    lua_pushinteger(L, (lua_Integer)m->d.delta_ms);
    return 4;
}

/* cache:_read(key, tags) -> true, value[, soft_ms, delta_ms] (visible) |
 * false, present (a miss; present: something invisible is stored) |
 * nil, err. One GET (with tags: GET + MGET in one round trip). */
static int cache_read(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN];
    hc_taglist want;
    size_t kn;
    hc_got g;
    meta m;
    int top, st;
    lua_settop(L, 3);
    if (!lua_isnil(L, 3)) hc_taglist_from_lua(L, 3, 3, &want);
    kn = hc_key_arg(L, cl, 2, key);
    if (hc_read_one(cl, key, kn, lua_isnil(L, 3) ? NULL : &want, &g, err) != 0) return hc_fail(L, err);
    if (g.r->type != REDIS_REPLY_NIL && g.r->type != REDIS_REPLY_STRING) return hc_unexpected(L, g.r);
    if (!g.visible) {
        freeReplyObject(g.r);
        lua_pushboolean(L, 0);
        lua_pushboolean(L, g.present);
        return 2;
    }
    hc_client_bytes_in(cl, key, kn, g.r->len); /* get_or_set's reads count like get's */
    hc_decoding_init(&m.d, &cl->codec, g.r->str, g.r->len);
    hc_seal_decoding(cl, &m.d, key, kn);
    top = lua_gettop(L);
    st = hc_pcall(L, read_meta_cb, &m, 0, LUA_MULTRET);
    hc_decoding_done(&m.d);
    freeReplyObject(g.r);
    if (st == -1) return luaL_error(L, "stack overflow");
    if (st != 0) return lua_error(L);
    if (m.d.seal_failed) hc_seal_event(L, cl, key, kn, m.d.err); /* m.d.err outlives done() */
    return lua_gettop(L) - top;
}

/* cache:_visible(full_keys) -> the keys of the list that hold an entry a
 * read can see (for keys(): SCAN finds names, this drops the tagged
 * entries whose tags moved on) | nil, err */
static int cache_visible(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN], to[24];
    int n, i, *vis, rc = 0;
    const char **p, **argv;
    size_t *len, *lens, tl;
    hc_cmd *cmds;
    redisReply **r;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    hc_list_check(L, 2, 2, "full keys");
    n = (int)lua_rawlen(L, 2);
    for (i = 1; i <= n; i++) { /* every element checked before anything is built */
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 2, "full keys expected");
        lua_pop(L, 1);
    }
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    tl = (size_t)snprintf(to, sizeof to, "%d", HC_PROBE - 1);
    /* pointers and sizes first, ints last: every array stays aligned */
    p = (const char **)lua_newuserdata(L, (size_t)n * (sizeof *vis + sizeof *p + 5 * sizeof *len + sizeof *cmds +
                                                       sizeof *r + 4 * sizeof *argv));
    argv = p + n;
    len = (size_t *)(argv + 4 * n);
    lens = len + n;
    cmds = (hc_cmd *)(lens + 4 * n);
    r = (redisReply **)(cmds + n);
    vis = (int *)(r + n);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        argv[4 * i] = "GETRANGE";
        lens[4 * i] = 8;
        argv[4 * i + 1] = lua_tolstring(L, -1, &lens[4 * i + 1]); /* a string, anchored by the list */
        lua_pop(L, 1);
        argv[4 * i + 2] = "0";
        lens[4 * i + 2] = 1;
        argv[4 * i + 3] = to;
        lens[4 * i + 3] = tl;
        cmds[i].argc = 4;
        cmds[i].argv = argv + 4 * i;
        cmds[i].argvlen = lens + 4 * i;
    }
    if (hc_client_exec(cl, n, cmds, r, err) != 0) return hc_fail(L, err);
    for (i = 0; i < n && rc == 0; i++) {
        hc_entry e;
        size_t need;
        p[i] = NULL;
        len[i] = 0;
        if (r[i]->type != REDIS_REPLY_STRING) continue;
        if (hc_entry_parse(r[i]->str, r[i]->len, r[i]->len < HC_PROBE, &e, &need) == HC_ENTRY_SHORT) {
            hc_cmd c = cmds[i];
            char more[24];
            const char *a[4];
            size_t l[4];
            memcpy(a, c.argv, sizeof a);
            memcpy(l, c.argvlen, sizeof l);
            a[3] = more;
            l[3] = (size_t)snprintf(more, sizeof more, "%zu", need - 1);
            c.argv = a;
            c.argvlen = l;
            freeReplyObject(r[i]);
            r[i] = NULL;
            if (hc_client_exec(cl, 1, &c, &r[i], err) != 0) {
                r[i] = NULL;
                rc = -1;
                break;
            }
            if (r[i]->type != REDIS_REPLY_STRING) continue;
        }
        p[i] = r[i]->str;
        len[i] = r[i]->len;
    }
    if (rc == 0) rc = hc_entries_visible(cl, n, p, len, vis, err);
    for (i = 0; i < n; i++)
        if (r[i]) freeReplyObject(r[i]);
    if (rc != 0) return hc_fail(L, err);
    lua_newtable(L);
    for (i = 0, rc = 0; i < n; i++) {
        if (!vis[i]) continue;
        lua_rawgeti(L, 2, i + 1);
        lua_rawseti(L, -2, ++rc);
    }
    return 1;
}

/* cache:_l1_keep(key, bytes): get_or_set computed a value while Redis could
 * not be reached; with an L1 it is kept l1.local_ttl seconds, served only
 * while Redis stays unreachable. -> true (kept) | false (no L1) */
static int cache_l1_keep(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = hc_key_arg(L, cl, 2, key), bn;
    const char *bytes = luaL_checklstring(L, 3, &bn);
    if (cl->l1 == NULL || cl->l1_local_ttl <= 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    hc_l1_keep_local(cl->l1, key, kn, bytes, bn, cl->l1_local_ttl);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg read_methods[] = {
    {"get", cache_get},
    {"get_many", cache_get_many},
    {"has_key", cache_has_key},
    {"ttl", cache_ttl},
    {"expire", cache_expire},
    {"touch", cache_expire},
    {"persist", cache_persist},
    {"_read", cache_read},
    {"_l1_keep", cache_l1_keep},
    {"_visible", cache_visible},
    {NULL, NULL}};

void hc_read_register(lua_State *L)
{
    luaL_setfuncs(L, read_methods, 0);
}
