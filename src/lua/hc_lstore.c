/*
 * hc_lstore.c -- a Lua binding of the in-process store (hc_store.h), for
 * the specs and the benchmarks (internal: not part of the public API).
 *
 *   core.store{max_bytes = n, max_items = n, policy = "s3fifo"|"lru",
 *              name = "..."}   -> s ("hicache.store"); with name, the
 *                                 process-wide store of that name (shared
 *                                 by every Lua state and thread)
 *   s:set(key, value [, ttl [, stale [, mode]]]) -> true | false (nx/xx
 *        not met) | nil, "too large" | nil, "out of memory"
 *        ttl, stale: seconds (nil or 0: no expiry; the value is served as
 *        a stale copy stale seconds past ttl); mode: "nx" | "xx"
 *   s:get(key [, allow_stale]) -> value, "hit" | value, "stale" | nil
 *   s:delete(key) -> true when a live entry was there
 *   s:expire(key, ttl) -> true | false (ttl 0: no expiry)
 *   s:fill_begin(key) -> ticket (an integer; 0: not marked)
 *   s:fill_end(key, ticket, value [, ttl [, stale]]) -> true | false
 *        (cancelled) | nil, "too large" | nil, "out of memory"
 *   s:fill_abort(key, ticket)
 *   s:flush()
 *   s:keys() -> array of the live keys
 *   s:stats() -> table of every counter of hc_store_stats
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "hc_buf.h"
#include "hc_client.h"
#include "hc_store.h"
#include "hc_time.h"

#define STORE_MT "hicache.store"

typedef struct lstore {
    hc_store *s;
    int named;  /* from hc_store_acquire */
    hc_buf buf; /* the last value read, keys() (owned here: a raise never leaks) */
} lstore;

static lstore *check_store(lua_State *L)
{
    lstore *u = (lstore *)luaL_checkudata(L, 1, STORE_MT);
    if (u->s == NULL) luaL_argerror(L, 1, "the store is closed");
    return u;
}

static const char *check_key(lua_State *L, int i, size_t *n)
{
    if (lua_type(L, i) != LUA_TSTRING) luaL_argerror(L, i, "key must be a string");
    return lua_tolstring(L, i, n);
}

/* A number of seconds >= 0 (nil: 0). */
static double opt_seconds(lua_State *L, int i, const char *what)
{
    double d;
    if (lua_isnoneornil(L, i)) return 0;
    if (lua_type(L, i) != LUA_TNUMBER || !((d = lua_tonumber(L, i)) >= 0) || isinf(d)) {
        lua_pushfstring(L, "%s must be a number of seconds >= 0", what);
        luaL_argerror(L, i, lua_tostring(L, -1));
    }
    return lua_tonumber(L, i);
}

static void times_of(double now, double ttl, double stale, double *expires, double *stale_until)
{
    *expires = ttl > 0 ? now + ttl : 0;
    *stale_until = *expires ? *expires + stale : 0;
}

static uint64_t check_ticket(lua_State *L, int i)
{
    long long t = 0;
    if (hc_toint64(L, i, &t) != 0) luaL_argerror(L, i, HC_INT_ARG("ticket"));
    return (uint64_t)t;
}

/* The result of a write: 1 true, 0 false, -1 nil + why. */
static int push_written(lua_State *L, lstore *u, int r, size_t kn, size_t vn)
{
    if (r >= 0) {
        lua_pushboolean(L, r);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, hc_store_fits(u->s, kn, vn) ? "out of memory" : "too large");
    return 2;
}

/* core.store(opts) */
static int store_new(lua_State *L)
{
    hc_store_opts o;
    const char *name = NULL;
    lstore *u;
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&o, 0, sizeof o);
    o.policy = HC_STORE_S3FIFO;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
        if (strcmp(k, "max_bytes") == 0 || strcmp(k, "max_items") == 0) {
            long long n = 0;
            int bytes = k[4] == 'b';
            if (hc_toint64(L, -1, &n) != 0 || n < (bytes ? 1 : 0))
                luaL_argerror(L, 1, bytes ? "max_bytes must be an integer > 0"
                                          : "max_items must be an integer >= 0");
            if (bytes) o.max_bytes = (size_t)n;
            else o.max_items = (size_t)n;
        } else if (strcmp(k, "policy") == 0) {
            const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (strcmp(p, "lru") == 0) o.policy = HC_STORE_LRU;
            else if (strcmp(p, "s3fifo") != 0)
                luaL_argerror(L, 1, "policy must be \"s3fifo\" or \"lru\"");
        } else if (strcmp(k, "name") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
                luaL_argerror(L, 1, "name must be a non-empty string");
            name = lua_tostring(L, -1); /* kept alive by the options table */
        } else {
            lua_pushfstring(L, "unknown option '%s'", lua_type(L, -2) == LUA_TSTRING ? k : "?");
            luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    if (o.max_bytes == 0) luaL_argerror(L, 1, "max_bytes must be an integer > 0");
    u = (lstore *)lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    hc_buf_init(&u->buf, 0);
    luaL_getmetatable(L, STORE_MT);
    lua_setmetatable(L, -2);
    u->named = name != NULL;
    u->s = name ? hc_store_acquire(name, &o) : hc_store_new(&o);
    if (u->s == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory");
        return 2;
    }
    return 1;
}

static int store_gc(lua_State *L)
{
    lstore *u = (lstore *)luaL_checkudata(L, 1, STORE_MT);
    if (u->s) {
        if (u->named) hc_store_release(u->s);
        else hc_store_free(u->s);
        u->s = NULL;
    }
    hc_buf_free(&u->buf);
    return 0;
}

static int store_tostring(lua_State *L)
{
    lua_pushfstring(L, STORE_MT ": %p", luaL_checkudata(L, 1, STORE_MT));
    return 1;
}

static int store_set(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn, vn;
    const char *k = check_key(L, 2, &kn), *v;
    double ttl, stale, now, expires, stale_until;
    int mode = HC_STORE_ALWAYS;
    if (lua_type(L, 3) != LUA_TSTRING) luaL_argerror(L, 3, "value must be a string");
    v = lua_tolstring(L, 3, &vn);
    ttl = opt_seconds(L, 4, "ttl");
    stale = opt_seconds(L, 5, "stale");
    if (!lua_isnoneornil(L, 6)) {
        const char *m = lua_type(L, 6) == LUA_TSTRING ? lua_tostring(L, 6) : "";
        if (strcmp(m, "nx") == 0) mode = HC_STORE_NX;
        else if (strcmp(m, "xx") == 0) mode = HC_STORE_XX;
        else luaL_argerror(L, 6, "mode must be \"nx\" or \"xx\"");
    }
    now = hc_now();
    times_of(now, ttl, stale, &expires, &stale_until);
    return push_written(L, u, hc_store_set(u->s, k, kn, v, vn, 0, expires, stale_until, mode, now),
                        kn, vn);
}

static int store_get(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn;
    const char *k = check_key(L, 2, &kn);
    hc_store_val v;
    int r = hc_store_get_buf(u->s, k, kn, hc_now(), lua_toboolean(L, 3), 0, &v, &u->buf.data,
                             &u->buf.cap);
    if (r < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory");
        return 2;
    }
    if (r == HC_STORE_MISS) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, v.data, v.len);
    if (r == HC_STORE_HIT) lua_pushliteral(L, "hit");
    else lua_pushliteral(L, "stale");
    return 2;
}

static int store_delete(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn;
    const char *k = check_key(L, 2, &kn);
    lua_pushboolean(L, hc_store_del(u->s, k, kn, hc_now()));
    return 1;
}

static int store_expire(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn;
    const char *k = check_key(L, 2, &kn);
    double ttl, now = hc_now();
    if (lua_isnoneornil(L, 3)) luaL_argerror(L, 3, "ttl must be a number of seconds >= 0");
    ttl = opt_seconds(L, 3, "ttl");
    lua_pushboolean(L, hc_store_expire(u->s, k, kn, ttl > 0 ? now + ttl : 0, now));
    return 1;
}

static int store_fill_begin(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn;
    const char *k = check_key(L, 2, &kn);
    hc_push_int64(L, (long long)hc_store_fill_begin(u->s, k, kn, hc_now()));
    return 1;
}

static int store_fill_end(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn, vn;
    const char *k = check_key(L, 2, &kn), *v;
    uint64_t ticket = check_ticket(L, 3);
    double ttl, stale, now, expires, stale_until;
    if (lua_type(L, 4) != LUA_TSTRING) luaL_argerror(L, 4, "value must be a string");
    v = lua_tolstring(L, 4, &vn);
    ttl = opt_seconds(L, 5, "ttl");
    stale = opt_seconds(L, 6, "stale");
    now = hc_now();
    times_of(now, ttl, stale, &expires, &stale_until);
    return push_written(
        L, u, hc_store_fill_end(u->s, k, kn, ticket, v, vn, 0, expires, stale_until, now), kn, vn);
}

static int store_fill_abort(lua_State *L)
{
    lstore *u = check_store(L);
    size_t kn;
    const char *k = check_key(L, 2, &kn);
    hc_store_fill_abort(u->s, k, kn, check_ticket(L, 3));
    return 0;
}

static int store_flush(lua_State *L)
{
    hc_store_flush(check_store(L)->s);
    return 0;
}

/* keys(): each key as its length then its bytes, into the store's buffer
 * (no Lua call while a shard is locked). */
static int collect_key(void *ctx, const char *key, size_t kn, const hc_store_val *v)
{
    hc_buf *b = (hc_buf *)ctx;
    (void)v;
    return hc_buf_append(b, &kn, sizeof kn) != 0 || hc_buf_append(b, key, kn) != 0;
}

static int store_keys(lua_State *L)
{
    lstore *u = check_store(L);
    size_t off = 0;
    int n = 0;
    u->buf.len = 0;
    u->buf.oom = 0;
    hc_store_each(u->s, hc_now(), collect_key, &u->buf);
    if (u->buf.oom) {
        lua_pushnil(L);
        lua_pushliteral(L, "out of memory");
        return 2;
    }
    lua_newtable(L);
    while (off < u->buf.len) {
        size_t kn;
        memcpy(&kn, u->buf.data + off, sizeof kn);
        lua_pushlstring(L, u->buf.data + off + sizeof kn, kn);
        lua_rawseti(L, -2, ++n);
        off += sizeof kn + kn;
    }
    return 1;
}

static int store_stats(lua_State *L)
{
    hc_store_stats st;
    hc_store_get_stats(check_store(L)->s, &st);
    lua_createtable(L, 0, 13);
#define FIELD(f)                                  \
    do {                                          \
        hc_push_int64(L, (long long)st.f);        \
        lua_setfield(L, -2, #f);                  \
    } while (0)
    FIELD(hits);
    FIELD(misses);
    FIELD(stale_hits);
    FIELD(sets);
    FIELD(evictions);
    FIELD(expired);
    FIELD(invalidations);
    FIELD(flushes);
    FIELD(fills_cancelled);
    FIELD(bytes);
    FIELD(items);
    FIELD(max_bytes);
    FIELD(max_items);
#undef FIELD
    return 1;
}

static const luaL_Reg store_methods[] = {
    {"set", store_set},
    {"get", store_get},
    {"delete", store_delete},
    {"expire", store_expire},
    {"fill_begin", store_fill_begin},
    {"fill_end", store_fill_end},
    {"fill_abort", store_fill_abort},
    {"flush", store_flush},
    {"keys", store_keys},
    {"stats", store_stats},
    {NULL, NULL}};

void hc_lstore_register(lua_State *L)
{
    hc_new_class(L, STORE_MT, store_methods, store_gc, store_tostring);
    lua_pop(L, 1); /* its methods table */
    lua_pushcfunction(L, store_new);
    lua_setfield(L, -2, "store");
}
