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

#endif
