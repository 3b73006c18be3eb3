/*
 * hc_lproto.c -- Lua bindings of the protocol core, for transports written
 * in Lua (an OpenResty cosocket, LuaSocket, a test that feeds one byte at
 * a time):
 *
 *   core.format(cmds)         -> RESP bytes of a list of commands
 *   core.reader()             -> r; r:feed(bytes) -> true | nil, err;
 *                                r:next() -> true, value | false (needs
 *                                more bytes) | nil, err (error reply or
 *                                protocol error)
 *   core.xio()                -> x, one operation's rounds (hc_xio.h);
 *                                x:request() -> bytes, nreplies, timeout
 *                                (nil when no round waits); x:feed(bytes)
 *                                -> true (the round is complete) | false |
 *                                nil, err; x:fail(err) answers the round
 *                                with the transport's error (the operation
 *                                then fails as on the blocking path);
 *                                x:retryable() -> true when the pending
 *                                round only reads and got no reply byte;
 *                                x:reset() makes it new for another
 *                                operation (a transport may keep a few);
 *                                x:state([s]) -> the state (MULTI, WATCH,
 *                                SELECT...) the rounds leave a connection in
 *   core.step(cache, x, method, ...) -> core.PENDING, or what
 *                                cache:method(...) returns: runs one C
 *                                method of the cache with x as its
 *                                transport (see docs/DESIGN.md).
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "hc_args.h"
#include "hc_client.h"
#include "hc_proto.h"
#include "hc_reply.h"
#include "hc_xio.h"

#define READER_MT "hicache.reader"
#define XIO_MT "hicache.xio"
#define BOX_MT "hicache.bytes"

/* A malloc'd buffer owned by a userdata, so a raise cannot leak it. */
typedef struct box {
    char *p;
} box;

static int box_gc(lua_State *L)
{
    box *b = (box *)luaL_checkudata(L, 1, BOX_MT);
    hc_proto_free(b->p);
    b->p = NULL;
    return 0;
}

static int l_format(lua_State *L)
{
    hc_cmd *cmds;
    box *b;
    long len;
    int n;

    luaL_checktype(L, 1, LUA_TTABLE);
    cmds = hc_args_from_list(L, 1, &n); /* GC-owned; raises on a bad command */
    if (n == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    b = (box *)lua_newuserdata(L, sizeof *b);
    b->p = NULL;
    luaL_getmetatable(L, BOX_MT);
    lua_setmetatable(L, -2);
    len = hc_proto_format(n, cmds, &b->p);
    if (len < 0) return luaL_error(L, "out of memory");
    lua_pushlstring(L, b->p, (size_t)len);
    hc_proto_free(b->p);
    b->p = NULL;
    return 1;
}

/* ---- reader --------------------------------------------------------------- */

typedef struct lreader {
    redisReader *r;
} lreader;

static lreader *check_reader(lua_State *L)
{
    return (lreader *)luaL_checkudata(L, 1, READER_MT);
}

static int l_reader(lua_State *L)
{
    lreader *lr = (lreader *)lua_newuserdata(L, sizeof *lr);
    lr->r = NULL;
    luaL_getmetatable(L, READER_MT);
    lua_setmetatable(L, -2);
    if ((lr->r = hc_proto_reader()) == NULL) return luaL_error(L, "out of memory");
    return 1;
}

static int reader_gc(lua_State *L)
{
    lreader *lr = check_reader(L);
    if (lr->r) redisReaderFree(lr->r);
    lr->r = NULL;
    return 0;
}

static int reader_feed(lua_State *L)
{
    lreader *lr = check_reader(L);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (lr->r == NULL || lr->r->err) return hc_fail(L, "protocol error");
    if (hc_proto_feed(lr->r, s, n) != 0) return hc_fail(L, "out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

static int reader_next(lua_State *L)
{
    lreader *lr = check_reader(L);
    redisReply *r;
    int rc, k;
    if (lr->r == NULL) return hc_fail(L, "protocol error");
    rc = hc_proto_next(lr->r, &r);
    if (rc < 0) return hc_fail(L, "protocol error");
    if (rc == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (r->type == REDIS_REPLY_ERROR) return hc_reply_push_one(L, r); /* nil, msg */
    lua_pushboolean(L, 1);
    k = hc_reply_push_one(L, r); /* frees r, also when converting raises */
    return 1 + k;
}

/* ---- xio -------------------------------------------------------------------- */

typedef struct lxio {
    hc_xio *x;
} lxio;

static lxio *check_xio(lua_State *L, int i)
{
    lxio *lx = (lxio *)luaL_checkudata(L, i, XIO_MT);
    if (lx->x == NULL) luaL_argerror(L, i, "xio is closed");
    return lx;
}

static int l_xio(lua_State *L)
{
    lxio *lx = (lxio *)lua_newuserdata(L, sizeof *lx);
    lx->x = NULL;
    luaL_getmetatable(L, XIO_MT);
    lua_setmetatable(L, -2);
    if ((lx->x = hc_xio_new()) == NULL) return luaL_error(L, "out of memory");
    return 1;
}

static int xio_gc(lua_State *L)
{
    lxio *lx = (lxio *)luaL_checkudata(L, 1, XIO_MT);
    hc_xio_free(lx->x);
    lx->x = NULL;
    return 0;
}

static int xio_request(lua_State *L)
{
    lxio *lx = check_xio(L, 1);
    size_t len;
    int n;
    double timeout;
    const char *req = hc_xio_request(lx->x, &len, &n, &timeout);
    if (req == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, req, len);
    lua_pushinteger(L, n);
    lua_pushnumber(L, (lua_Number)timeout);
    return 3;
}

static int xio_feed(lua_State *L)
{
    lxio *lx = check_xio(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int rc;
    if (!hc_xio_pending(lx->x)) return luaL_argerror(L, 1, "no round waits for a reply");
    rc = hc_xio_feed(lx->x, s, n);
    if (rc < 0) return hc_fail(L, "protocol error");
    lua_pushboolean(L, rc);
    return 1;
}

/* x:state([state]) -> the connection state the rounds sent so far leave
 * (0: none; bits of hc_cmd.h); state: where the connection starts from */
static int xio_state(lua_State *L)
{
    lxio *lx = check_xio(L, 1);
    if (!lua_isnoneornil(L, 2)) hc_xio_set_state(lx->x, (unsigned)luaL_checkinteger(L, 2));
    lua_pushinteger(L, (lua_Integer)hc_xio_state(lx->x));
    return 1;
}

static int xio_reset(lua_State *L)
{
    lxio *lx = check_xio(L, 1);
    hc_xio_reset(lx->x);
    return 0;
}

static int xio_retryable(lua_State *L)
{
    lxio *lx = check_xio(L, 1);
    lua_pushboolean(L, hc_xio_idempotent(lx->x));
    return 1;
}

static int xio_fail(lua_State *L)
{
    lxio *lx = check_xio(L, 1);
    const char *err = luaL_optstring(L, 2, "connection closed");
    if (!hc_xio_pending(lx->x)) return luaL_argerror(L, 1, "no round waits for a reply");
    if (hc_xio_fail(lx->x, err) != 0) return luaL_error(L, "out of memory");
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- step --------------------------------------------------------------------- */

static int pending_key;

static int l_step(lua_State *L)
{
    client *cl = (client *)luaL_checkudata(L, 1, CLIENT_MT);
    lxio *lx = check_xio(L, 2);
    const char *name = luaL_checkstring(L, 3);
    int top = lua_gettop(L), base, status, i;

    if (hc_xio_pending(lx->x)) return luaL_argerror(L, 2, "a round still waits for its reply (feed it first)");
    if (cl->xio) return luaL_error(L, "core.step cannot nest");
    if (luaL_getmetafield(L, 1, "__index") == 0 || !lua_istable(L, -1))
        return luaL_error(L, "cache has no methods");
    lua_getfield(L, -1, name);
    if (!lua_iscfunction(L, -1))
        return luaL_argerror(L, 3, lua_pushfstring(L, "'%s' is not an operation of the C core", name));
    lua_remove(L, -2);
    base = lua_gettop(L); /* the method */
    lua_pushvalue(L, 1);
    for (i = 4; i <= top; i++) lua_pushvalue(L, i);
    hc_xio_begin_run(lx->x);
    cl->xio = lx->x;
    status = lua_pcall(L, top - 2, LUA_MULTRET, 0);
    cl->xio = NULL;
    if (status != 0) return lua_error(L); /* the method's own error, unchanged */
    if (hc_xio_pending(lx->x)) {
        lua_settop(L, base - 1);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key);
        return 1;
    }
    return lua_gettop(L) - base + 1;
}

static const luaL_Reg reader_methods[] = {
    {"feed", reader_feed},
    {"next", reader_next},
    {NULL, NULL},
};

static const luaL_Reg xio_methods[] = {
    {"request", xio_request},
    {"feed", xio_feed},
    {"fail", xio_fail},
    {"retryable", xio_retryable},
    {"reset", xio_reset},
    {"state", xio_state},
    {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"format", l_format},
    {"reader", l_reader},
    {"xio", l_xio},
    {"step", l_step},
    {NULL, NULL},
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

void hc_lproto_register(lua_State *L)
{
    new_class(L, BOX_MT, NULL, box_gc);
    new_class(L, READER_MT, reader_methods, reader_gc);
    new_class(L, XIO_MT, xio_methods, xio_gc);
    luaL_setfuncs(L, functions, 0);
    lua_newtable(L); /* core.PENDING: a unique value */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
    lua_setfield(L, -2, "PENDING");
}
