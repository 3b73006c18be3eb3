/*
 * hc_client.c -- what every operation of a cache uses to reach Redis and
 * to report itself: client_exec, the one place a command meets a
 * transport (the router's pool with the retry rule, or the running
 * operation's xio), scripts loaded and reloaded after NOSCRIPT, random
 * tokens, stats and on_event. The method files (hc_read.c, hc_write.c,
 * hc_lease.c, ...) call these; this file calls none of them.
 */
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "hc_client.h"
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

/* ---- running commands on a borrowed connection ------------------------- */

/* Runs a formatted request of n commands; 0 with replies, or -1 with
 * err. Never raises. */
static int exec_on(hc_conn *c, const char *req, size_t len, int n, const hc_cmd *cmds,
                   redisReply **replies, char *err)
{
    if (c->pid != hc_pool_self_pid()) {
        snprintf(err, HC_ERRLEN, "connection belongs to parent process");
        return -1;
    }
    return hc_conn_exec_raw(c, req, len, n, cmds, replies, err, HC_ERRLEN);
}

static int all_idempotent(int n, const hc_cmd *cmds)
{
    int i;
    for (i = 0; i < n; i++)
        if (!hc_cmd_idempotent(&cmds[i])) return 0;
    return 1;
}

/* Borrow, run, settle, return: the whole life of a pooled command.
 * timeout > 0: the command timeout for this borrow (restored after).
 * A pooled connection that turns out to have been closed by the server
 * before any byte of the reply (killed, server restarted, idle timeout)
 * is replaced and the request sent once more -- only when every command
 * of it only reads, so nothing can run twice. */
static int client_exec(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err, double timeout)
{
    hc_pool *p = cl->pool;
    hc_conn *c;
    char *req;
    long len;
    int rc, attempt;
    if (p == NULL) {
        snprintf(err, HC_ERRLEN, "closed");
        return -1;
    }
    if (cl->xio) return hc_xio_exec(cl->xio, n, cmds, timeout, replies, err, HC_ERRLEN);
    len = hc_proto_format(n, cmds, &req);
    if (len < 0) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    for (attempt = 0;; attempt++) {
        c = hc_pool_checkout_ex(p, attempt > 0, err, HC_ERRLEN);
        if (c == NULL) {
            rc = -1;
            break;
        }
        if (timeout > 0 && hc_conn_set_timeout(c, timeout) != 0) {
            c->broken = 1;
            hc_pool_checkin(p, c);
            snprintf(err, HC_ERRLEN, "cannot set timeout");
            rc = -1;
            break;
        }
        rc = exec_on(c, req, (size_t)len, n, cmds, replies, err);
        if (timeout > 0 && !c->broken && hc_conn_set_timeout(c, hc_pool_settings(p)->timeout) != 0)
            c->broken = 1;
        hc_conn_settle(c);
        if (rc != 0 && attempt == 0 && c->closed_unused && all_idempotent(n, cmds)) {
            hc_pool_checkin(p, c); /* broken: closed */
            continue;
        }
        hc_pool_checkin(p, c);
        break;
    }
    hc_proto_free(req);
    return rc;
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

int hc_client_run(client *cl, hc_cmdb *b, const int *script, redisReply **replies, char *err)
{
    int i, n = b->ncmds;
    if (hc_cmdb_finish(b) != 0) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    for (i = 0; script && i < n; i++)
        if (script[i] >= 0 && load_script(cl, script[i], err) != 0) return -1;
    if (hc_client_exec(cl, n, b->cmds, replies, err) != 0) return -1;
    for (i = 0; script && i < n; i++) {
        if (script[i] < 0 || !is_noscript(replies[i])) continue;
        /* flushed, or a restart or failover: load it again and rerun it */
        freeReplyObject(replies[i]);
        replies[i] = NULL;
        cl->sha[script[i]][0] = '\0';
        if (load_script(cl, script[i], err) != 0 || hc_client_exec(cl, 1, &b->cmds[i], &replies[i], err) != 0) {
            int j;
            for (j = 0; j < n; j++)
                if (replies[j]) freeReplyObject(replies[j]);
            return -1;
        }
    }
    return 0;
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
}

