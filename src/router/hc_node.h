/*
 * hc_node.h -- router: running a request on one server's pool.
 *
 * Borrow a connection, write the request, read its replies, settle, give
 * it back -- with the retry rule: a pooled connection found closed by the
 * server before any byte of the reply (killed, restarted, idle timeout)
 * is replaced and the same bytes sent once more, only when every command
 * of the request only reads (hc_cmd_idempotent), so nothing runs twice.
 *
 * A request can also be run in two halves (hc_node_send, then
 * hc_node_recv), so that a router writes to several servers before it
 * reads from any: one round trip to all of them. Never raises; every path
 * gives the connection back (closed when it saw an error).
 */
#ifndef HC_NODE_H
#define HC_NODE_H

#include "hc_pool.h"

/* Runs a request formatted with hc_proto_format (n commands). timeout >
 * 0: the command timeout for this borrow. 0 with replies (caller frees),
 * or -1 with err (HC_ERRLEN bytes). */
int hc_node_exec(hc_pool *p, const char *req, size_t len, int n, const hc_cmd *cmds,
                 redisReply **replies, char *err, double timeout);

/* A request in flight on one pool. Fill p, req, len, n, cmds, timeout;
 * hc_node_send borrows and writes (rc -1 + err on failure: nothing is
 * held); hc_node_recv reads into replies (retrying as above) and gives the
 * connection back; rc 0, or -1 with err. Call recv after every send. */
typedef struct hc_flight {
    hc_pool *p;
    const char *req;
    size_t len;
    int n;
    const hc_cmd *cmds;
    double timeout;
    hc_conn *c;
    int rc;
    char err[HC_ERRLEN];
} hc_flight;

void hc_node_send(hc_flight *f);
void hc_node_recv(hc_flight *f, redisReply **replies);

#endif
