/* hc_cmd.c -- command state tracking (see hc_cmd.h). */
#include "hc_cmd.h"

#include <ctype.h>
#include <string.h>

/* Case-insensitive compare of a binary argument with an upper-case name. */
static int arg_is(const char *arg, size_t len, const char *name, size_t name_len)
{
    size_t i;
    if (name_len != len) return 0;
    for (i = 0; i < len; i++)
        if (toupper((unsigned char)arg[i]) != name[i]) return 0;
    return 1;
}

enum { SET_MULTI, CLEAR_TX, SET_WATCH, CLEAR_WATCH, DIRTY, CLIENT };

static const struct rule {
    const char *name;
    size_t len;
    int effect;
} rules[] = {
#define R(name, effect) {name, sizeof name - 1, effect}
    R("MULTI", SET_MULTI), R("EXEC", CLEAR_TX), R("DISCARD", CLEAR_TX),
    R("WATCH", SET_WATCH), R("UNWATCH", CLEAR_WATCH), R("SELECT", DIRTY),
    R("AUTH", DIRTY), R("HELLO", DIRTY), R("RESET", DIRTY), R("SUBSCRIBE", DIRTY),
    R("PSUBSCRIBE", DIRTY), R("SSUBSCRIBE", DIRTY), R("MONITOR", DIRTY),
    R("READONLY", DIRTY), R("READWRITE", DIRTY), R("QUIT", DIRTY), R("SYNC", DIRTY),
    R("PSYNC", DIRTY), R("CLIENT", CLIENT),
#undef R
};

static const struct rule client_dirty[] = {
    {"REPLY", 5, DIRTY}, {"TRACKING", 8, DIRTY}, {"NO-EVICT", 8, DIRTY},
};

unsigned hc_cmd_track(unsigned state, const hc_cmd *cmd)
{
    const char *a;
    size_t n, i;

    if (cmd->argc < 1) return state;
    a = cmd->argv[0];
    n = cmd->argvlen[0];
    if (n < 4 || n > 10) return state; /* GET, SET, DEL, ...: the common case */
    for (i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (!arg_is(a, n, rules[i].name, rules[i].len)) continue;
        switch (rules[i].effect) {
        case SET_MULTI: return state | HC_ST_MULTI;
        case CLEAR_TX: return state & ~(HC_ST_MULTI | HC_ST_WATCH);
        case SET_WATCH: return state | HC_ST_WATCH;
        case CLEAR_WATCH: return state & ~HC_ST_WATCH;
        case DIRTY: return state | HC_ST_DIRTY;
        default: /* CLIENT: only some subcommands */
            if (cmd->argc > 1) {
                size_t j;
                for (j = 0; j < sizeof client_dirty / sizeof client_dirty[0]; j++)
                    if (arg_is(cmd->argv[1], cmd->argvlen[1], client_dirty[j].name, client_dirty[j].len))
                        return state | HC_ST_DIRTY;
            }
            return state;
        }
    }
    return state;
}
