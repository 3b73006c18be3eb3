/* hc_cmd.c -- command state tracking (see hc_cmd.h). */
#include "hc_cmd.h"

#include <ctype.h>
#include <string.h>

/* Case-insensitive compare of a binary argument with a NUL-terminated name. */
static int arg_is(const char *arg, size_t len, const char *name)
{
    size_t i;
    if (strlen(name) != len) return 0;
    for (i = 0; i < len; i++)
        if (toupper((unsigned char)arg[i]) != name[i]) return 0;
    return 1;
}

static int any_of(const char *arg, size_t len, const char *const *names)
{
    for (; *names; names++)
        if (arg_is(arg, len, *names)) return 1;
    return 0;
}

unsigned hc_cmd_track(unsigned state, const hc_cmd *cmd)
{
    static const char *const dirty[] = {
        "SELECT", "AUTH", "HELLO", "RESET", "SUBSCRIBE", "PSUBSCRIBE",
        "SSUBSCRIBE", "MONITOR", "READONLY", "READWRITE", "QUIT", "SYNC",
        "PSYNC", NULL};
    static const char *const dirty_client[] = {"REPLY", "TRACKING", "NO-EVICT", NULL};
    const char *a;
    size_t n;

    if (cmd->argc < 1) return state;
    a = cmd->argv[0];
    n = cmd->argvlen[0];
    if (arg_is(a, n, "MULTI")) return state | HC_ST_MULTI;
    if (arg_is(a, n, "EXEC") || arg_is(a, n, "DISCARD"))
        return state & ~(HC_ST_MULTI | HC_ST_WATCH);
    if (arg_is(a, n, "WATCH")) return state | HC_ST_WATCH;
    if (arg_is(a, n, "UNWATCH")) return state & ~HC_ST_WATCH;
    if (any_of(a, n, dirty)) return state | HC_ST_DIRTY;
    if (arg_is(a, n, "CLIENT") && cmd->argc > 1 &&
        any_of(cmd->argv[1], cmd->argvlen[1], dirty_client))
        return state | HC_ST_DIRTY;
    return state;
}
