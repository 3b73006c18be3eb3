/*
 * hc_proto.h -- protocol core: commands to bytes and bytes to replies,
 * with no socket and no Lua state. Any transport drives these: the
 * blocking connection (hc_conn.c), and through the Lua bindings
 * (hc_lproto.c) a transport written in Lua (an OpenResty cosocket).
 *
 * Formatting writes redisFormatCommandArgv's bytes (hand-written: a
 * benchmark shows it faster, hc_proto.c); parsing is hiredis's
 * redisReader. A transport's whole job: write the bytes of a request in
 * order, feed every byte it reads to a reader, stop when the reader has
 * produced as many replies as the request had commands, and report a
 * timeout or a closed connection instead.
 */
#ifndef HC_PROTO_H
#define HC_PROTO_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "hc_cmd.h"

/* RESP bytes of n commands, one after the other, in one malloc'd buffer
 * (*out; free with hc_proto_free): the bytes of hiredis's
 * redisFormatCommandArgv, written without sprintf (see hc_proto.c).
 * Returns the length, or -1 when memory ran out (*out is NULL then). */
long hc_proto_format(int n, const hc_cmd *cmds, char **out);
void hc_proto_free(char *buf);

/* A reader for replies that arrive in pieces of any size. */
redisReader *hc_proto_reader(void);

/* Feeds bytes; 0, or -1 when the reader ran out of memory. */
int hc_proto_feed(redisReader *r, const char *buf, size_t n);

/* Takes the next complete reply: 1 with *out (free with freeReplyObject),
 * 0 when more bytes are needed, -1 on a protocol error or out of memory. */
int hc_proto_next(redisReader *r, redisReply **out);

/* 1 when bytes were fed that no reply has consumed yet. */
int hc_proto_pending(const redisReader *r);

#endif
