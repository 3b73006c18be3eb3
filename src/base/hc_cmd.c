/* hc_cmd.c -- command state tracking (see hc_cmd.h). */
#include "hc_cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Commands that only read: running one twice changes nothing. */
static const struct rule reads[] = {
#define R(name) {name, sizeof name - 1, 0}
    R("GET"), R("MGET"), R("EXISTS"), R("PTTL"), R("TTL"), R("STRLEN"), R("TYPE"),
    R("GETRANGE"), R("PING"), R("ECHO"), R("SCAN"), R("HGET"), R("HMGET"), R("HGETALL"),
    R("HEXISTS"), R("HLEN"), R("LRANGE"), R("LLEN"), R("LINDEX"), R("SMEMBERS"),
    R("SISMEMBER"), R("SCARD"), R("ZRANGE"), R("ZSCORE"), R("ZCARD"), R("DBSIZE"),
    R("INFO"), R("TIME"), R("OBJECT"), R("MEMORY"),
#undef R
};

int hc_cmd_idempotent(const hc_cmd *cmd)
{
    size_t i;
    if (cmd->argc < 1) return 0;
    for (i = 0; i < sizeof reads / sizeof reads[0]; i++)
        if (arg_is(cmd->argv[0], cmd->argvlen[0], reads[i].name, reads[i].len)) return 1;
    /* SCRIPT LOAD only stores the script under its own SHA */
    return cmd->argc == 3 && arg_is(cmd->argv[0], cmd->argvlen[0], "SCRIPT", 6) &&
           arg_is(cmd->argv[1], cmd->argvlen[1], "LOAD", 4);
}

/* ---- keys, for a router ------------------------------------------------- */

static const struct rule keyless[] = {
#define R(name, any) {name, sizeof name - 1, any}
    R("PING", 1), R("ECHO", 1), R("TIME", 1),
    R("INFO", 0), R("DBSIZE", 0), R("FLUSHDB", 0), R("FLUSHALL", 0), R("SCAN", 0),
    R("KEYS", 0), R("RANDOMKEY", 0), R("CLIENT", 0), R("CONFIG", 0), R("CLUSTER", 0),
    R("SCRIPT", 0), R("FUNCTION", 0), R("MULTI", 0), R("EXEC", 0), R("DISCARD", 0),
    R("UNWATCH", 0), R("SELECT", 0), R("AUTH", 0), R("HELLO", 0), R("COMMAND", 0),
    R("DEBUG", 0), R("SAVE", 0), R("BGSAVE", 0), R("BGREWRITEAOF", 0), R("LASTSAVE", 0),
    R("MONITOR", 0), R("SLOWLOG", 0), R("LATENCY", 0), R("LOLWUT", 0), R("SHUTDOWN", 0),
    R("SWAPDB", 0), R("REPLICAOF", 0), R("SLAVEOF", 0), R("ACL", 0), R("SENTINEL", 0),
    R("ROLE", 0), R("WAIT", 0), R("READONLY", 0), R("READWRITE", 0), R("QUIT", 0),
    R("RESET", 0), R("SUBSCRIBE", 0), R("PSUBSCRIBE", 0), R("UNSUBSCRIBE", 0),
    R("PUNSUBSCRIBE", 0), R("PUBLISH", 0), R("PUBSUB", 0), R("FAILOVER", 0),
    R("MODULE", 0), R("MIGRATE", 0), R("ASKING", 0), R("SYNC", 0), R("PSYNC", 0),
    R("WAITAOF", 0), R("MEMORY", 0),
#undef R
};

static const struct rule each[] = {
#define R(name) {name, sizeof name - 1, 0}
    R("MGET"), R("DEL"), R("UNLINK"), R("EXISTS"), R("TOUCH"),
#undef R
};

static int is(const hc_cmd *cmd, int i, const char *name)
{
    return i < cmd->argc && arg_is(cmd->argv[i], cmd->argvlen[i], name, strlen(name));
}

/* numkeys at argv[at], keys after it */
static int after_numkeys(const hc_cmd *cmd, int at, int *first)
{
    char buf[24];
    size_t n;
    if (at >= cmd->argc || (n = cmd->argvlen[at]) == 0 || n >= sizeof buf) return HC_KEYS_NONE;
    memcpy(buf, cmd->argv[at], n);
    buf[n] = '\0';
    if (atol(buf) <= 0 || at + 1 >= cmd->argc) return HC_KEYS_NONE;
    *first = at + 1;
    return HC_KEYS_ONE;
}

int hc_cmd_keys(const hc_cmd *cmd, int *first)
{
    size_t i;
    int j;
    *first = 0;
    if (cmd->argc < 1) return HC_KEYS_NONE;
    if (is(cmd, 0, "GET") || is(cmd, 0, "SET")) { /* the common case first */
        *first = 1;
        return cmd->argc > 1 ? HC_KEYS_ONE : HC_KEYS_NONE;
    }
    if (is(cmd, 0, "EVALSHA") || is(cmd, 0, "EVAL") || is(cmd, 0, "EVAL_RO") ||
        is(cmd, 0, "EVALSHA_RO") || is(cmd, 0, "FCALL") || is(cmd, 0, "FCALL_RO"))
        return after_numkeys(cmd, 2, first);
    if (is(cmd, 0, "BLMPOP") || is(cmd, 0, "BZMPOP")) return after_numkeys(cmd, 2, first);
    if (is(cmd, 0, "LMPOP") || is(cmd, 0, "ZMPOP") || is(cmd, 0, "SINTERCARD") ||
        is(cmd, 0, "ZUNION") || is(cmd, 0, "ZINTER") || is(cmd, 0, "ZDIFF") || is(cmd, 0, "ZINTERCARD"))
        return after_numkeys(cmd, 1, first);
    if (is(cmd, 0, "XREAD") || is(cmd, 0, "XREADGROUP")) {
        for (j = 1; j + 1 < cmd->argc; j++)
            if (is(cmd, j, "STREAMS")) {
                *first = j + 1;
                return HC_KEYS_ONE;
            }
        return HC_KEYS_NONE;
    }
    if (is(cmd, 0, "OBJECT") || is(cmd, 0, "XINFO") || (is(cmd, 0, "MEMORY") && is(cmd, 1, "USAGE"))) {
        if (cmd->argc < 3) return HC_KEYS_NONE;
        *first = 2;
        return HC_KEYS_ONE;
    }
    for (i = 0; i < sizeof keyless / sizeof keyless[0]; i++)
        if (arg_is(cmd->argv[0], cmd->argvlen[0], keyless[i].name, keyless[i].len))
            return keyless[i].effect ? HC_KEYS_ANY : HC_KEYS_NONE;
    if (cmd->argc < 2) return HC_KEYS_NONE;
    *first = 1;
    for (i = 0; i < sizeof each / sizeof each[0]; i++)
        if (arg_is(cmd->argv[0], cmd->argvlen[0], each[i].name, each[i].len)) return HC_KEYS_EACH;
    return HC_KEYS_ONE;
}

/* ---- hc_cmdb ------------------------------------------------------------ */

void hc_cmdb_init(hc_cmdb *b)
{
    b->bytes = b->in_bytes;
    b->nbytes = 0;
    b->capbytes = HC_CMDB_BYTES;
    b->args = b->in_args;
    b->nargs = 0;
    b->capargs = HC_CMDB_ARGS;
    b->ends = b->in_ends;
    b->ncmds = 0;
    b->capcmds = HC_CMDB_CMDS;
    b->argv = NULL;
    b->lens = NULL;
    b->cmds = NULL;
    b->oom = 0;
}

static void free_if_heap(void *p, const void *inline_storage)
{
    if (p != inline_storage) free(p);
}

void hc_cmdb_free(hc_cmdb *b)
{
    free_if_heap(b->bytes, b->in_bytes);
    free_if_heap(b->args, b->in_args);
    free_if_heap(b->ends, b->in_ends);
    if (b->argv) free_if_heap((void *)b->argv, b->in_argv);
    if (b->lens) free_if_heap(b->lens, b->in_lens);
    if (b->cmds) free_if_heap(b->cmds, b->in_cmds);
    hc_cmdb_init(b);
}

/* Grows *p (cap elements of size sz, in inline storage `in` or on the
 * heap) to hold need elements. */
static int grow(void **p, const void *in, int *cap, int need, size_t sz)
{
    int c = *cap;
    void *q;
    if (need <= *cap) return 0;
    while (c < need) c *= 2;
    if (*p == in) {
        q = malloc((size_t)c * sz);
        if (q != NULL) memcpy(q, in, (size_t)*cap * sz);
    } else {
        q = realloc(*p, (size_t)c * sz);
    }
    if (q == NULL) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static hc_cmdb_arg *new_arg(hc_cmdb *b)
{
    if (b->oom || grow((void **)&b->args, b->in_args, &b->capargs, b->nargs + 1, sizeof *b->args) != 0) {
        b->oom = 1;
        return NULL;
    }
    return &b->args[b->nargs++];
}

void hc_cmdb_add(hc_cmdb *b, const char *s, size_t n)
{
    hc_cmdb_arg *a;
    if (n > b->capbytes - b->nbytes) {
        size_t cap = b->capbytes;
        char *q;
        while (cap - b->nbytes < n) {
            if (cap > ((size_t)-1) / 2) { b->oom = 1; return; }
            cap *= 2;
        }
        if (b->bytes == b->in_bytes) {
            q = (char *)malloc(cap);
            if (q != NULL) memcpy(q, b->in_bytes, b->nbytes);
        } else {
            q = (char *)realloc(b->bytes, cap);
        }
        if (q == NULL) { b->oom = 1; return; }
        b->bytes = q;
        b->capbytes = cap;
    }
    a = new_arg(b);
    if (a == NULL) return;
    if (n) memcpy(b->bytes + b->nbytes, s, n);
    a->ref = NULL;
    a->off = b->nbytes;
    a->len = n;
    b->nbytes += n;
}

void hc_cmdb_str(hc_cmdb *b, const char *s)
{
    hc_cmdb_add(b, s, strlen(s));
}

void hc_cmdb_int(hc_cmdb *b, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", v);
    hc_cmdb_add(b, num, (size_t)n);
}

void hc_cmdb_ref(hc_cmdb *b, const char *s, size_t n)
{
    hc_cmdb_arg *a = new_arg(b);
    if (a == NULL) return;
    a->ref = s ? s : "";
    a->off = 0;
    a->len = n;
}

void hc_cmdb_end(hc_cmdb *b)
{
    if (b->oom || grow((void **)&b->ends, b->in_ends, &b->capcmds, b->ncmds + 1, sizeof *b->ends) != 0) {
        b->oom = 1;
        return;
    }
    b->ends[b->ncmds++] = b->nargs;
}

int hc_cmdb_finish(hc_cmdb *b)
{
    int i, c;
    if (b->oom) return -1;
    if (b->argv) free_if_heap((void *)b->argv, b->in_argv);
    if (b->lens) free_if_heap(b->lens, b->in_lens);
    if (b->cmds) free_if_heap(b->cmds, b->in_cmds);
    if (b->nargs <= HC_CMDB_ARGS) {
        b->argv = b->in_argv;
        b->lens = b->in_lens;
    } else {
        b->argv = (const char **)malloc((size_t)b->nargs * sizeof *b->argv);
        b->lens = (size_t *)malloc((size_t)b->nargs * sizeof *b->lens);
    }
    b->cmds = b->ncmds <= HC_CMDB_CMDS ? b->in_cmds : (hc_cmd *)malloc((size_t)b->ncmds * sizeof *b->cmds);
    if (b->argv == NULL || b->lens == NULL || b->cmds == NULL) {
        b->oom = 1;
        return -1;
    }
    for (i = 0; i < b->nargs; i++) {
        b->argv[i] = b->args[i].ref ? b->args[i].ref : b->bytes + b->args[i].off;
        b->lens[i] = b->args[i].len;
    }
    for (c = 0, i = 0; c < b->ncmds; c++) {
        b->cmds[c].argc = b->ends[c] - i;
        b->cmds[c].argv = b->argv + i;
        b->cmds[c].argvlen = b->lens + i;
        i = b->ends[c];
    }
    return 0;
}
