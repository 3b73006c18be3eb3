/*
 * hc_args.h -- Lua values to hc_cmd argument vectors.
 *
 * These functions may raise Lua errors (bad argument, out of memory), so
 * call them before borrowing a connection. All memory they use belongs to
 * the Lua GC (userdata, or the caller's stack buffer), so a raise leaks
 * nothing.
 */
#ifndef HC_ARGS_H
#define HC_ARGS_H

#include <lua.h>
#include "hc_cmd.h"

#define HC_ARGS_STACK 32 /* commands up to this many arguments skip the heap */

/* Builds one command from stack slots first..last (strings, or numbers
 * formatted exactly and put back into their slots). argv/lens must hold
 * HC_ARGS_STACK entries; larger commands use a userdata pushed on the
 * stack. Raises luaL_argerror naming the bad argument. */
void hc_args_from_stack(lua_State *L, int first, int last, hc_cmd *cmd,
                        const char **argv, size_t *lens);

/* Builds the commands of a pipeline from the list at stack index idx
 * ({{"SET","k",1},{"GET","k"}}). Pushes one userdata (the vectors) and one
 * table (anchoring every argument string); returns the command array and
 * sets *n. Raises an argument error naming the command and argument. */
hc_cmd *hc_args_from_list(lua_State *L, int idx, int *n);

#endif
