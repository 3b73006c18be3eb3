/* hc_reply.c -- reply conversion (see hc_reply.h). */
#include "hc_reply.h"
#include "compat.h"

/* Registry key of the trampoline function (its address is unique). */
static const char converter_key = 'c';

typedef struct conv {
    redisReply **r;
    int n;
    int list; /* 0: one reply as (value | nil, err); 1: a table of replies */
} conv;

static void push_value(lua_State *L, const redisReply *r, int depth);

static void push_error_pair(lua_State *L, const redisReply *r)
{
    lua_createtable(L, 2, 0);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, r->str, r->len);
    lua_rawseti(L, -2, 2);
}

static void push_value(lua_State *L, const redisReply *r, int depth)
{
    size_t i;
    luaL_checkstack(L, 4, "reply nested too deeply");
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        hc_push_int64(L, r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (i = 0; i < r->elements; i++) {
            if (r->element[i]->type == REDIS_REPLY_ERROR)
                push_error_pair(L, r->element[i]);
            else
                push_value(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case REDIS_REPLY_ERROR:
        push_error_pair(L, r);
        break;
    default: /* REDIS_REPLY_NIL */
        lua_pushlightuserdata(L, NULL);
        break;
    }
}

static int converter(lua_State *L, void *ud)
{
    conv *cv = (conv *)ud;
    int i;
    if (!cv->list) {
        if (cv->r[0]->type == REDIS_REPLY_ERROR) {
            lua_pushnil(L);
            lua_pushlstring(L, cv->r[0]->str, cv->r[0]->len);
        } else {
            push_value(L, cv->r[0], 0);
            lua_pushnil(L);
        }
        return 2;
    }
    lua_createtable(L, cv->n, 0);
    for (i = 0; i < cv->n; i++) {
        push_value(L, cv->r[i], 0);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* One trampoline registered at luaopen; hc_pcall passes it the callback. */
typedef struct call {
    int (*fn)(lua_State *L, void *ud);
    void *ud;
} call;

static int trampoline(lua_State *L)
{
    call *c = (call *)lua_touserdata(L, 1);
    lua_remove(L, 1);
    return c->fn(L, c->ud);
}

void hc_reply_init(lua_State *L)
{
    lua_pushcfunction(L, trampoline);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &converter_key);
}

int hc_pcall(lua_State *L, int (*fn)(lua_State *L, void *ud), void *ud, int nargs, int nres)
{
    call c;
    c.fn = fn;
    c.ud = ud;
    /* None of the calls below allocates, so nothing can raise before pcall. */
    if (!lua_checkstack(L, 3)) return -1;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &converter_key);
    lua_pushlightuserdata(L, &c);
    lua_insert(L, -(nargs + 2)); /* ... ud args trampoline */
    lua_insert(L, -(nargs + 2)); /* ... trampoline ud args */
    return lua_pcall(L, nargs + 1, nres, 0);
}

static int run(lua_State *L, conv *cv, int nres)
{
    int i, status;
    status = hc_pcall(L, converter, cv, 0, nres);
    for (i = 0; i < cv->n; i++) freeReplyObject(cv->r[i]);
    if (status == -1) return luaL_error(L, "stack overflow");
    if (status != 0) return lua_error(L); /* the replies are already freed */
    return nres;
}

int hc_reply_push_one(lua_State *L, redisReply *r)
{
    conv cv;
    cv.r = &r;
    cv.n = 1;
    cv.list = 0;
    run(L, &cv, 2);
    if (!lua_isnil(L, -1)) return 2; /* nil, "ERR ..." */
    lua_pop(L, 1);
    return 1;
}

int hc_reply_push_list(lua_State *L, redisReply **r, int n)
{
    conv cv;
    cv.r = r;
    cv.n = n;
    cv.list = 1;
    return run(L, &cv, 1);
}
