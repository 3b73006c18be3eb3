/*
 * hc_lease.c -- the primitives get_or_set (lua/hicache/lease.lua) and
 * locks (lock.lua) are built of, each one round trip:
 *
 *   _lease     hit, or take the key's lease (value "<epoch>:<token>"), or
 *              learn the PTTL of someone else's; with tags, also read
 *              (create) the tags' tokens before fn runs
 *   _keep      the keeper extends our lease while fn runs
 *   _fill      store fn's value while our lease and the epoch hold
 *   _release   give the lease back (fn failed or returned nothing)
 *   _wait      block until the key's filler wakes us, or clear() /
 *              delete_pattern() moved the epoch on (which wakes everyone)
 *   _wake      pass a wake-up on to the next waiter
 *   _block     a lock waiter: block until a release wakes us
 *   _eval      the lock scripts (their key names: _lock_names, hc_cache.c)
 *
 * A wait (_wait, _block) of s seconds is one BLPOP whose read timeout is
 * s plus the command timeout: it returns at most one command timeout
 * after s, also when Redis does not answer (stopped, DEBUG SLEEP, CLIENT
 * PAUSE). The callers bound s by what is left of their own wait, so a
 * waiter never waits longer than its wait + one command timeout.
 */
#include <stdio.h>
#include <string.h>

#include "hc_args.h"
#include "hc_ops.h"
#include "hc_reply.h"

#define SMALL 64 /* tokens and epochs are 16 to 32 characters */

static const char *small_arg(lua_State *L, int idx, size_t *n)
{
    const char *s = luaL_checklstring(L, idx, n);
    if (*n < 1 || *n > SMALL) luaL_argerror(L, idx, "token expected");
    return s;
}

static size_t lease_value(char *buf, const char *epoch, size_t en, const char *tok, size_t tn)
{
    memcpy(buf, epoch, en);
    buf[en] = ':';
    memcpy(buf + en + 1, tok, tn);
    return en + 1 + tn;
}

static size_t lease_name(const client *cl, const char *v, size_t vn, char *buf)
{
    return hc_name_companion(buf, cl->prefix, cl->prefix_len, v, vn, "lease", 5);
}

static size_t wake_name(const client *cl, const char *v, size_t vn, char *buf)
{
    return hc_name_companion(buf, cl->prefix, cl->prefix_len, v, vn, "wake", 4);
}

/* An integer of ms from min to 10^15 (over 30,000 years: every TTL the
 * API accepts, with its stale window, and no overflow in what is added
 * to it here or in Redis). */
static int ms_arg(lua_State *L, int idx, long long min)
{
    if (!hc_isinteger(L, idx) || lua_tointeger(L, idx) < min) luaL_argerror(L, idx, "milliseconds expected");
    if (lua_tointeger(L, idx) > 1000000000000000LL) luaL_argerror(L, idx, "milliseconds out of range");
    return 0;
}

/* cache:_lease(key, token, lease_ms, ignore, tags, tag_ms)
 * -> 2, epoch[, tokens] (the lease is ours; tokens: the tags' tokens in
 * canonical order) | 1, epoch (the key holds a value) | 3, pttl, epoch
 * (someone else's lease) | nil, err */
static int cache_lease(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], name[HC_NAME_MAX], err[HC_ERRLEN], newe[HC_TOKEN_LEN + 1];
    char tokens[HC_TAGS_MAX * (HC_TOKEN_LEN + 1)], epoch[SMALL + 1], got[HC_TAGS_MAX][SMALL + 1];
    size_t kn, tn, en = 0, gotn[HC_TAGS_MAX];
    const char *tok;
    hc_taglist t;
    redisReply *r[2] = {NULL, NULL};
    long long code = 0, pttl = 0;
    int ids[2] = {HC_SCRIPT_LEASE, HC_SCRIPT_TAGS}, i, rc, has_tags;
    hc_cmdb b;
    lua_settop(L, 7);
    kn = hc_key_arg(L, cl, 2, key);
    tok = small_arg(L, 3, &tn);
    ms_arg(L, 4, 1);
    has_tags = !lua_isnil(L, 6);
    if (has_tags) {
        hc_taglist_from_lua(L, 6, 6, &t);
        ms_arg(L, 7, 0);
    }
    hc_client_tokens(cl, newe, 1);
    hc_cmdb_init(&b);
    hc_client_script(cl, &b, HC_SCRIPT_LEASE);
    hc_cmdb_str(&b, "3");
    hc_cmdb_add(&b, key, kn);
    hc_cmdb_add(&b, name, lease_name(cl, key, kn, name));
    hc_cmdb_add(&b, name, hc_epoch_name(cl, key, kn, name));
    hc_cmdb_add(&b, tok, tn);
    hc_cmdb_int(&b, (long long)lua_tointeger(L, 4));
    hc_cmdb_str(&b, lua_toboolean(L, 5) ? "1" : "0");
    hc_cmdb_add(&b, newe, HC_TOKEN_LEN);
    hc_cmdb_int(&b, HC_EPOCH_TTL_MS);
    hc_cmdb_end(&b);
    if (has_tags) hc_tags_script(&b, cl, &t, 'p', (long long)lua_tointeger(L, 7), tokens);
    rc = hc_client_run(cl, &b, ids, r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    /* copy what we need, free the replies, then push (pushing may raise) */
    rc = -1;
    if (r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements >= 2 && r[0]->element[0]->type == REDIS_REPLY_INTEGER) {
        redisReply *e;
        code = r[0]->element[0]->integer;
        if (code == 3 && r[0]->elements == 3 && r[0]->element[1]->type == REDIS_REPLY_INTEGER) {
            pttl = r[0]->element[1]->integer;
            e = r[0]->element[2];
        } else {
            e = r[0]->element[1];
        }
        if (e->type == REDIS_REPLY_STRING && e->len <= SMALL) {
            en = e->len;
            memcpy(epoch, e->str, en);
            rc = 0;
        }
    }
    if (rc == 0 && has_tags) {
        if (r[1]->type != REDIS_REPLY_ARRAY || r[1]->elements != (size_t)t.n) rc = -1;
        for (i = 0; rc == 0 && i < t.n; i++) {
            redisReply *e = r[1]->element[i];
            gotn[i] = e->type == REDIS_REPLY_STRING && e->len <= SMALL ? e->len : 0; /* none: never current */
            memcpy(got[i], gotn[i] ? e->str : "", gotn[i]);
        }
    }
    if (rc != 0) {
        if (r[1]) freeReplyObject(r[1]);
        return hc_unexpected(L, r[0]);
    }
    freeReplyObject(r[0]);
    if (r[1]) freeReplyObject(r[1]);
    lua_pushinteger(L, (lua_Integer)code);
    if (code == 3) lua_pushinteger(L, (lua_Integer)pttl);
    lua_pushlstring(L, epoch, en);
    if (code != 2 || !has_tags) return code == 3 ? 3 : 2;
    lua_createtable(L, t.n, 0);
    for (i = 0; i < t.n; i++) {
        lua_pushlstring(L, got[i], gotn[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 3;
}

/* A lease's key name and value from the arguments (key, token, epoch) at
 * 2..4: what _keep keeps alive and _lease_key tells. */
typedef struct lease_target {
    char name[HC_NAME_MAX], val[2 * SMALL + 2];
    size_t nn, vn;
} lease_target;

static void lease_target_args(lua_State *L, client *cl, lease_target *t)
{
    char key[HC_FULLKEY_MAX];
    size_t kn = hc_key_arg(L, cl, 2, key), tn, en;
    const char *tok = small_arg(L, 3, &tn), *epoch = small_arg(L, 4, &en);
    t->nn = lease_name(cl, key, kn, t->name);
    t->vn = lease_value(t->val, epoch, en, tok, tn);
}

/* cache:_keep(key, token, epoch, lease_ms) -> watch | nil, err */
static int cache_keep(lua_State *L)
{
    client *cl = hc_check_client(L);
    lease_target t;
    lease_target_args(L, cl, &t);
    ms_arg(L, 5, 30);
    return hc_keeper_watch(L, cl, t.name, t.nn, t.val, t.vn, (long long)lua_tointeger(L, 5));
}

/* cache:_lease_key(key, token, epoch) -> the lease's key and value (no I/O):
 * what _keep keeps alive, for a keeper outside C (OpenResty's timers). */
static int cache_lease_key(lua_State *L)
{
    lease_target t;
    lease_target_args(L, hc_check_client(L), &t);
    lua_pushlstring(L, t.name, t.nn);
    lua_pushlstring(L, t.val, t.vn);
    return 2;
}

/* cache:_fill(key, token, epoch, bytes, px, tags) -> true (stored) |
 * false (the lease was revoked or the epoch moved on) | nil, err. With
 * tags, their keys are made to live px ms too (0: no expiry). */
static int cache_fill(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], val[2 * SMALL + 2], err[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key), tn, en, bn;
    const char *tok = small_arg(L, 3, &tn), *epoch = small_arg(L, 4, &en);
    const char *bytes = luaL_checklstring(L, 5, &bn);
    int ids[1] = {HC_SCRIPT_TAGS}, stored, has_tags;
    redisReply *r[2] = {NULL, NULL};
    hc_taglist t;
    hc_cmdb extra;
    hc_wr w;
    lua_settop(L, 7);
    ms_arg(L, 6, 0);
    has_tags = !lua_isnil(L, 7);
    if (has_tags) hc_taglist_from_lua(L, 7, 7, &t);
    hc_wr_init(&w);
    hc_wr_fill(&w, cl, key, kn, val, lease_value(val, epoch, en, tok, tn), epoch, en, bytes, bn,
               (long long)lua_tointeger(L, 6));
    hc_cmdb_init(&extra);
    if (has_tags) hc_tags_script(&extra, cl, &t, 'x', (long long)lua_tointeger(L, 6), NULL);
    if (hc_wr_run_with(&w, cl, has_tags ? &extra : NULL, ids, r, err) != 0) {
        hc_cmdb_free(&extra);
        return hc_fail(L, err);
    }
    hc_cmdb_free(&extra);
    stored = r[0]->element[0]->type == REDIS_REPLY_INTEGER && r[0]->element[0]->integer == 1;
    freeReplyObject(r[0]);
    if (r[1]) freeReplyObject(r[1]);
    lua_pushboolean(L, stored);
    return 1;
}

/* cache:_release(key, token, epoch) -> true | false (not ours) | nil, err */
static int cache_release(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], name[HC_NAME_MAX], val[2 * SMALL + 2], err[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key), tn, en;
    const char *tok = small_arg(L, 3, &tn), *epoch = small_arg(L, 4, &en);
    int id = HC_SCRIPT_RELEASE, ok;
    redisReply *r;
    hc_cmdb b;
    hc_cmdb_init(&b);
    hc_client_script(cl, &b, HC_SCRIPT_RELEASE);
    hc_cmdb_str(&b, "2");
    hc_cmdb_add(&b, name, lease_name(cl, key, kn, name));
    hc_cmdb_add(&b, name, wake_name(cl, key, kn, name));
    hc_cmdb_add(&b, val, lease_value(val, epoch, en, tok, tn));
    hc_cmdb_int(&b, HC_WAKE_TTL_MS);
    hc_cmdb_end(&b);
    ok = hc_client_run(cl, &b, &id, &r, err);
    hc_cmdb_free(&b);
    if (ok != 0) return hc_fail(L, err);
    if (r->type != REDIS_REPLY_INTEGER) return hc_unexpected(L, r);
    ok = r->integer == 1;
    freeReplyObject(r);
    lua_pushboolean(L, ok);
    return 1;
}

/* RPUSH list 1 + PEXPIRE: one wake-up token. */
static int push_wake(client *cl, const char *list, size_t ln, char *err)
{
    redisReply *r[2];
    hc_cmdb b;
    int rc;
    hc_cmdb_init(&b);
    hc_cmdb_str(&b, "RPUSH");
    hc_cmdb_add(&b, list, ln);
    hc_cmdb_str(&b, "1");
    hc_cmdb_end(&b);
    hc_cmdb_str(&b, "PEXPIRE");
    hc_cmdb_add(&b, list, ln);
    hc_cmdb_int(&b, HC_WAKE_TTL_MS);
    hc_cmdb_end(&b);
    rc = hc_client_run(cl, &b, NULL, r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return -1;
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    return 0;
}

/* BLPOP lists[0..n-1] s seconds (ms precision: the command takes
 * seconds), with a read timeout of s + the command timeout. 0 with *r,
 * or -1 with err. */
static int blpop(client *cl, int n, const char **lists, const size_t *lens, double s, redisReply **r, char *err)
{
    const char *argv[4];
    size_t alens[4];
    char secs[32];
    double slack = cl->pool ? hc_pool_settings(cl->pool)->timeout : 1;
    hc_cmd c;
    int i;
    argv[0] = "BLPOP";
    alens[0] = 5;
    for (i = 0; i < n; i++) {
        argv[i + 1] = lists[i];
        alens[i + 1] = lens[i];
    }
    argv[n + 1] = secs;
    alens[n + 1] = (size_t)snprintf(secs, sizeof secs, "%.3f", s < 0.001 ? 0.001 : s);
    c.argc = n + 2;
    c.argv = argv;
    c.argvlen = alens;
    return hc_client_exec_timeout(cl, 1, &c, r, err, s + slack);
}

/* The seconds argument of a wait: > 0 and at most a day. */
static double wait_arg(lua_State *L, int idx)
{
    double s = (double)luaL_checknumber(L, idx);
    if (!(s > 0 && s <= 86400)) luaL_argerror(L, idx, "seconds must be > 0 and <= 86400");
    return s;
}

/* cache:_wait(key, epoch, seconds) -> "key" (the filler woke us) |
 * "epoch" (clear or delete_pattern did; passed on to the next waiter) |
 * false (timed out) | nil, err. Blocks at most seconds + the command
 * timeout (BLPOP on both lists). */
static int cache_wait(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], wake[HC_NAME_MAX], ewake[HC_NAME_MAX], err[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key), en;
    const char *epoch = small_arg(L, 3, &en);
    double s = wait_arg(L, 4);
    const char *lists[2];
    size_t lens[2];
    redisReply *r;
    int by_epoch;
    lists[0] = wake;
    lens[0] = wake_name(cl, key, kn, wake);
    lists[1] = ewake;
    lens[1] = hc_epoch_wake_name(cl, key, kn, epoch, en, ewake);
    if (blpop(cl, 2, lists, lens, s, &r, err) != 0) return hc_fail(L, err);
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        lua_pushboolean(L, 0);
        return 1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING)
        return hc_unexpected(L, r);
    by_epoch = r->element[0]->len == lens[1] && memcmp(r->element[0]->str, ewake, lens[1]) == 0;
    freeReplyObject(r);
    if (by_epoch && push_wake(cl, ewake, lens[1], err) != 0) return hc_fail(L, err);
    lua_pushstring(L, by_epoch ? "epoch" : "key");
    return 1;
}

/* cache:_block(list, seconds) -> true (a token was popped) | false (timed
 * out) | nil, err: a lock waiter's wait for a release (lock.lua), at most
 * seconds + the command timeout. list: the lock's wake-up list, as
 * _lock_names gives it. */
static int cache_block(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    size_t ln;
    const char *list = luaL_checklstring(L, 2, &ln);
    double s = wait_arg(L, 3);
    redisReply *r;
    int popped;
    if (ln < 1 || ln > HC_NAME_MAX) return luaL_argerror(L, 2, "list name expected");
    if (blpop(cl, 1, &list, &ln, s, &r, err) != 0) return hc_fail(L, err);
    if (r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_ARRAY) return hc_unexpected(L, r);
    popped = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    lua_pushboolean(L, popped);
    return 1;
}

/* cache:_wake(key) -> true | nil, err: passes a wake-up on */
static int cache_wake(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], wake[HC_NAME_MAX], err[HC_ERRLEN];
    size_t kn = hc_key_arg(L, cl, 2, key);
    if (push_wake(cl, wake, wake_name(cl, key, kn, wake), err) != 0) return hc_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* cache:_eval(script, numkeys, ...) -> reply | nil, err: one of
 * hc_scripts.h's scripts by name ("acquire", "release", "extend") */
static int cache_eval(lua_State *L)
{
    client *cl = hc_check_client(L);
    const char *argv[HC_ARGS_STACK];
    size_t lens[HC_ARGS_STACK];
    char err[HC_ERRLEN];
    int id = hc_script_id(luaL_checkstring(L, 2)), i, rc;
    redisReply *r;
    hc_cmd args;
    hc_cmdb b;
    if (id < 0) return luaL_argerror(L, 2, "unknown script");
    hc_args_from_stack(L, 3, lua_gettop(L), &args, argv, lens); /* GC-owned: may raise */
    hc_cmdb_init(&b);
    hc_client_script(cl, &b, id);
    for (i = 0; i < args.argc; i++) hc_cmdb_ref(&b, args.argv[i], args.argvlen[i]);
    hc_cmdb_end(&b);
    rc = hc_client_run(cl, &b, &id, &r, err);
    hc_cmdb_free(&b);
    if (rc != 0) return hc_fail(L, err);
    return hc_reply_push_one(L, r);
}

static const luaL_Reg lease_methods[] = {
    {"_lease", cache_lease},
    {"_keep", cache_keep},
    {"_lease_key", cache_lease_key},
    {"_fill", cache_fill},
    {"_release", cache_release},
    {"_wait", cache_wait},
    {"_wake", cache_wake},
    {"_block", cache_block},
    {"_eval", cache_eval},
    {NULL, NULL}};

void hc_lease_register(lua_State *L)
{
    luaL_setfuncs(L, lease_methods, 0);
}
