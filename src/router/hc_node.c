/* hc_node.c -- a request on one server's pool (see hc_node.h). */
#include "hc_node.h"

#include <stdio.h>

static int all_idempotent(int n, const hc_cmd *cmds)
{
    int i;
    for (i = 0; i < n; i++)
        if (!hc_cmd_idempotent(&cmds[i])) return 0;
    return 1;
}

/* Borrow (every idle connection polled first when retrying) and set the
 * borrow's timeout; NULL + err. */
static hc_conn *borrow(hc_pool *p, int retry, double timeout, char *err)
{
    hc_conn *c = hc_pool_checkout_ex(p, retry, err, HC_ERRLEN);
    if (c == NULL) return NULL;
    if (c->pid != hc_pool_self_pid()) {
        snprintf(err, HC_ERRLEN, "connection belongs to parent process");
        hc_pool_checkin(p, c);
        return NULL;
    }
    if (timeout > 0 && hc_conn_set_timeout(c, timeout) != 0) {
        c->broken = 1;
        hc_pool_checkin(p, c);
        snprintf(err, HC_ERRLEN, "cannot set timeout");
        return NULL;
    }
    return c;
}

/* Settles and returns it; 1 when the request may be sent again on another
 * connection (found closed before anything ran, and only reads). */
static int give_back(hc_pool *p, hc_conn *c, int rc, int attempt, int n, const hc_cmd *cmds, double timeout)
{
    int again;
    if (timeout > 0 && !c->broken && hc_conn_set_timeout(c, hc_pool_settings(p)->timeout) != 0)
        c->broken = 1;
    hc_conn_settle(c);
    again = rc != 0 && attempt == 0 && c->closed_unused && all_idempotent(n, cmds);
    hc_pool_checkin(p, c); /* broken: closed */
    return again;
}

static int run(hc_pool *p, const char *req, size_t len, int n, const hc_cmd *cmds, redisReply **replies,
               char *err, double timeout, int attempt)
{
    for (;; attempt++) {
        int rc;
        hc_conn *c = borrow(p, attempt > 0, timeout, err);
        if (c == NULL) return -1;
        rc = hc_conn_exec_raw(c, req, len, n, cmds, replies, err, HC_ERRLEN);
        if (!give_back(p, c, rc, attempt, n, cmds, timeout)) return rc;
    }
}

int hc_node_exec(hc_pool *p, const char *req, size_t len, int n, const hc_cmd *cmds,
                 redisReply **replies, char *err, double timeout)
{
    return run(p, req, len, n, cmds, replies, err, timeout, 0);
}

void hc_node_send(hc_flight *f)
{
    f->c = borrow(f->p, 0, f->timeout, f->err);
    if (f->c == NULL) {
        f->rc = -1;
        return;
    }
    if (f->c->mem) { /* no halves on a memory node: run it whole in recv */
        f->rc = 0;
        return;
    }
    f->rc = hc_conn_send_raw(f->c, f->req, f->len, f->n, f->cmds, f->err, HC_ERRLEN);
}

void hc_node_recv(hc_flight *f, redisReply **replies)
{
    hc_conn *c = f->c;
    int rc = f->rc;
    f->c = NULL;
    if (c == NULL) return; /* the send failed: nothing held */
    if (rc == 0)
        rc = c->mem ? hc_conn_exec_raw(c, f->req, f->len, f->n, f->cmds, replies, f->err, HC_ERRLEN)
                    : hc_conn_recv(c, f->n, replies, f->err, HC_ERRLEN);
    if (give_back(f->p, c, rc, 0, f->n, f->cmds, f->timeout))
        rc = run(f->p, f->req, f->len, f->n, f->cmds, replies, f->err, f->timeout, 1);
    f->rc = rc;
}
