/*
 * hc_reply.h -- hiredis replies to Lua values, without leaks.
 *
 * Mapping (as lua-resty-redis): status -> string, integer -> integer,
 * bulk -> string, nil -> hicache.null (a NULL light userdata), array ->
 * table (a nested error becomes {false, "ERR ..."}), error -> nil, msg.
 *
 * The conversion runs in a protected call and the replies are freed before
 * any Lua error (out of memory, stack overflow) is re-raised, so no reply
 * can leak on any path.
 */
#ifndef HC_REPLY_H
#define HC_REPLY_H

#include <lua.h>
#include <hiredis/hiredis.h>

/* Registers the protected-call trampoline; call once from luaopen. */
void hc_reply_init(lua_State *L);

/* Runs fn(L, ud) in a protected call, with the nargs values on top of the
 * stack as its arguments (at indexes 1..nargs), without allocating before
 * the call, so a caller holding C memory can free it before re-raising.
 * Returns the lua_pcall status (the error message on the stack), or -1
 * when the stack cannot grow (nothing pushed, arguments left in place). */
int hc_pcall(lua_State *L, int (*fn)(lua_State *L, void *ud), void *ud, int nargs, int nres);

/* Pushes reply as (value) or, for an error reply, (nil, msg); frees it. */
int hc_reply_push_one(lua_State *L, redisReply *r);

/* Pushes a table of n replies, an error reply as {false, msg}; frees all. */
int hc_reply_push_list(lua_State *L, redisReply **r, int n);

#endif
