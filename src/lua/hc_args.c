/* hc_args.c -- Lua arguments to command vectors (see hc_args.h). */
#include "hc_args.h"
#include "compat.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Leaves the argument at idx as a string in place (numbers converted
 * exactly) and returns it; 0 sets *why for a value that cannot be sent. */
static const char *to_arg(lua_State *L, int idx, size_t *len, const char **why)
{
    char buf[64];
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return lua_tolstring(L, idx, len);
    case LUA_TNUMBER:
        if (hc_isinteger(L, idx)) {
            snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (isnan(d)) { *why = "NaN cannot be sent"; return NULL; }
            if (isinf(d)) snprintf(buf, sizeof buf, "%s", d > 0 ? "inf" : "-inf");
            else snprintf(buf, sizeof buf, "%.17g", d);
        }
        lua_pushstring(L, buf);
        lua_replace(L, idx);
        return lua_tolstring(L, idx, len);
    default:
        *why = lua_typename(L, lua_type(L, idx));
        return NULL;
    }
}

static int arg_error(lua_State *L, int arg, const char *why, int is_type)
{
    if (is_type)
        return luaL_argerror(L, arg, lua_pushfstring(L, "string or number expected, got %s", why));
    return luaL_argerror(L, arg, why);
}

void hc_args_from_stack(lua_State *L, int first, int last, hc_cmd *cmd,
                        const char **argv, size_t *lens)
{
    int i, n = last - first + 1;
    if (n < 1) luaL_argerror(L, first, "command name expected");
    if (n > HC_ARGS_STACK) {
        void *ud = lua_newuserdata(L, (size_t)n * (sizeof *argv + sizeof *lens));
        lens = (size_t *)ud;
        argv = (const char **)(lens + n);
    }
    for (i = 0; i < n; i++) {
        const char *why = NULL;
        argv[i] = to_arg(L, first + i, &lens[i], &why);
        if (argv[i] == NULL) arg_error(L, first + i, why, lua_type(L, first + i) != LUA_TNUMBER);
    }
    cmd->argc = n;
    cmd->argv = argv;
    cmd->argvlen = lens;
}

hc_cmd *hc_args_from_list(lua_State *L, int idx, int *n)
{
    int i, j, ncmd, total = 0, k = 0, anchor;
    size_t need;
    hc_cmd *cmds;
    const char **argv;
    size_t *lens;

    luaL_checktype(L, idx, LUA_TTABLE);
    ncmd = (int)lua_rawlen(L, idx);
    for (i = 1; i <= ncmd; i++) {
        int argc;
        lua_rawgeti(L, idx, i);
        if (!lua_istable(L, -1))
            luaL_argerror(L, idx, lua_pushfstring(L, "command #%d is not a table", i));
        argc = (int)lua_rawlen(L, -1);
        if (argc < 1)
            luaL_argerror(L, idx, lua_pushfstring(L, "command #%d is empty", i));
        total += argc;
        lua_pop(L, 1);
    }
    need = (size_t)ncmd * sizeof *cmds + (size_t)total * (sizeof *lens + sizeof *argv);
    cmds = (hc_cmd *)lua_newuserdata(L, need > 0 ? need : 1);
    lens = (size_t *)(cmds + ncmd);
    argv = (const char **)(lens + total);
    lua_createtable(L, total, 0); /* anchors every string until the call ends */
    anchor = lua_gettop(L);
    for (i = 1; i <= ncmd; i++) {
        int argc;
        lua_rawgeti(L, idx, i);
        argc = (int)lua_rawlen(L, -1);
        cmds[i - 1].argc = argc;
        cmds[i - 1].argv = argv + k;
        cmds[i - 1].argvlen = lens + k;
        for (j = 1; j <= argc; j++, k++) {
            const char *why = NULL;
            lua_rawgeti(L, -1, j);
            argv[k] = to_arg(L, -1, &lens[k], &why);
            if (argv[k] == NULL)
                luaL_argerror(L, idx, lua_pushfstring(L, "command #%d, argument #%d: %s%s", i, j,
                    lua_type(L, -1) == LUA_TNUMBER ? "" : "string or number expected, got ", why));
            lua_rawseti(L, anchor, k + 1);
        }
        lua_pop(L, 1);
    }
    *n = ncmd;
    return cmds;
}
