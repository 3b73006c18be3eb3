/*
 * hc_lsentinel.c -- a Lua binding of Sentinel master discovery
 * (hc_sentinel.h), for the specs and for operators (which master would a
 * client use now?); internal, not part of the cache API.
 *
 *   core.sentinel_master{sentinels = {"127.0.0.1:26379", "[::1]:26380", ...},
 *       master_name = "mymaster", sentinel_username =, sentinel_password =,
 *       username =, password = (the data node's), db = 0,
 *       connect_timeout = 1, timeout = 1, first = 1}
 *     -> host, port, i (i: the index in sentinels of the one that answered)
 *      | nil, err
 *
 * Argument errors raise at the caller's line; a failed discovery returns
 * nil and one of hc_sentinel_discover's messages. The call blocks (every
 * wait bounded by the timeouts); sentinels are asked from `first` on.
 */
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "hc_client.h"
#include "hc_sentinel.h"

#define MAX_SENTINELS 64
#define HOST_MAX 256

/* An optional string field of the table at 1 (nil: NULL); the string stays
 * referenced by the table, which the caller keeps on the stack. */
static char *opt_field(lua_State *L, const char *k)
{
    const char *s = NULL;
    lua_getfield(L, 1, k);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "'%s' must be a string", k);
            luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
    return (char *)s;
}

static double opt_seconds(lua_State *L, const char *k)
{
    double v = 1;
    lua_getfield(L, 1, k);
    if (!lua_isnil(L, -1)) {
        v = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
        if (!(v >= 1e-3 && v <= 86400.0)) {
            lua_pushfstring(L, "'%s' must be a number of seconds from 0.001 to 86400", k);
            luaL_argerror(L, 1, lua_tostring(L, -1));
        }
    }
    lua_pop(L, 1);
    return v;
}

/* "host:port", "[v6]:port": the host copied into out (hostlen bytes),
 * the port returned; -1 when malformed. */
static int split_addr(const char *a, size_t n, char *out, size_t outlen)
{
    const char *colon = NULL, *h = a;
    size_t hn, i;
    long port = 0;

    for (i = n; i > 0; i--)
        if (a[i - 1] == ':') { colon = a + i - 1; break; }
    if (colon == NULL || colon == a || (size_t)(a + n - colon - 1) == 0 || a + n - colon - 1 > 5) return -1;
    for (i = (size_t)(colon - a) + 1; i < n; i++) {
        if (a[i] < '0' || a[i] > '9') return -1;
        port = port * 10 + (a[i] - '0');
    }
    if (port < 1 || port > 65535) return -1;
    hn = (size_t)(colon - a);
    if (a[0] == '[') {
        if (hn < 3 || a[hn - 1] != ']') return -1;
        h = a + 1;
        hn -= 2;
    } else if (memchr(a, ':', hn)) {
        return -1; /* an IPv6 address goes in brackets */
    }
    if (hn >= outlen || memchr(h, '\0', hn)) return -1;
    memcpy(out, h, hn);
    out[hn] = '\0';
    return (int)port;
}

static int core_sentinel_master(lua_State *L)
{
    hc_sentinel_cfg cfg;
    hc_settings node;
    char *hosts; /* n * HOST_MAX bytes, GC-owned */
    char host[HOST_MAX], err[HC_ERRLEN + 320];
    int n, i, port = 0, first = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    memset(&cfg, 0, sizeof cfg);
    memset(&node, 0, sizeof node);

    lua_getfield(L, 1, "sentinels"); /* stays at 2 */
    if (lua_type(L, 2) != LUA_TTABLE || (n = (int)lua_rawlen(L, 2)) < 1 || n > MAX_SENTINELS)
        return luaL_argerror(L, 1, "'sentinels' must be a list of 1 to 64 \"host:port\" strings");
    cfg.n = n;
    cfg.hosts = (char **)lua_newuserdata(L, (size_t)n * sizeof(char *)); /* 3 */
    cfg.ports = (int *)lua_newuserdata(L, (size_t)n * sizeof(int));      /* 4 */
    hosts = (char *)lua_newuserdata(L, (size_t)n * HOST_MAX);            /* 5 */
    for (i = 0; i < n; i++) {
        size_t len;
        const char *a;
        lua_rawgeti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pushfstring(L, "sentinels[%d] must be a \"host:port\" string", i + 1);
            return luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        a = lua_tolstring(L, -1, &len);
        cfg.hosts[i] = hosts + (size_t)i * HOST_MAX;
        if ((cfg.ports[i] = split_addr(a, len, cfg.hosts[i], HOST_MAX)) < 0) {
            lua_pushfstring(L, "sentinels[%d] must be a \"host:port\" string", i + 1);
            return luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    cfg.master_name = opt_field(L, "master_name");
    if (cfg.master_name == NULL || cfg.master_name[0] == '\0')
        return luaL_argerror(L, 1, "'master_name' must be a non-empty string");
    cfg.username = opt_field(L, "sentinel_username");
    cfg.password = opt_field(L, "sentinel_password");
    if (cfg.username && !cfg.password)
        return luaL_argerror(L, 1, "'sentinel_username' needs 'sentinel_password'");
    node.username = opt_field(L, "username");
    node.password = opt_field(L, "password");
    if (node.username && !node.password) return luaL_argerror(L, 1, "'username' needs 'password'");
    lua_getfield(L, 1, "db");
    if (!lua_isnil(L, -1)) {
        double d = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
        if (!(d >= 0 && d <= 1000000 && d == (double)(int)d))
            return luaL_argerror(L, 1, "'db' must be an integer from 0 to 1000000");
        node.db = (int)d;
    }
    lua_pop(L, 1);
    node.connect_timeout = opt_seconds(L, "connect_timeout");
    node.timeout = opt_seconds(L, "timeout");
    node.pool_size = 1;
    lua_getfield(L, 1, "first");
    if (!lua_isnil(L, -1)) {
        double d = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
        if (!(d >= 1 && d <= n && d == (double)(int)d))
            return luaL_argerror(L, 1, "'first' must be an index in 'sentinels'");
        first = (int)d - 1;
    }
    lua_pop(L, 1);

    /* nothing below raises until the results are pushed */
    if (hc_sentinel_discover(&cfg, &node, &first, host, sizeof host, &port, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, host);
    lua_pushinteger(L, port);
    lua_pushinteger(L, first + 1);
    return 3;
}

void hc_lsentinel_register(lua_State *L)
{
    lua_pushcfunction(L, core_sentinel_master);
    lua_setfield(L, -2, "sentinel_master");
}
