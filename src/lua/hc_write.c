/*
 * hc_write.c -- every write and invalidation of the cache API goes
 * through one place: items of the WRITE script (hc_scripts.c), built here
 * and run in one EVALSHA per call. Each item that touches a value key also
 * revokes that key's get_or_set lease and wakes a waiter, whatever the
 * item does (store, store if absent, delete, increment, rename), so a
 * fill computed before the write is never stored after it. clear() and
 * delete_pattern() add one thing: they move the namespace epoch on first
 * (_bump_epoch), which revokes every lease of the namespace at once, then
 * delete what SCAN finds with del items (lua/hicache/init.lua).
 *
 * Methods: set, add, set_many, incr, decr, delete, delete_many,
 * invalidate, invalidate_tag, incr_version, _invalidate_full, _bump_epoch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hc_l1.h"
#include "hc_ops.h"
#include "hc_slot.h"
#include "hc_time.h"

/* ---- items ------------------------------------------------------------------ */

void hc_wr_init(hc_wr *w)
{
    hc_cmdb_init(&w->keys);
    hc_cmdb_init(&w->args);
    w->nkeys = w->items = 0;
    w->kstart = w->astart = NULL;
    w->cap = w->oom = 0;
    hc_cmdb_int(&w->args, HC_WAKE_TTL_MS);
}

void hc_wr_free(hc_wr *w)
{
    hc_cmdb_free(&w->keys);
    hc_cmdb_free(&w->args);
    free(w->kstart);
    free(w->astart);
    w->kstart = w->astart = NULL;
}

/* On a cluster, where the item about to be added starts. */
static void item_start(hc_wr *w, const client *cl)
{
    if (cl->cluster == NULL) return;
    if (w->items == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        int *k = realloc(w->kstart, (size_t)cap * sizeof *k), *a;
        if (k == NULL) {
            w->oom = 1;
            return;
        }
        w->kstart = k;
        a = realloc(w->astart, (size_t)cap * sizeof *a);
        if (a == NULL) {
            w->oom = 1;
            return;
        }
        w->astart = a;
        w->cap = cap;
    }
    w->kstart[w->items] = w->keys.nargs;
    w->astart[w->items] = w->args.nargs;
}

/* V, its lease and its wake-up list. */
static void value_keys(hc_wr *w, const client *cl, const char *v, size_t vn)
{
    char name[HC_NAME_MAX];
    hc_cmdb_add(&w->keys, v, vn);
    hc_cmdb_add(&w->keys, name, hc_name_companion(name, cl->prefix, cl->prefix_len, v, vn, "lease", 5));
    hc_cmdb_add(&w->keys, name, hc_name_companion(name, cl->prefix, cl->prefix_len, v, vn, "wake", 4));
    w->nkeys += 3;
}

void hc_wr_set(hc_wr *w, const client *cl, const char *v, size_t vn, const char *bytes, size_t bn, long long px)
{
    item_start(w, cl);
    value_keys(w, cl, v, vn);
    hc_cmdb_str(&w->args, "set");
    hc_cmdb_ref(&w->args, bytes, bn);
    hc_cmdb_int(&w->args, px);
    w->items++;
}

void hc_wr_cond(hc_wr *w, const client *cl, const char *v, size_t vn, int nx, const char *bytes, size_t bn,
                long long px, const char *known, size_t kn, int vis)
{
    item_start(w, cl);
    value_keys(w, cl, v, vn);
    hc_cmdb_str(&w->args, nx ? "nx" : "xx");
    hc_cmdb_ref(&w->args, bytes, bn);
    hc_cmdb_int(&w->args, px);
    hc_cmdb_ref(&w->args, known, kn);
    hc_cmdb_str(&w->args, vis ? "1" : "0");
    w->items++;
}

void hc_wr_del(hc_wr *w, const client *cl, const char *v, size_t vn)
{
    item_start(w, cl);
    value_keys(w, cl, v, vn);
    hc_cmdb_str(&w->args, "del");
    w->items++;
}

void hc_wr_incr(hc_wr *w, const client *cl, const char *v, size_t vn, long long delta)
{
    item_start(w, cl);
    value_keys(w, cl, v, vn);
    hc_cmdb_str(&w->args, "incr");
    hc_cmdb_int(&w->args, delta);
    w->items++;
}

void hc_wr_rename(hc_wr *w, const client *cl, const char *v, size_t vn, const char *to, size_t tn)
{
    item_start(w, cl);
    value_keys(w, cl, v, vn);
    value_keys(w, cl, to, tn);
    hc_cmdb_str(&w->args, "rename");
    w->items++;
}

void hc_wr_fill(hc_wr *w, const client *cl, const char *v, size_t vn, const char *lease_value, size_t lvn,
                const char *epoch, size_t en, const char *bytes, size_t bn, long long px)
{
    char name[HC_NAME_MAX];
    item_start(w, cl);
    value_keys(w, cl, v, vn);
    hc_cmdb_add(&w->keys, name, hc_epoch_name(cl, v, vn, name));
    w->nkeys++;
    hc_cmdb_str(&w->args, "fill");
    hc_cmdb_add(&w->args, lease_value, lvn);
    hc_cmdb_add(&w->args, epoch, en);
    hc_cmdb_ref(&w->args, bytes, bn);
    hc_cmdb_int(&w->args, px);
    w->items++;
}

void hc_wr_tag(hc_wr *w, const client *cl, const char *t, size_t tn)
{
    char name[HC_PREFIX_MAX + HC_TAG_MAX + 8];
    item_start(w, cl);
    hc_cmdb_add(&w->keys, name, hc_name_tag(name, cl->prefix, cl->prefix_len, t, tn));
    w->nkeys++;
    hc_cmdb_str(&w->args, "tag");
    w->items++;
}

/* Adds the EVALSHA of the items to b. No item may be added afterwards;
 * the items' storage must live until b has run. */
static void wr_command(hc_wr *w, client *cl, hc_cmdb *b)
{
    int i;
    if (hc_cmdb_finish(&w->keys) != 0 || hc_cmdb_finish(&w->args) != 0) {
        b->oom = 1;
        return;
    }
    hc_client_script(cl, b, HC_SCRIPT_WRITE);
    hc_cmdb_int(b, w->nkeys);
    for (i = 0; i < w->keys.nargs; i++) hc_cmdb_ref(b, w->keys.argv[i], w->keys.lens[i]);
    for (i = 0; i < w->args.nargs; i++) hc_cmdb_ref(b, w->args.argv[i], w->args.lens[i]);
    hc_cmdb_end(b);
}

/* Appends the commands of extra to b (borrowed), their scripts to ids. */
static int add_extra(hc_cmdb *b, hc_cmdb *extra, const int *extra_scripts, int *ids)
{
    int i, j;
    if (hc_cmdb_finish(extra) != 0) return -1;
    for (i = 0; i < extra->ncmds; i++) {
        for (j = 0; j < extra->cmds[i].argc; j++) hc_cmdb_ref(b, extra->cmds[i].argv[j], extra->cmds[i].argvlen[j]);
        hc_cmdb_end(b);
        ids[i] = extra_scripts ? extra_scripts[i] : -1;
    }
    return 0;
}

/* The items' results from the groups' replies (consumed), in item order;
 * NULL when out of memory. */
static redisReply *merge_groups(redisReply **rep, int items, const int *group, const int *gcount)
{
    redisReply *out = calloc(1, sizeof *out);
    int i, *next;
    if (out == NULL || (out->element = calloc((size_t)items, sizeof *out->element)) == NULL) {
        free(out);
        return NULL;
    }
    next = calloc((size_t)items, sizeof *next); /* at most `items` groups */
    if (next == NULL) {
        free(out->element);
        free(out);
        return NULL;
    }
    out->type = REDIS_REPLY_ARRAY;
    out->elements = (size_t)items;
    for (i = 0; i < items; i++) {
        out->element[i] = rep[group[i]]->element[next[group[i]]];
        rep[group[i]]->element[next[group[i]]++] = NULL;
    }
    for (i = 0; i < items && gcount[i] > 0; i++) rep[i]->elements = 0; /* shells only */
    free(next);
    return out;
}

/* On a cluster, items of several slots: one EVALSHA per slot (keys of
 * its items, ARGV[1], their arguments), then extra, in one round trip;
 * r[0] gets the merged results (or a group's error reply). */
static int wr_exec_split(hc_wr *w, client *cl, hc_cmdb *extra, const int *extra_scripts, redisReply **r,
                         char *err)
{
    int items = w->items, nx = extra ? extra->ncmds : 0, ng = 0, i, g, rc = -1;
    int *group = NULL, *gslot = NULL, *gcount = NULL, *ids = NULL, *slot_group = NULL;
    redisReply **rep = NULL;
    hc_cmdb b;
    hc_cmdb_init(&b);
    if (w->oom || hc_cmdb_finish(&w->keys) != 0 || hc_cmdb_finish(&w->args) != 0) goto oom;
    group = malloc((size_t)items * sizeof *group);
    gslot = malloc((size_t)items * sizeof *gslot);
    gcount = calloc((size_t)items, sizeof *gcount);
    slot_group = malloc(HC_SLOTS * sizeof *slot_group);
    if (group == NULL || gslot == NULL || gcount == NULL || slot_group == NULL) goto oom;
    for (i = 0; i < HC_SLOTS; i++) slot_group[i] = -1;
    for (i = 0; i < items; i++) {
        int k = w->kstart[i], sl = hc_slot(w->keys.argv[k], w->keys.lens[k]);
        if (slot_group[sl] < 0) {
            slot_group[sl] = ng;
            gslot[ng++] = sl;
        }
        group[i] = slot_group[sl];
        gcount[group[i]]++;
    }
    ids = malloc(((size_t)ng + (size_t)nx) * sizeof *ids);
    rep = calloc((size_t)ng + (size_t)nx, sizeof *rep);
    if (ids == NULL || rep == NULL) goto oom;
    for (g = 0; g < ng; g++) {
        int nk = 0;
        for (i = 0; i < items; i++)
            if (group[i] == g) nk += (i + 1 < items ? w->kstart[i + 1] : w->keys.nargs) - w->kstart[i];
        hc_client_script(cl, &b, HC_SCRIPT_WRITE);
        hc_cmdb_int(&b, nk);
        for (i = 0; i < items; i++) {
            int k, end = i + 1 < items ? w->kstart[i + 1] : w->keys.nargs;
            if (group[i] != g) continue;
            for (k = w->kstart[i]; k < end; k++) hc_cmdb_ref(&b, w->keys.argv[k], w->keys.lens[k]);
        }
        hc_cmdb_ref(&b, w->args.argv[0], w->args.lens[0]); /* the wake-up list TTL */
        for (i = 0; i < items; i++) {
            int k, end = i + 1 < items ? w->astart[i + 1] : w->args.nargs;
            if (group[i] != g) continue;
            for (k = w->astart[i]; k < end; k++) hc_cmdb_ref(&b, w->args.argv[k], w->args.lens[k]);
        }
        hc_cmdb_end(&b);
        ids[g] = HC_SCRIPT_WRITE;
    }
    if (extra && add_extra(&b, extra, extra_scripts, ids + ng) != 0) goto oom;
    rc = hc_client_run(cl, &b, ids, rep, err);
    if (rc != 0) goto done;
    for (g = 0; g < ng; g++)
        if (rep[g]->type != REDIS_REPLY_ARRAY || rep[g]->elements != (size_t)gcount[g]) break;
    if (g < ng) { /* a group's error is the answer */
        r[0] = rep[g];
        rep[g] = NULL;
    } else if ((r[0] = merge_groups(rep, items, group, gcount)) == NULL) {
        for (i = 0; i < ng + nx; i++) freeReplyObject(rep[i]);
        goto oom;
    }
    for (g = 0; g < ng; g++)
        if (rep[g]) freeReplyObject(rep[g]);
    for (i = 0; i < nx; i++) r[1 + i] = rep[ng + i];
    rc = 0;
    goto done;
oom:
    snprintf(err, HC_ERRLEN, "out of memory");
    rc = -1;
done:
    hc_cmdb_free(&b);
    free(group);
    free(gslot);
    free(gcount);
    free(ids);
    free(rep);
    free(slot_group);
    return rc;
}

/* Runs the items (and the commands already in extra, after them, in the
 * same round trip: their replies follow in r). r[0]: the array of
 * per-item results, checked. Frees the items. */
static int wr_exec(hc_wr *w, client *cl, hc_cmdb *extra, const int *extra_scripts, redisReply **r, char *err)
{
    /* at most 7 extra commands: callers add one */
    int ids[8], i, rc, n = 1 + (extra ? extra->ncmds : 0), items = w->items;
    hc_cmdb b;
    if (cl->cluster && items > 1 && !cl->xio) { /* one EVALSHA per slot (no L1 on a cluster) */
        rc = wr_exec_split(w, cl, extra, extra_scripts, r, err);
        hc_wr_free(w);
    } else {
        hc_cmdb_init(&b);
        wr_command(w, cl, &b);
        ids[0] = HC_SCRIPT_WRITE;
        if (extra && add_extra(&b, extra, extra_scripts, ids + 1) != 0) b.oom = 1;
        rc = hc_client_run(cl, &b, ids, r, err);
        if (cl->l1 && !b.oom) /* this process's L1 drops what it wrote, whatever the outcome */
            for (i = 0; i < w->keys.nargs; i++) hc_l1_drop(cl->l1, w->keys.argv[i], w->keys.lens[i]);
        hc_cmdb_free(&b);
        hc_wr_free(w);
    }
    if (rc != 0) return -1;
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != (size_t)items) {
        snprintf(err, HC_ERRLEN, "%s", r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : "unexpected reply");
        for (i = 0; i < n; i++) freeReplyObject(r[i]);
        return -1;
    }
    return 0;
}

int hc_wr_run(hc_wr *w, client *cl, hc_cmdb *extra, redisReply **r, char *err)
{
    return wr_exec(w, cl, extra, NULL, r, err);
}

int hc_wr_run_with(hc_wr *w, client *cl, hc_cmdb *extra, const int *extra_scripts, redisReply **r, char *err)
{
    return wr_exec(w, cl, extra, extra_scripts, r, err);
}

/* Counts the visible entries among del results (1, or a header checked). */
static int count_deleted(client *cl, redisReply *r, long long *count, char *err)
{
    size_t i, nh = 0;
    const char **p;
    size_t *len;
    int *vis, rc = 0;
    *count = 0;
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_INTEGER) *count += r->element[i]->integer == 1;
        else if (r->element[i]->type == REDIS_REPLY_STRING) nh++;
    }
    if (nh == 0) return 0;
    p = (const char **)calloc(nh, sizeof *p + sizeof *len + sizeof *vis);
    if (p == NULL) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    len = (size_t *)(p + nh);
    vis = (int *)(len + nh);
    for (i = 0, nh = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            p[nh] = r->element[i]->str;
            len[nh++] = r->element[i]->len;
        }
    rc = hc_entries_visible(cl, (int)nh, p, len, vis, err);
    for (i = 0; rc == 0 && i < nh; i++) *count += vis[i];
    free(p);
    return rc;
}

/* ---- set, add --------------------------------------------------------------- */

/* The tokens of t into t->tok (pointing into *r, which the caller frees
 * after use), creating missing tags, their keys made to live px ms. */
static int tag_tokens(client *cl, hc_taglist *t, long long px, redisReply **r, char *err)
{
    char tokens[HC_TAGS_MAX * (HC_TOKEN_LEN + 1)];
    int id = HC_SCRIPT_TAGS, i, rc;
    hc_cmdb b;
    hc_cmdb_init(&b);
    hc_tags_script(&b, cl, t, 'p', px, tokens);
    rc = hc_client_run(cl, &b, &id, r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return -1;
    if ((*r)->type != REDIS_REPLY_ARRAY || (*r)->elements != (size_t)t->n) {
        snprintf(err, HC_ERRLEN, "%s", (*r)->type == REDIS_REPLY_ERROR ? (*r)->str : "unexpected reply");
        freeReplyObject(*r);
        return -1;
    }
    for (i = 0; i < t->n; i++) {
        redisReply *e = (*r)->element[i];
        /* nil: invalidated between our calls; the entry is then a miss */
        t->tok[i] = e->type == REDIS_REPLY_STRING ? e->str : "";
        t->tok_len[i] = e->type == REDIS_REPLY_STRING && e->len <= 255 ? e->len : 0;
    }
    return 0;
}

/* Runs a cond (nx / xx) item until the script needs no more knowledge
 * of a tagged entry it found: 1 stored, 0 not, -1 error. */
static int cond_write(client *cl, const char *v, size_t vn, int nx, const char *bytes, size_t bn, long long px,
                      char *err)
{
    char *known = NULL;
    size_t kn = 0;
    int vis = 0, attempt, result = -1;
    for (attempt = 0; attempt < 8 && result == -1; attempt++) {
        redisReply *r, *x;
        hc_wr w;
        hc_wr_init(&w);
        hc_wr_cond(&w, cl, v, vn, nx, bytes, bn, px, known, kn, vis);
        if (hc_wr_run(&w, cl, NULL, &r, err) != 0) break;
        x = r->element[0];
        if (x->type == REDIS_REPLY_INTEGER) {
            result = x->integer == 1;
        } else if (x->type == REDIS_REPLY_STRING) { /* a tagged entry: are its tags current? */
            const char *hp = x->str;
            size_t hn = x->len;
            char *copy = (char *)malloc(hn ? hn : 1);
            if (copy == NULL) {
                snprintf(err, HC_ERRLEN, "out of memory");
                freeReplyObject(r);
                break;
            }
            memcpy(copy, hp, hn);
            free(known);
            known = copy;
            kn = hn;
            if (hc_entries_visible(cl, 1, &hp, &hn, &vis, err) != 0) {
                freeReplyObject(r);
                break;
            }
        } else {
            snprintf(err, HC_ERRLEN, "%s", x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
            freeReplyObject(r);
            break;
        }
        freeReplyObject(r);
    }
    if (result == -1 && attempt == 8) snprintf(err, HC_ERRLEN, "contention");
    free(known);
    return result;
}

/* set / add: mode 0 plain, 1 NX, 2 XX; tags (may be NULL). */
static int do_set(lua_State *L, client *cl, int mode, hc_taglist *tags)
{
    char key[HC_FULLKEY_MAX], err[HC_CODEC_ERRLEN], ioerr[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key);
    long long ms = hc_ttl_arg(L, cl, 4);
    hc_buf val, env;
    size_t out;
    double t0;
    int rc, n;
    if (lua_isnil(L, 3)) luaL_argerror(L, 3, "value must not be nil (cache hicache.null for a null)");
    if (tags && cl->codec.ser == HC_SER_RAW)
        luaL_argerror(L, 5, "tags need the msgpack or json serializer (the raw one cannot carry them)");
    hc_buf_init(&val, cl->codec.max_bytes);
    if (hc_encode(L, 3, &cl->codec, &val, err, sizeof err) != 0) {
        hc_buf_free(&val);
        return luaL_argerror(L, 3, err);
    }
    if (hc_seal_value(cl, key, kn, &val, err, sizeof err) != 0) {
        hc_buf_free(&val);
        return luaL_argerror(L, 2, err);
    }
    /* From here to the frees nothing may raise. */
    t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    hc_buf_init(&env, 0);
    rc = 0;
    if (tags) {
        redisReply *tr;
        rc = tag_tokens(cl, tags, ms, &tr, ioerr);
        if (rc == 0) {
            if (hc_entry_wrap(val.data, val.len, 0, 0, 0, tags, &env) != 0) {
                snprintf(ioerr, sizeof ioerr, "out of memory");
                rc = -1;
            }
            freeReplyObject(tr);
        }
        hc_buf_free(&val);
        val = env;
    }
    if (rc == 0 && mode == 0) {
        redisReply *r;
        hc_wr w;
        hc_wr_init(&w);
        hc_wr_set(&w, cl, key, kn, val.data, val.len, ms);
        rc = hc_wr_run(&w, cl, NULL, &r, ioerr);
        if (rc == 0) freeReplyObject(r);
        else rc = -1;
    } else if (rc == 0) {
        rc = cond_write(cl, key, kn, mode == 1, val.data, val.len, ms, ioerr);
        rc = rc == -1 ? -1 : rc == 1 ? 0 : 1; /* 0 stored, 1 condition not met */
    }
    out = val.len;
    hc_buf_free(&val);
    if (rc == -1) n = hc_fail(L, ioerr);
    else {
        lua_pushboolean(L, rc == 0);
        n = 1;
    }
    if (!HC_OBSERVED(cl)) return n;
    return hc_observe(L, cl, HC_OP_SET, rc == 0 ? HC_EV_SET : 0, key, kn, 0, out, t0, n);
}

/* cache:set(key, value, ttl, opts) -> true | false (nx / xx not met) | nil, err */
static int cache_set(lua_State *L)
{
    client *cl = hc_check_client(L);
    hc_taglist tags;
    int mode = 0, has_tags;
    static const char *const known[] = {"nx", "xx", "tags", NULL};
    if (lua_gettop(L) < 3) luaL_argerror(L, 3, "value expected");
    lua_settop(L, 5);
    has_tags = hc_opts_tags(L, 5, 5, &tags, known);
    if (!lua_isnil(L, 5)) {
        int nx, xx;
        lua_getfield(L, 5, "nx");
        nx = lua_toboolean(L, -1);
        lua_getfield(L, 5, "xx");
        xx = lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (nx && xx) return luaL_argerror(L, 5, "nx and xx are exclusive");
        mode = nx ? 1 : xx ? 2 : 0;
    }
    return do_set(L, cl, mode, has_tags ? &tags : NULL);
}

/* cache:add(key, value, ttl, opts) -> true (stored) | false (an entry a
 * read would see exists) | nil, err */
static int cache_add(lua_State *L)
{
    client *cl = hc_check_client(L);
    hc_taglist tags;
    int has_tags;
    if (lua_gettop(L) < 3) luaL_argerror(L, 3, "value expected");
    lua_settop(L, 5);
    has_tags = hc_opts_tags(L, 5, 5, &tags, hc_opts_tags_only);
    return do_set(L, cl, 1, has_tags ? &tags : NULL);
}

/* ---- set_many ---------------------------------------------------------------- */

/* cache:set_many(map, ttl, opts) -> {failed keys} ({} when all stored) |
 * nil, err. opts: nil or a table with no option (none is known yet; tags
 * are per entry: use set). */
static int cache_set_many(lua_State *L)
{
    static const char *const known[] = {NULL};
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_CODEC_ERRLEN], ioerr[HC_ERRLEN];
    long long ms;
    int n = 0, i, rc, nfailed = 0, *failed;
    size_t out = 0;
    hc_buf *vals;
    redisReply *r = NULL;
    double t0;
    hc_wr w;

    luaL_checktype(L, 2, LUA_TTABLE);
    ms = hc_ttl_arg(L, cl, 3);
    hc_opts_check(L, 4, 4, known);
    lua_settop(L, 3);
    lua_newtable(L); /* 4: the keys, in a list, checked */
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        const char *why = NULL;
        if (hc_key_compose(L, cl, cl->version, lua_gettop(L) - 1, key, &why) == 0) luaL_argerror(L, 2, why);
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 4, ++n);
    }
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    vals = (hc_buf *)lua_newuserdata(L, (size_t)n * (sizeof *vals + sizeof *failed)); /* 5 */
    failed = (int *)(vals + n);
    for (i = 0; i < n; i++) hc_buf_init(&vals[i], cl->codec.max_bytes);
    /* Encode every value first: nothing is stored when one cannot be. */
    for (i = 0; i < n; i++) {
        const char *why;
        size_t kn;
        lua_rawgeti(L, 4, i + 1);
        kn = hc_key_compose(L, cl, cl->version, lua_gettop(L), key, &why); /* checked above */
        lua_rawget(L, 2);
        if (hc_encode(L, lua_gettop(L), &cl->codec, &vals[i], err, sizeof err) != 0 ||
            hc_seal_value(cl, key, kn, &vals[i], err, sizeof err) != 0) {
            int j;
            for (j = 0; j <= i; j++) hc_buf_free(&vals[j]);
            /* the buffers are freed: raising is safe now */
            lua_rawgeti(L, 4, i + 1);
            return luaL_argerror(L, 2, lua_pushfstring(L, "key '%s': %s", lua_tostring(L, -1), err));
        }
        lua_pop(L, 1);
    }
    /* No Lua allocation from here to the frees. */
    hc_wr_init(&w);
    for (i = 0; i < n; i++) {
        size_t kn;
        const char *why;
        lua_rawgeti(L, 4, i + 1); /* a value already in the list: no allocation */
        kn = hc_key_compose(L, cl, cl->version, lua_gettop(L), key, &why);
        lua_pop(L, 1);
        hc_wr_set(&w, cl, key, kn, vals[i].data, vals[i].len, ms);
        out += vals[i].len;
    }
    t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    rc = hc_wr_run(&w, cl, NULL, &r, ioerr);
    for (i = 0; i < n; i++) hc_buf_free(&vals[i]);
    if (rc != 0) {
        n = hc_fail(L, ioerr);
        return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_SET_MANY, 0, NULL, 0, 0, 0, t0, n) : n;
    }
    for (i = 0; i < n; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_INTEGER || e->integer != 1) failed[nfailed++] = i + 1;
    }
    freeReplyObject(r);
    if (HC_OBSERVED(cl)) { /* the replies are freed: the hook may raise */
        if (cl->stats) hc_stats_count(cl->stats, HC_EV_SET, (unsigned long long)(n - nfailed), NULL, 0);
        hc_client_event(L, cl, HC_OP_SET_MANY, 0, NULL, 0, 0, out, t0, NULL);
    }
    lua_createtable(L, nfailed, 0);
    for (i = 0; i < nfailed; i++) {
        lua_rawgeti(L, 4, failed[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- incr, decr --------------------------------------------------------------- */

static int do_incr(lua_State *L, int sign)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN], msg[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key);
    long long d = 1;
    redisReply *r, *x;
    double t0;
    int n;
    hc_wr w;
    if (!lua_isnoneornil(L, 3)) {
        if (hc_toint64(L, 3, &d) != 0) return luaL_argerror(L, 3, HC_INT_ARG("delta"));
    }
    if (hc_seal_must(cl, key, kn))
        return luaL_argerror(L, 2, "the key's values are encrypted: Redis cannot add to an encrypted counter");
    if (sign < 0) {
        if (d == -9223372036854775807LL - 1) return hc_fail(L, "overflow");
        d = -d;
    }
    t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    hc_wr_init(&w);
    hc_wr_incr(&w, cl, key, kn, (long long)d);
    if (hc_wr_run(&w, cl, NULL, &r, err) != 0) {
        n = hc_fail(L, err);
    } else {
        long long v;
        x = r->element[0];
        if (x->type == REDIS_REPLY_STRING && hc_parse_ll(x->str, x->len, &v) == 0) {
            freeReplyObject(r); /* exact over int64: the script returns it as a string */
            hc_push_int64(L, v);
            n = 1;
        } else {
            int missing = x->type == REDIS_REPLY_NIL;
            snprintf(msg, sizeof msg, "%s", x->type == REDIS_REPLY_ERROR ? x->str : "");
            freeReplyObject(r);
            n = hc_fail(L, missing ? "not found" : strstr(msg, "overflow") ? "overflow"
                           : strstr(msg, "not an integer") ? "not an integer" : msg[0] ? msg : "unexpected reply");
        }
    }
    return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_INCR, 0, key, kn, 0, 0, t0, n) : n;
}

/* cache:incr(key, n) / cache:decr(key, n) -> new value | nil, "not found" |
 * nil, "not an integer" | nil, "overflow" | nil, err */
static int cache_incr(lua_State *L) { return do_incr(L, 1); }
static int cache_decr(lua_State *L) { return do_incr(L, -1); }

/* ---- delete, invalidate ----------------------------------------------------------- */

/* del items for the keys at idx (one key, or a list when `list`), run;
 * *count: how many visible entries were deleted. Raises on a bad key
 * (before any I/O). */
static int delete_keys(lua_State *L, client *cl, int idx, int list, long long *count, char *err,
                       const char **one, size_t *one_n)
{
    char key[HC_FULLKEY_MAX];
    redisReply *r;
    int i, n = 1, rc;
    hc_wr w;
    if (list) {
        luaL_checktype(L, idx, LUA_TTABLE);
        hc_list_check(L, idx, idx, "keys");
        n = (int)lua_rawlen(L, idx);
        for (i = 1; i <= n; i++) { /* check every key before building anything */
            const char *why = NULL;
            lua_rawgeti(L, idx, i);
            if (hc_key_compose(L, cl, cl->version, lua_gettop(L), key, &why) == 0)
                luaL_argerror(L, idx, lua_pushfstring(L, "keys[%d]: %s", i, why));
            lua_pop(L, 1);
        }
    } else {
        const char *why = NULL;
        size_t kn = hc_key_compose(L, cl, cl->version, idx, key, &why);
        if (kn == 0) luaL_argerror(L, idx, why);
        if (one) { /* for the event: pushed before C memory is allocated */
            lua_pushlstring(L, key, kn);
            *one = lua_tolstring(L, -1, one_n);
        }
    }
    *count = 0;
    if (n == 0) return 0;
    hc_wr_init(&w);
    for (i = 1; i <= n; i++) {
        const char *why;
        size_t kn;
        if (list) {
            lua_rawgeti(L, idx, i);
            kn = hc_key_compose(L, cl, cl->version, lua_gettop(L), key, &why);
            lua_pop(L, 1);
        } else {
            kn = hc_key_compose(L, cl, cl->version, idx, key, &why);
        }
        hc_wr_del(&w, cl, key, kn);
    }
    if (hc_wr_run(&w, cl, NULL, &r, err) != 0) return -1;
    rc = count_deleted(cl, r, count, err);
    freeReplyObject(r);
    return rc;
}

/* delete, delete_many and invalidate: del items for one key or a list;
 * pushes how many visible entries went (as `result`: 'b' a boolean, 'n'
 * a count, 't' true). */
static int delete_op(lua_State *L, int list, char result, int op, unsigned ev)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    const char *full = NULL;
    size_t fn = 0;
    long long count;
    double t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    int n = 1;
    lua_settop(L, 2);
    if (delete_keys(L, cl, 2, list, &count, err, list ? NULL : &full, &fn) != 0) n = hc_fail(L, err);
    else if (result == 'n') lua_pushinteger(L, (lua_Integer)count);
    else lua_pushboolean(L, result == 't' || count > 0);
    return HC_OBSERVED(cl) ? hc_observe(L, cl, op, ev, full, fn, 0, 0, t0, n) : n;
}

/* cache:delete(key) -> true (a read would have seen it) | false | nil, err */
static int cache_delete(lua_State *L) { return delete_op(L, 0, 'b', HC_OP_DELETE, HC_EV_DELETE); }

/* cache:delete_many(keys) -> number of entries deleted | nil, err */
static int cache_delete_many(lua_State *L) { return delete_op(L, 1, 'n', HC_OP_DELETE, HC_EV_DELETE); }

/* cache:invalidate(key_or_list) -> true | nil, err */
static int cache_invalidate(lua_State *L)
{
    return delete_op(L, lua_type(L, 2) == LUA_TTABLE, 't', HC_OP_INVALIDATE, HC_EV_INVALIDATE);
}

/* Checks the tag (or list of tags) at idx; returns how many. */
static int check_tag_args(lua_State *L, int idx)
{
    int i, n;
    if (lua_type(L, idx) == LUA_TSTRING) n = 1;
    else if (lua_type(L, idx) == LUA_TTABLE) {
        hc_list_check(L, idx, idx, "tags");
        n = (int)lua_rawlen(L, idx);
    } else return luaL_argerror(L, idx, "a tag or a list of tags expected");
    for (i = 1; i <= n; i++) {
        size_t tn;
        if (lua_type(L, idx) == LUA_TTABLE) lua_rawgeti(L, idx, i);
        else lua_pushvalue(L, idx);
        if (lua_type(L, -1) != LUA_TSTRING || (lua_tolstring(L, -1, &tn), tn < 1 || tn > HC_TAG_MAX))
            luaL_argerror(L, idx, "a tag must be a string of 1 to 1024 bytes");
        lua_pop(L, 1);
    }
    return n;
}

static void add_tags(lua_State *L, hc_wr *w, client *cl, int idx, int n)
{
    int i;
    for (i = 1; i <= n; i++) {
        size_t tn;
        const char *t;
        if (lua_type(L, idx) == LUA_TTABLE) lua_rawgeti(L, idx, i);
        else lua_pushvalue(L, idx);
        t = lua_tolstring(L, -1, &tn);
        hc_wr_tag(w, cl, t, tn); /* copied: popping is safe */
        lua_pop(L, 1);
    }
}

/* cache:invalidate_tag(tag_or_list) -> true | nil, err: O(1) per tag */
static int cache_invalidate_tag(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    redisReply *r;
    double t0;
    int n;
    hc_wr w;
    lua_settop(L, 2);
    n = check_tag_args(L, 2);
    t0 = HC_OBSERVED(cl) ? hc_client_t0(cl) : 0;
    if (n == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    hc_wr_init(&w);
    add_tags(L, &w, cl, 2, n);
    if (hc_wr_run(&w, cl, NULL, &r, err) != 0) n = hc_fail(L, err);
    else {
        freeReplyObject(r);
        lua_pushboolean(L, 1);
        n = 1;
    }
    return HC_OBSERVED(cl) ? hc_observe(L, cl, HC_OP_INVALIDATE, HC_EV_INVALIDATE, NULL, 0, 0, 0, t0, n) : n;
}

/* cache:_invalidate_full(full_keys, tags) -> number of visible entries
 * deleted | nil, err: del items for keys already composed (batch:commit,
 * clear, delete_pattern) and tag items, in one round trip. */
static int cache_invalidate_full(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    redisReply *r;
    long long count;
    int i, n, nt = 0, rc;
    hc_wr w;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 3);
    hc_list_check(L, 2, 2, "full keys");
    n = (int)lua_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        size_t kn;
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) != LUA_TSTRING || (lua_tolstring(L, -1, &kn), kn > HC_FULLKEY_MAX))
            luaL_argerror(L, 2, "full keys expected");
        lua_pop(L, 1);
    }
    if (!lua_isnil(L, 3)) nt = check_tag_args(L, 3);
    if (n + nt == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    hc_wr_init(&w);
    for (i = 1; i <= n; i++) {
        size_t kn;
        const char *k;
        lua_rawgeti(L, 2, i);
        k = lua_tolstring(L, -1, &kn);
        hc_wr_del(&w, cl, k, kn);
        lua_pop(L, 1);
    }
    if (nt) add_tags(L, &w, cl, 3, nt);
    if (hc_wr_run(&w, cl, NULL, &r, err) != 0) return hc_fail(L, err);
    r->elements -= (size_t)nt; /* count the del items only */
    rc = count_deleted(cl, r, &count, err);
    r->elements += (size_t)nt;
    freeReplyObject(r);
    if (rc != 0) return hc_fail(L, err);
    lua_pushinteger(L, (lua_Integer)count);
    return 1;
}

/* On a cluster the epoch is one key per slot (hc_epoch_slot_name): every
 * one that exists is moved on (SET ... XX GET: a slot without one has no
 * lease in flight that could still store), all in one round trip per
 * node, then the waiters of each old epoch are woken. */
static int bump_slot_epochs(lua_State *L, client *cl, const char *tok)
{
    char name[HC_NAME_MAX], err[HC_ERRLEN];
    redisReply **r = (redisReply **)lua_newuserdata(L, HC_SLOTS * sizeof *r); /* GC-owned */
    hc_cmdb b;
    int s, rc, nw = 0;
    hc_cmdb_init(&b);
    for (s = 0; s < HC_SLOTS; s++) {
        hc_cmdb_str(&b, "SET");
        hc_cmdb_add(&b, name, hc_epoch_slot_name(cl, s, name));
        hc_cmdb_add(&b, tok, HC_TOKEN_LEN);
        hc_cmdb_str(&b, "PX");
        hc_cmdb_int(&b, HC_EPOCH_TTL_MS);
        hc_cmdb_str(&b, "XX");
        hc_cmdb_str(&b, "GET");
        hc_cmdb_end(&b);
    }
    rc = hc_client_run(cl, &b, NULL, r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    hc_cmdb_init(&b);
    for (s = 0; s < HC_SLOTS; s++) {
        if (r[s]->type == REDIS_REPLY_STRING) { /* waiters of the old epoch: wake one, it passes it on */
            size_t n = hc_epoch_slot_wake_name(cl, s, r[s]->str, r[s]->len, name);
            hc_cmdb_str(&b, "RPUSH");
            hc_cmdb_add(&b, name, n);
            hc_cmdb_str(&b, "1");
            hc_cmdb_end(&b);
            hc_cmdb_str(&b, "PEXPIRE");
            hc_cmdb_add(&b, name, n);
            hc_cmdb_int(&b, HC_WAKE_TTL_MS);
            hc_cmdb_end(&b);
            nw += 2;
        } else if (r[s]->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, HC_ERRLEN, "%s", r[s]->str);
            rc = -1;
        }
        freeReplyObject(r[s]);
        r[s] = NULL;
    }
    if (rc == 0 && nw > 0) {
        redisReply **x = (redisReply **)lua_newuserdata(L, (size_t)nw * sizeof *x);
        int i;
        rc = hc_client_run(cl, &b, NULL, x, err);
        for (i = 0; rc == 0 && i < nw; i++) freeReplyObject(x[i]);
    }
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* cache:_bump_epoch() -> true | nil, err: moves the namespace epoch on
 * (every lease of the namespace is revoked) and wakes the waiters of the
 * old epoch. */
static int cache_bump_epoch(lua_State *L)
{
    client *cl = hc_check_client(L);
    char name[HC_NAME_MAX], err[HC_ERRLEN], tok[HC_TOKEN_LEN + 1];
    redisReply *r;
    hc_cmdb b;
    int rc;
    hc_client_tokens(cl, tok, 1);
    if (cl->cluster) return bump_slot_epochs(L, cl, tok);
    hc_cmdb_init(&b);
    hc_cmdb_str(&b, "SET");
    hc_cmdb_add(&b, name, hc_epoch_name(cl, "", 0, name));
    hc_cmdb_add(&b, tok, HC_TOKEN_LEN);
    hc_cmdb_str(&b, "PX");
    hc_cmdb_int(&b, HC_EPOCH_TTL_MS);
    hc_cmdb_str(&b, "GET");
    hc_cmdb_end(&b);
    rc = hc_client_run(cl, &b, NULL, &r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    if (r->type == REDIS_REPLY_STRING) { /* waiters of the old epoch: wake one, it passes it on */
        redisReply *x[2];
        hc_cmdb_init(&b);
        hc_cmdb_str(&b, "RPUSH");
        hc_cmdb_add(&b, name, hc_epoch_wake_name(cl, "", 0, r->str, r->len, name));
        hc_cmdb_str(&b, "1");
        hc_cmdb_end(&b);
        hc_cmdb_str(&b, "PEXPIRE");
        hc_cmdb_add(&b, name, hc_epoch_wake_name(cl, "", 0, r->str, r->len, name));
        hc_cmdb_int(&b, HC_WAKE_TTL_MS);
        hc_cmdb_end(&b);
        freeReplyObject(r);
        rc = hc_client_run(cl, &b, NULL, x, err);
        hc_cmdb_free(&b);
        if (rc != 0) return hc_fail(L, err);
        freeReplyObject(x[0]);
        freeReplyObject(x[1]);
    } else if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
    } else {
        return hc_unexpected(L, r);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- incr_version ------------------------------------------------------------- */

/* An encrypted value moving from one key to another: its associated data
 * is the key, so it is opened and sealed again for the new key (inside
 * its envelope, if any). 0 with out set (out->data NULL: p is not sealed,
 * moved as it is); 1 with err: it does not open (a get would miss it);
 * -1 with err. Never raises. */
static int reseal(client *cl, const char *p, size_t n, const char *from, size_t fn, const char *to, size_t tn,
                  hc_buf *out, char *err)
{
    hc_entry e;
    const char *v = p;
    size_t vn = n, pn;
    char *plain, why[HC_SEAL_ERRLEN];
    hc_buf sealed;
    int rc;
    err[0] = '\0';
    if (n >= 6 && (unsigned char)p[0] == 0xc9 && hc_entry_parse(p, n, 1, &e, NULL) == HC_ENTRY_OK && e.envelope) {
        v = e.value;
        vn = e.value_len;
    } else {
        e.envelope = 0;
    }
    if (!hc_sealed(v, vn)) return 0;
    if (hc_open(cl->ring, from, fn, v, vn, &plain, &pn, why, sizeof why) != 0) {
        snprintf(err, HC_ERRLEN, "%s", why);
        return 1;
    }
    hc_buf_init(&sealed, 0);
    if (hc_buf_append(&sealed, plain, pn) != 0) rc = -1;
    else rc = hc_seal_always(cl, to, tn, &sealed, err, HC_ERRLEN); /* sealed it was, sealed it stays */
    sodium_memzero(plain, pn);
    free(plain);
    if (rc == 0 && !e.envelope) {
        *out = sealed;
        return 0;
    }
    if (rc == 0) rc = hc_entry_wrap(sealed.data, sealed.len, e.has_soft, e.soft_ms, e.delta_ms, &e.tags, out);
    hc_buf_free(&sealed);
    if (rc != 0 && err[0] == '\0') snprintf(err, HC_ERRLEN, "out of memory");
    return rc == 0 ? 0 : -1;
}

/* On a cluster, when the two versions of the key live in different slots
 * (RENAME cannot cross slots): GET + PTTL of the old key, then one WRITE
 * of two items, each in its own slot -- set the new key (value and TTL),
 * del the old one -- both revoking their leases. Not atomic: a write of
 * the old key between the two round trips is lost (as with Django's own
 * get, set, delete). Nothing to move: both leases are still revoked
 * (del of the old key, incr by 0 of the new one: stores nothing). */
static int incr_version_split(lua_State *L, client *cl, const char *from, size_t fn, const char *to, size_t tn,
                              long long version)
{
    char err[HC_ERRLEN];
    redisReply *g[2], *r;
    hc_cmdb b;
    hc_wr w;
    hc_buf moved;
    char sealerr[HC_ERRLEN];
    int rc, found = 0;
    hc_cmdb_init(&b);
    hc_cmdb_str(&b, "GET");
    hc_cmdb_add(&b, from, fn);
    hc_cmdb_end(&b);
    hc_cmdb_str(&b, "PTTL");
    hc_cmdb_add(&b, from, fn);
    hc_cmdb_end(&b);
    rc = hc_client_run(cl, &b, NULL, g, err);
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    if (g[0]->type == REDIS_REPLY_ERROR || g[1]->type == REDIS_REPLY_ERROR) { /* TRYAGAIN, ...: nothing moved */
        snprintf(err, HC_ERRLEN, "%s", g[g[0]->type == REDIS_REPLY_ERROR ? 0 : 1]->str);
        freeReplyObject(g[0]);
        freeReplyObject(g[1]);
        return hc_fail(L, err);
    }
    hc_wr_init(&w);
    hc_buf_init(&moved, 0);
    sealerr[0] = '\0';
    if (g[0]->type == REDIS_REPLY_STRING) {
        const char *hp = g[0]->str;
        size_t hn = g[0]->len;
        long long px = g[1]->type == REDIS_REPLY_INTEGER && g[1]->integer > 0 ? g[1]->integer : 0;
        if (hc_entries_visible(cl, 1, &hp, &hn, &found, err) != 0 ||
            (rc = reseal(cl, g[0]->str, g[0]->len, from, fn, to, tn, &moved, err)) == -1) {
            hc_wr_free(&w);
            hc_buf_free(&moved);
            freeReplyObject(g[0]);
            freeReplyObject(g[1]);
            return hc_fail(L, err);
        }
        if (rc == 1) { /* does not open: a get misses it, so nothing is found (the old one goes) */
            snprintf(sealerr, sizeof sealerr, "%s", err);
            found = 0;
            hc_wr_incr(&w, cl, to, tn, 0);
        } else if (moved.data) {
            hc_wr_set(&w, cl, to, tn, moved.data, moved.len, px);
        } else {
            hc_wr_set(&w, cl, to, tn, g[0]->str, g[0]->len, px);
        }
    } else {
        hc_wr_incr(&w, cl, to, tn, 0);
    }
    hc_wr_del(&w, cl, from, fn);
    rc = hc_wr_run(&w, cl, NULL, &r, err); /* the bytes of g[0] live until it has run */
    hc_buf_free(&moved);
    freeReplyObject(g[0]);
    freeReplyObject(g[1]);
    if (rc != 0) return hc_fail(L, err);
    freeReplyObject(r);
    if (sealerr[0]) hc_seal_event(L, cl, from, fn, sealerr); /* nothing held: the hook may raise */
    if (!found) return hc_fail(L, "not found");
    lua_pushinteger(L, (lua_Integer)version);
    return 1;
}

/* cache:incr_version(key, delta) -> new version | nil, "not found" | nil, err
 * Moves the entry (value and TTL) from this cache's version to
 * version + delta, as Django's incr_version does (RENAME), and revokes
 * the leases of both keys, also when there is nothing to move. */
static int incr_version_raw(lua_State *L)
{
    client *cl = hc_check_client(L);
    char from[HC_FULLKEY_MAX], to[HC_FULLKEY_MAX], err[HC_ERRLEN];
    const char *why = NULL;
    size_t fn = hc_key_arg(L, cl, 2, from), tn;
    lua_Integer delta = 1;
    redisReply *r, *x;
    int found = 0;
    hc_wr w;
    if (!lua_isnoneornil(L, 3)) {
        if (!hc_isinteger(L, 3)) return luaL_argerror(L, 3, "delta must be an integer");
        delta = lua_tointeger(L, 3);
    }
    if (delta > 1000000000 || delta < -1000000000) return luaL_argerror(L, 3, "delta out of range");
    tn = hc_key_compose(L, cl, cl->version + (long long)delta, 2, to, &why);
    if (cl->ring == NULL && (hc_seal_must(cl, from, fn) || hc_seal_must(cl, to, tn)))
        return luaL_argerror(L, 2, "the key is in an encrypted family, and this cache has no encryption keys");
    /* an encrypted value is sealed for its key: with keys, whatever the
     * family (a value another cache sealed), it is read, opened and sealed
     * again for the new key instead of renamed */
    if ((cl->cluster && hc_slot(from, fn) != hc_slot(to, tn)) || cl->ring)
        return incr_version_split(L, cl, from, fn, to, tn, cl->version + (long long)delta);
    hc_wr_init(&w);
    hc_wr_rename(&w, cl, from, fn, to, tn);
    if (hc_wr_run(&w, cl, NULL, &r, err) != 0) return hc_fail(L, err);
    x = r->element[0];
    if (x->type == REDIS_REPLY_STRING) { /* a tagged entry: found if a read would have seen it */
        const char *hp = x->str;
        size_t hn = x->len;
        if (hc_entries_visible(cl, 1, &hp, &hn, &found, err) != 0) {
            freeReplyObject(r);
            return hc_fail(L, err);
        }
    } else {
        found = x->type == REDIS_REPLY_INTEGER && x->integer == 1;
    }
    freeReplyObject(r);
    if (!found) return hc_fail(L, "not found");
    lua_pushinteger(L, (lua_Integer)(cl->version + (long long)delta));
    return 1;
}

static int cache_incr_version(lua_State *L)
{
    return hc_call_observed(L, incr_version_raw, HC_OP_INVALIDATE, HC_EV_INVALIDATE);
}

static const luaL_Reg write_methods[] = {
    {"set", cache_set},
    {"add", cache_add},
    {"set_many", cache_set_many},
    {"incr", cache_incr},
    {"decr", cache_decr},
    {"delete", cache_delete},
    {"delete_many", cache_delete_many},
    {"invalidate", cache_invalidate},
    {"invalidate_tag", cache_invalidate_tag},
    {"incr_version", cache_incr_version},
    {"_invalidate_full", cache_invalidate_full},
    {"_bump_epoch", cache_bump_epoch},
    {NULL, NULL}};

void hc_write_register(lua_State *L)
{
    luaL_setfuncs(L, write_methods, 0);
}
