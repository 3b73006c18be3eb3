/*
 * hc_client.c -- what every operation of a cache uses to reach Redis and
 * to report itself: client_exec, the one place a command meets a
 * transport (the router's pool with the retry rule, or the running
 * operation's xio), scripts loaded and reloaded after NOSCRIPT, random
 * tokens, stats and on_event. The method files (hc_read.c, hc_write.c,
 * hc_lease.c, ...) call these; this file calls none of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "hc_client.h"
#include "hc_cluster.h"
#include "hc_node.h"
#include "hc_smaster.h"
#include "hc_entry.h"
#include "hc_l1.h"
#include "hc_pool.h"
#include "hc_proto.h"
#include "hc_time.h"

int hc_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* ---- running commands: one node, a Sentinel master, or a cluster ---------- */

/* A Sentinel master may have moved the pool: the client's reference follows. */
static void follow_master(client *cl)
{
    hc_pool *now = hc_smaster_pool(cl->smaster);
    if (now == cl->pool) return;
    hc_pool_ref(now);
    hc_pool_release(cl->pool);
    cl->pool = now;
}

/* The whole life of a request: the router's pools (hc_node.h: borrow,
 * run, settle, return, the retry rule), or the running operation's xio.
 * timeout > 0: the command timeout for this call. */
static int client_exec(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err, double timeout)
{
    char *req;
    long len;
    int rc;
    if (cl->pool == NULL) {
        snprintf(err, HC_ERRLEN, "closed");
        return -1;
    }
    if (cl->xio) return hc_xio_exec(cl->xio, n, cmds, timeout, replies, err, HC_ERRLEN);
    if (cl->cluster) return hc_cluster_exec(cl->cluster, n, cmds, cl->pin1 - 1, replies, err, timeout);
    len = hc_proto_format(n, cmds, &req);
    if (len < 0) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    if (cl->smaster) {
        rc = hc_smaster_exec(cl->smaster, req, (size_t)len, n, cmds, replies, err, timeout);
        follow_master(cl);
    } else {
        rc = hc_node_exec(cl->pool, req, (size_t)len, n, cmds, replies, err, timeout);
    }
    hc_proto_free(req);
    return rc;
}

hc_pool *hc_client_pool_for(client *cl, const char *key, size_t kn, char *err)
{
    if (cl->pool == NULL) {
        snprintf(err, HC_ERRLEN, "closed");
        return NULL;
    }
    if (cl->cluster) return hc_cluster_pool_for(cl->cluster, key, kn, err);
    if (cl->smaster) {
        hc_smaster_check(cl->smaster);
        follow_master(cl);
    }
    return cl->pool;
}

int hc_client_exec(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err)
{
    return client_exec(cl, n, cmds, replies, err, 0);
}

int hc_client_exec_timeout(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err,
                           double timeout)
{
    return client_exec(cl, n, cmds, replies, err, timeout);
}

/* SCRIPT LOAD of script id, unless its SHA is known. */
static int load_script(client *cl, int id, char *err)
{
    const char *argv[3] = {"SCRIPT", "LOAD", hc_script_source(id)};
    size_t lens[3] = {6, 4, strlen(hc_script_source(id))};
    redisReply *r;
    hc_cmd c;
    if (cl->sha[id][0] != '\0') return 0;
    c.argc = 3;
    c.argv = argv;
    c.argvlen = lens;
    if (hc_client_exec(cl, 1, &c, &r, err) != 0) return -1;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        snprintf(err, HC_ERRLEN, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "script could not be loaded");
        freeReplyObject(r);
        return -1;
    }
    memcpy(cl->sha[id], r->str, 40);
    cl->sha[id][40] = '\0';
    freeReplyObject(r);
    return 0;
}

static int is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Runs n commands; script[i] as in hc_client_run. */
static int run_cmds(client *cl, int n, const hc_cmd *cmds, const int *script, redisReply **replies, char *err)
{
    int i;
    for (i = 0; script && i < n; i++)
        if (script[i] >= 0 && load_script(cl, script[i], err) != 0) return -1;
    if (hc_client_exec(cl, n, cmds, replies, err) != 0) return -1;
    for (i = 0; script && i < n; i++) {
        if (script[i] < 0 || !is_noscript(replies[i])) continue;
        /* flushed, or a restart or failover: load it again and rerun it */
        freeReplyObject(replies[i]);
        replies[i] = NULL;
        cl->sha[script[i]][0] = '\0';
        if (load_script(cl, script[i], err) != 0 || hc_client_exec(cl, 1, &cmds[i], &replies[i], err) != 0) {
            int j;
            for (j = 0; j < n; j++)
                if (replies[j]) freeReplyObject(replies[j]);
            return -1;
        }
    }
    return 0;
}

/* The number of keys of an EVALSHA (argv[2]). */
static int numkeys(const hc_cmd *c)
{
    /* arguments are not NUL-terminated (hc_cmdb packs them) */
    char buf[16];
    size_t n;
    int k;
    if (c->argc < 3 || (n = c->argvlen[2]) == 0 || n >= sizeof buf) return 0;
    memcpy(buf, c->argv[2], n);
    buf[n] = '\0';
    k = atoi(buf);
    return k > 0 && 5 + k <= c->argc ? k : 0; /* EVALSHA sha k keys... mode ms [tokens] */
}

/* On a cluster, a TAGS script over several tag keys (each in its own
 * slot) runs as one TAGS per key, in the same round trip; the results
 * are merged back into one array per TAGS command (the first error reply
 * of its parts, if any). The script treats its keys one by one (KEYS[i],
 * ARGV[2 + i]), so the parts do what the whole would. */
static int run_tags_split(client *cl, int n, const hc_cmd *cmds, const int *script, redisReply **replies,
                          char *err)
{
    int i, j, m = 0, rc = -1;
    hc_cmd *x;
    int *xs, *from;
    const char **argv;
    size_t *lens, na = 0;
    redisReply **xr;
    for (i = 0; i < n; i++) m += script[i] == HC_SCRIPT_TAGS && numkeys(&cmds[i]) > 1 ? numkeys(&cmds[i]) : 1;
    for (i = 0; i < n; i++) na += script[i] == HC_SCRIPT_TAGS ? (size_t)numkeys(&cmds[i]) * 7 : 0;
    x = malloc((size_t)m * sizeof *x);
    xs = malloc((size_t)m * sizeof *xs);
    from = malloc((size_t)m * sizeof *from);
    xr = calloc((size_t)m, sizeof *xr);
    argv = malloc((na + 1) * sizeof *argv);
    lens = malloc((na + 1) * sizeof *lens);
    if (x == NULL || xs == NULL || from == NULL || xr == NULL || argv == NULL || lens == NULL) {
        snprintf(err, HC_ERRLEN, "out of memory");
        goto done;
    }
    for (i = 0, m = 0, na = 0; i < n; i++) {
        const hc_cmd *c = &cmds[i];
        int k = numkeys(c);
        if (script[i] != HC_SCRIPT_TAGS || k <= 1) {
            x[m] = *c;
            xs[m] = script[i];
            from[m++] = i;
            continue;
        }
        for (j = 0; j < k; j++) { /* EVALSHA sha 1 key mode ms [token] */
            int a = 0, tok = 3 + k + 2 + j;
            x[m].argv = &argv[na];
            x[m].argvlen = &lens[na];
            argv[na + a] = c->argv[0], lens[na + a++] = c->argvlen[0];
            argv[na + a] = c->argv[1], lens[na + a++] = c->argvlen[1];
            argv[na + a] = "1", lens[na + a++] = 1;
            argv[na + a] = c->argv[3 + j], lens[na + a++] = c->argvlen[3 + j];
            argv[na + a] = c->argv[3 + k], lens[na + a++] = c->argvlen[3 + k];
            argv[na + a] = c->argv[4 + k], lens[na + a++] = c->argvlen[4 + k];
            if (tok < c->argc) argv[na + a] = c->argv[tok], lens[na + a++] = c->argvlen[tok];
            x[m].argc = a;
            na += (size_t)a;
            xs[m] = HC_SCRIPT_TAGS;
            from[m++] = i;
        }
    }
    if (run_cmds(cl, m, x, xs, xr, err) != 0) goto done;
    for (i = 0, j = 0; i < n; i++) { /* merge */
        int k0 = j, k, bad = -1;
        redisReply *out;
        while (j < m && from[j] == i) j++;
        if (j - k0 == 1 && !(script[i] == HC_SCRIPT_TAGS && numkeys(&cmds[i]) > 1)) {
            replies[i] = xr[k0];
            xr[k0] = NULL;
            continue;
        }
        for (k = k0; k < j && bad < 0; k++)
            if (xr[k]->type != REDIS_REPLY_ARRAY || xr[k]->elements != 1) bad = k;
        if (bad >= 0) {
            replies[i] = xr[bad];
            xr[bad] = NULL;
            continue;
        }
        out = calloc(1, sizeof *out);
        if (out == NULL || (out->element = calloc((size_t)(j - k0), sizeof *out->element)) == NULL) {
            free(out);
            for (k = 0; k < i; k++) freeReplyObject(replies[k]);
            snprintf(err, HC_ERRLEN, "out of memory");
            goto done;
        }
        out->type = REDIS_REPLY_ARRAY;
        out->elements = (size_t)(j - k0);
        for (k = k0; k < j; k++) {
            out->element[k - k0] = xr[k]->element[0];
            xr[k]->element[0] = NULL;
            xr[k]->elements = 0;
        }
        replies[i] = out;
    }
    rc = 0;
done:
    for (i = 0; xr && i < m; i++)
        if (xr[i]) freeReplyObject(xr[i]);
    free(x);
    free(xs);
    free(from);
    free(xr);
    free(argv);
    free(lens);
    return rc;
}

int hc_client_run(client *cl, hc_cmdb *b, const int *script, redisReply **replies, char *err)
{
    int i, n = b->ncmds;
    if (hc_cmdb_finish(b) != 0) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    if (cl->cluster && script && !cl->xio)
        for (i = 0; i < n; i++)
            if (script[i] == HC_SCRIPT_TAGS && numkeys(&b->cmds[i]) > 1)
                return run_tags_split(cl, n, b->cmds, script, replies, err);
    return run_cmds(cl, n, b->cmds, script, replies, err);
}

/* ---- L1 ---------------------------------------------------------------------- */

void hc_client_l1_drop_args(client *cl, int n, const hc_cmd *cmds)
{
    int i, j;
    if (cl->l1 == NULL) return;
    for (i = 0; i < n; i++)
        for (j = 1; j < cmds[i].argc; j++) hc_l1_drop(cl->l1, cmds[i].argv[j], cmds[i].argvlen[j]);
}

int hc_client_l1_covers(client *cl, const char *key, size_t kn)
{
    int i;
    if (cl->l1 == NULL) return 0;
    if (cl->l1_pid != hc_pool_self_pid()) { /* forked: the child's own store and thread first */
        hc_pool_l1_ready(cl->pool);
        cl->l1_pid = hc_pool_self_pid();
    }
    hc_pool_l1_sweep(cl->pool); /* before a copy is served: see hc_pool.h */
    if (cl->l1_nmatch == 0) return 1;
    if (kn < cl->ns_len) return 0;
    key += cl->ns_len;
    kn -= cl->ns_len;
    for (i = 0; i < cl->l1_nmatch; i++)
        if (kn >= cl->l1_match_len[i] && memcmp(key, cl->l1_match[i], cl->l1_match_len[i]) == 0) return 1;
    return 0;
}

/* ---- tokens, stats, events ------------------------------------------------ */

/* The user's key in a full key (prefix:version:key): skips prefix:version:. */
static const char *user_key(const client *cl, const char *key, size_t kn, size_t *un)
{
    *un = kn;
    if (key && kn > cl->prefix_len + 1) {
        const char *p = key + cl->prefix_len + 1;
        const char *colon = memchr(p, ':', kn - (size_t)(p - key));
        if (colon) {
            *un = kn - (size_t)(colon + 1 - key);
            return colon + 1;
        }
    }
    return key;
}

void hc_client_tokens(client *cl, char *hex, int n)
{
    if (cl->xio && hc_xio_tokens(cl->xio, hex, n) == 0) return;
    hc_tokens_new(hex, n);
}

void hc_client_bytes_in(client *cl, const char *key, size_t kn, size_t bytes_in)
{
    size_t un;
    const char *user = user_key(cl, key, kn, &un);
    if (hc_client_pending(cl)) return;
    if (cl->stats) hc_stats_bytes(cl->stats, bytes_in, 0, user, un);
}

/* stats_publish: calls the publisher (lua/hicache/publish.lua's tick) with
 * the cache, which is the running method's self (stack index 1; else it
 * waits for the next operation). The publisher reports its own failures
 * (op "publish"); one it raised is counted here, never passed on to the
 * operation that triggered it. */
static void publish_due(lua_State *L, client *cl, double t)
{
    if (lua_gettop(L) < 1 || lua_touserdata(L, 1) != (void *)cl) return;
    cl->pub_next = t + cl->pub_interval; /* first: an operation of the publisher does not publish */
    lua_rawgeti(L, LUA_REGISTRYINDEX, cl->pub_ref);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 0, 0) != 0) {
        lua_pop(L, 1);
        if (cl->stats) hc_stats_record(cl->stats, HC_OP_PUBLISH, HC_EV_ERROR, NULL, 0, 0, 0, t);
    }
}

void hc_client_event(lua_State *L, client *cl, int op, unsigned events, const char *key, size_t kn,
                     size_t bytes_in, size_t bytes_out, double t0, const char *err)
{
    size_t un;
    const char *user = user_key(cl, key, kn, &un);
    if (hc_client_pending(cl)) return;
    if (cl->stats) hc_stats_record(cl->stats, op, events, user, un, bytes_in, bytes_out, t0);
    if (cl->hook != LUA_NOREF && cl->pool) { /* the breaker changed state since the last event */
        int state;
        unsigned seq = hc_pool_breaker(cl->pool, &state);
        if (seq != cl->brk_seq) {
            cl->brk_seq = seq;
            lua_rawgeti(L, LUA_REGISTRYINDEX, cl->hook);
            lua_createtable(L, 0, 2);
            lua_pushliteral(L, "breaker");
            lua_setfield(L, -2, "op");
            lua_pushstring(L, state == HC_BREAKER_OPEN ? "open" : "closed");
            lua_setfield(L, -2, "status");
            lua_call(L, 1, 0);
        }
    }
    if (cl->hook != LUA_NOREF) {
        const char *status = events & HC_EV_ERROR ? "error" : events & HC_EV_STALE ? "stale"
                           : events & HC_EV_HIT ? "hit" : events & HC_EV_MISS ? "miss"
                           : events & HC_EV_INVALIDATE ? "invalidate" : events & HC_EV_DELETE ? "delete"
                           : events & HC_EV_SET ? "set" : "ok";
        const char *colon = user ? memchr(user, ':', un) : NULL;
        lua_rawgeti(L, LUA_REGISTRYINDEX, cl->hook);
        lua_createtable(L, 0, 6);
        lua_pushstring(L, hc_stats_op_name(op));
        lua_setfield(L, -2, "op");
        if (user) {
            lua_pushlstring(L, user, un);
            lua_setfield(L, -2, "key");
        }
        if (colon) {
            lua_pushlstring(L, user, (size_t)(colon - user));
            lua_setfield(L, -2, "family");
        }
        lua_pushstring(L, status);
        lua_setfield(L, -2, "status");
        lua_pushnumber(L, (lua_Number)(t0 > 0 ? (hc_now() - t0) * 1000.0 : 0)); /* t0 0: see hc_stats_record */
        lua_setfield(L, -2, "ms");
        if (err) {
            lua_pushstring(L, err);
            lua_setfield(L, -2, "err");
        }
        lua_call(L, 1, 0);
    }
    if (cl->pub_ref != LUA_NOREF && cl->xio == NULL && cl->pool) { /* stats_publish: due? */
        double t = t0 > 0 ? t0 : hc_now(); /* t0 0 (a memo hit): the only clock read */
        if (t >= cl->pub_next) publish_due(L, cl, t);
    }
}

