/*
 * hc_cmd.h -- a Redis command as an argument vector, and the connection
 * state a command leaves behind. Nothing here touches a socket: any
 * transport (blocking hiredis, a cosocket, cqueues) can drive these.
 */
#ifndef HC_CMD_H
#define HC_CMD_H

#include <stddef.h>

/* A command: argc binary-safe arguments. The strings are borrowed. */
typedef struct hc_cmd {
    int argc;
    const char **argv;
    const size_t *argvlen;
} hc_cmd;

/* Connection state bits that a command can set (see hc_cmd_track). */
#define HC_ST_MULTI 0x1u /* inside MULTI: reset with DISCARD            */
#define HC_ST_WATCH 0x2u /* keys WATCHed: reset with UNWATCH            */
#define HC_ST_DIRTY 0x4u /* state no command can undo: close on release */

/*
 * Returns the state after `cmd` runs on a connection in state `state`.
 * MULTI sets HC_ST_MULTI; WATCH sets HC_ST_WATCH; EXEC, DISCARD clear both;
 * UNWATCH clears HC_ST_WATCH. SELECT, AUTH, HELLO, RESET, (P|S)SUBSCRIBE,
 * MONITOR, CLIENT REPLY|TRACKING|NO-EVICT, READONLY, READWRITE, QUIT and
 * (P)SYNC set HC_ST_DIRTY: the pool closes such a connection on release
 * because it no longer matches the pool's settings.
 */
unsigned hc_cmd_track(unsigned state, const hc_cmd *cmd);

/*
 * 1 when running cmd twice has the effect of running it once: a read
 * (GET, MGET, EXISTS, PTTL, SCAN, ...) or SCRIPT LOAD. Only such commands
 * are retried on a fresh connection after the pooled one was found closed.
 */
int hc_cmd_idempotent(const hc_cmd *cmd);

/*
 * Where a command's keys are, for a router (Redis Cluster). Returns:
 *   HC_KEYS_NONE  no key: which node should run it is ambiguous (INFO,
 *                 SCAN, FLUSHDB, MULTI, CLIENT, an EVAL with 0 keys, ...)
 *   HC_KEYS_ANY   no key, and any node may answer (PING, ECHO, TIME)
 *   HC_KEYS_ONE   argv[*first] is its first key; its other keys, if any,
 *                 must share that key's slot (the server checks: CROSSSLOT)
 *   HC_KEYS_EACH  every argument from argv[*first] on is a key and the
 *                 command may be split by slot (MGET, DEL, UNLINK, EXISTS,
 *                 TOUCH): the results are merged (arrays joined in order,
 *                 integers added)
 * Commands not known to be key-less take argv[1] as their first key;
 * EVAL/EVALSHA/FCALL (and _RO) take it after numkeys, XREAD/XREADGROUP
 * after STREAMS, OBJECT/MEMORY USAGE/XINFO at argv[2].
 */
enum { HC_KEYS_NONE = 0, HC_KEYS_ANY, HC_KEYS_ONE, HC_KEYS_EACH };
int hc_cmd_keys(const hc_cmd *cmd, int *first);

/*
 * hc_cmdb: builds a pipeline of commands in C-owned memory, for callers
 * that must not raise (a reply may be held). Arguments are copied (add) or
 * borrowed (ref: the caller keeps the bytes alive until the commands have
 * run). Nothing fails before hc_cmdb_finish: an allocation failure is
 * remembered and reported there. Free with hc_cmdb_free on every path.
 */
typedef struct hc_cmdb_arg {
    const char *ref;   /* borrowed bytes, or NULL: copied at `off` */
    size_t off, len;
} hc_cmdb_arg;

/* Small pipelines (one command of a few keys: the common case) live in
 * the struct itself; larger ones move to the heap. The struct points into
 * itself: build it in place, never copy it. */
#define HC_CMDB_BYTES 512
#define HC_CMDB_ARGS 24
#define HC_CMDB_CMDS 4

typedef struct hc_cmdb {
    char *bytes;
    size_t nbytes, capbytes;
    hc_cmdb_arg *args;
    int nargs, capargs;
    int *ends;          /* ends[i]: one past the last argument of command i */
    int ncmds, capcmds;
    const char **argv;  /* built by hc_cmdb_finish */
    size_t *lens;
    hc_cmd *cmds;
    int oom;
    char in_bytes[HC_CMDB_BYTES];
    hc_cmdb_arg in_args[HC_CMDB_ARGS];
    int in_ends[HC_CMDB_CMDS];
    const char *in_argv[HC_CMDB_ARGS];
    size_t in_lens[HC_CMDB_ARGS];
    hc_cmd in_cmds[HC_CMDB_CMDS];
} hc_cmdb;

void hc_cmdb_init(hc_cmdb *b);
void hc_cmdb_add(hc_cmdb *b, const char *s, size_t n);
void hc_cmdb_str(hc_cmdb *b, const char *s);
void hc_cmdb_int(hc_cmdb *b, long long v);
void hc_cmdb_ref(hc_cmdb *b, const char *s, size_t n);
/* Ends the command being built (a command needs at least one argument). */
void hc_cmdb_end(hc_cmdb *b);
/* The commands (b->cmds, b->ncmds), or -1 when memory ran out. */
int hc_cmdb_finish(hc_cmdb *b);
void hc_cmdb_free(hc_cmdb *b);

#endif
