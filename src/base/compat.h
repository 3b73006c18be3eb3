/*
 * compat.h -- the few Lua C API differences between 5.1 (LuaJIT) and 5.4
 * that hicache.core uses. Include after lua.h / lauxlib.h.
 */
#ifndef HC_COMPAT_H
#define HC_COMPAT_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen(L, (i))
/* LuaJIT 2.1 already has these 5.2 auxiliary functions; PUC Lua 5.1 not. */
#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) lua_createtable(L, 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
static inline void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
static inline void *luaL_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (p == NULL || !lua_getmetatable(L, i)) return NULL;
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2)) p = NULL;
    lua_pop(L, 2);
    return p;
}
#endif /* luaL_newlibtable */
static inline void lua_rawsetp(lua_State *L, int i, const void *p)
{
    i = (i < 0 && i > LUA_REGISTRYINDEX) ? lua_gettop(L) + i + 1 : i;
    lua_pushlightuserdata(L, (void *)p);
    lua_insert(L, -2);
    lua_rawset(L, i);
}
static inline void lua_rawgetp(lua_State *L, int i, const void *p)
{
    i = (i < 0 && i > LUA_REGISTRYINDEX) ? lua_gettop(L) + i + 1 : i;
    lua_pushlightuserdata(L, (void *)p);
    lua_rawget(L, i);
}
/* 5.1 has no integer subtype: an integral number counts as an integer. */
static inline int hc_isinteger(lua_State *L, int i)
{
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
    n = lua_tonumber(L, i);
    /* range first: casting a double outside lua_Integer's range (or NaN)
     * to it is undefined behaviour */
    if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0)) return 0;
    if (n == 0 && signbit(n)) return 0; /* -0.0 stays a float, as in 5.4 */
    return n == (lua_Number)(lua_Integer)n;
}
#else
#define hc_isinteger(L, i) lua_isinteger(L, (i))
#endif

/* The argument error of an int64 argument, as each Lua names it. */
#if LUA_VERSION_NUM < 503
#define HC_INT_ARG(what) what " must be an integer (beyond 2^53: its decimal string)"
#else
#define HC_INT_ARG(what) what " must be an integer"
#endif

/* A 64-bit integer that Redis returned. Lua 5.3+: an integer. Lua 5.1
 * (LuaJIT): numbers are doubles, exact up to 2^53 -- a value beyond that
 * is pushed as its decimal string, so it stays exact (README, LuaJIT). */
static inline void hc_push_int64(lua_State *L, long long v)
{
#if LUA_VERSION_NUM < 503
    if (v > 9007199254740992LL || v < -9007199254740992LL) {
        char buf[24];
        lua_pushlstring(L, buf, (size_t)snprintf(buf, sizeof buf, "%lld", v));
        return;
    }
    lua_pushnumber(L, (lua_Number)v);
#else
    lua_pushinteger(L, (lua_Integer)v);
#endif
}

/* An int64 argument: an integer (5.1: an integral number within +-2^53),
 * or on Lua 5.1 also the decimal string of any int64 (what hc_push_int64
 * returns beyond 2^53). 0 on success, -1 when i holds neither. */
static inline int hc_toint64(lua_State *L, int i, long long *out)
{
    if (hc_isinteger(L, i)) {
#if LUA_VERSION_NUM < 503
        lua_Number n = lua_tonumber(L, i);
        if (n > 9007199254740992.0 || n < -9007199254740992.0) return -1;
#endif
        *out = (long long)lua_tointeger(L, i);
        return 0;
    }
#if LUA_VERSION_NUM < 503
    if (lua_type(L, i) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, i, &n);
        char *end;
        long long v;
        /* digits with an optional '-': no blanks or '+' that strtoll takes */
        if (n == 0 || n > 20 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))) return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || end != s + n) return -1;
        *out = v;
        return 0;
    }
#endif
    return -1;
}

#endif
