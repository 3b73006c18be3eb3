/* hc_conn.c -- transport: one blocking connection (see hc_conn.h). */
#include "hc_conn.h"
#include "hc_mem.h"
#include "hc_proto.h"
#include "hc_sock.h"
#include "hc_time.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384

static void set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
}

/* Runs one command during setup; copies a server error (with any
 * occurrence of the password masked) into err. */
static int setup_command(hc_conn *c, const hc_settings *s, const char *what,
                         int argc, const char **argv, char *err, size_t errlen)
{
    size_t lens[3];
    redisReply *r = NULL;
    hc_cmd cmd;
    int i;
    char msg[HC_ERRLEN];

    for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    cmd.argc = argc;
    cmd.argv = argv;
    cmd.argvlen = lens;
    if (hc_conn_exec(c, 1, &cmd, &r, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s", msg);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        char *p;
        snprintf(msg, sizeof msg, "%s", r->str);
        if (s->password && s->password[0])
            while ((p = strstr(msg, s->password)) != NULL)
                memset(p, '*', strlen(s->password));
        snprintf(err, errlen, "%s failed: %s", what, msg);
        freeReplyObject(r);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

hc_conn *hc_conn_open(const hc_settings *s, hc_tls_ctx *tls, char *err, size_t errlen)
{
    double deadline = hc_now() + s->connect_timeout;
    hc_conn *c = calloc(1, sizeof *c);

    if (c == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->reader = hc_proto_reader();
    if (c->reader == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    c->fd = hc_sock_connect(s->host, s->port, s->path, s->keepalive, deadline, tls != NULL,
                            err, errlen);
    if (c->fd < 0) goto fail;
    if (tls) {
        const char *name = s->tls_server_name ? s->tls_server_name : s->host;
        c->tls = hc_tls_connect(tls, c->fd, name, deadline, err, errlen);
        if (c->tls == NULL) goto fail;
        if (hc_sock_set_nonblock(c->fd, 0) != 0) {
            set_err(err, errlen, hc_sock_errmsg(errno) ? hc_sock_errmsg(errno) : "connection error");
            goto fail;
        }
    }
    if (hc_conn_set_timeout(c, s->timeout) != 0) {
        set_err(err, errlen, "cannot set timeout");
        goto fail;
    }
    c->pid = getpid();
    c->created = c->last_used = hc_now();

    if (s->password) {
        const char *argv[3] = {"AUTH", NULL, NULL};
        int argc = 1;
        if (s->username) argv[argc++] = s->username;
        argv[argc++] = s->password;
        if (setup_command(c, s, "auth", argc, argv, err, errlen) != 0) goto fail;
    }
    if (s->db != 0) {
        char db[24];
        const char *argv[2] = {"SELECT", db};
        snprintf(db, sizeof db, "%d", s->db);
        if (setup_command(c, s, "select", 2, argv, err, errlen) != 0) goto fail;
    }
    c->state = 0; /* AUTH and SELECT here set the pool's state, not a user's */
    return c;
fail:
    hc_conn_close(c);
    return NULL;
}

hc_conn *hc_conn_open_mem(struct hc_mnode **slot, const hc_settings *s, char *err, size_t errlen)
{
    hc_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->mem = hc_mnode_current(slot, s->mem_name ? s->mem_name : "default", s->mem_max_bytes, s->mem_max_items,
                              err, errlen);
    if (c->mem == NULL) {
        free(c);
        return NULL;
    }
    c->timeout = s->timeout;
    c->pid = getpid();
    c->created = c->last_used = hc_now();
    return c;
}

void hc_conn_close(hc_conn *c)
{
    if (c == NULL) return;
    hc_tls_free(c->tls);            /* no close_notify */
    if (c->fd >= 0) close(c->fd);   /* close(2) only: no QUIT, no shutdown(2) */
    if (c->reader) redisReaderFree(c->reader);
    free(c);
}

int hc_conn_usable(const hc_conn *c)
{
    struct pollfd p;
    if (c->mem) return 1;
    p.fd = c->fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 0) == 0) return 1;
    /* Readable while idle means EOF, an error, or stray data: all fatal,
     * except TLS records that carry no data (a late session ticket). */
    return c->tls != NULL && !(p.revents & (POLLERR | POLLHUP)) && hc_tls_idle_ok(c->tls);
}

/* ---- raw I/O ------------------------------------------------------------ */

/* Writes all of buf. 0, or -1 with err and *e = errno (0 for TLS). */
static int write_all(hc_conn *c, const char *buf, size_t len, int *e, char *err, size_t errlen)
{
    size_t done = 0;
    *e = 0;
    if (c->tls) return hc_tls_write(c->tls, buf, len, err, errlen) < 0 ? -1 : 0;
    while (done < len) {
        ssize_t w = send(c->fd, buf + done, len - done, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            *e = errno;
            set_err(err, errlen, hc_sock_errmsg(errno) ? hc_sock_errmsg(errno) : "connection error");
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* Reads what is there (blocking up to the command timeout). n > 0, 0 at
 * end of stream, -1 with err and *e = errno (0 for TLS). */
static ssize_t read_some(hc_conn *c, char *buf, size_t n, int *e, char *err, size_t errlen)
{
    ssize_t r;
    *e = 0;
    if (c->tls) return hc_tls_read(c->tls, buf, n, err, errlen);
    do r = recv(c->fd, buf, n, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        *e = errno;
        set_err(err, errlen, hc_sock_errmsg(errno) ? hc_sock_errmsg(errno) : "connection error");
    }
    return r;
}

static void io_fail(hc_conn *c, const char *err)
{
    c->broken = 1;
    c->io_error = 1;
    snprintf(c->io_err, sizeof c->io_err, "%s", err);
}

int hc_conn_send_raw(hc_conn *c, const char *req, size_t len, int n, const hc_cmd *cmds, char *err,
                     size_t errlen)
{
    int i, e;
    c->sent_first = c->reused;
    c->reused = 0;
    c->closed_unused = 0;
    if (c->broken) {
        set_err(err, errlen, "connection closed");
        return -1;
    }
    if (c->mem) { /* a node runs commands when asked: no send without a read */
        set_err(err, errlen, "not supported by the memory backend");
        return -1;
    }
    for (i = 0; i < n; i++) c->state = hc_cmd_track(c->state, &cmds[i]);
    if (write_all(c, req, len, &e, err, errlen) != 0) {
        /* The peer had closed it: nothing of the request can have run. */
        c->closed_unused = c->sent_first && (e == EPIPE || e == ECONNRESET);
        io_fail(c, err);
        return -1;
    }
    return 0;
}

int hc_conn_exec_raw(hc_conn *c, const char *req, size_t len, int n, const hc_cmd *cmds,
                     redisReply **replies, char *err, size_t errlen)
{
    if (c->mem && !c->broken) { /* a node keeps no state per connection: it refuses MULTI, WATCH, ... */
        c->reused = 0;
        c->closed_unused = 0;
        return hc_mnode_exec(c->mem, n, cmds, replies, err, errlen, c->timeout);
    }
    if (hc_conn_send_raw(c, req, len, n, cmds, err, errlen) != 0) return -1;
    return hc_conn_recv(c, n, replies, err, errlen);
}

int hc_conn_recv(hc_conn *c, int n, redisReply **replies, char *err, size_t errlen)
{
    char buf[READ_CHUNK];
    int i, got = 0, first = c->sent_first, any = 0, e;

    if (c->broken) {
        set_err(err, errlen, "connection closed");
        return -1;
    }
    while (got < n) {
        redisReply *r;
        ssize_t k;
        int rc = hc_proto_next(c->reader, &r);
        if (rc > 0) {
            replies[got++] = r;
            continue;
        }
        if (rc < 0) {
            set_err(err, errlen, "protocol error");
            goto fail;
        }
        k = read_some(c, buf, sizeof buf, &e, err, errlen);
        if (k == 0) {
            set_err(err, errlen, "connection closed");
            c->closed_unused = first && !any;
            goto fail;
        }
        if (k < 0) {
            c->closed_unused = first && !any && e == ECONNRESET;
            goto fail;
        }
        any = 1;
        if (hc_proto_feed(c->reader, buf, (size_t)k) != 0) {
            set_err(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (hc_proto_pending(c->reader)) c->broken = 1; /* more than was asked: out of step */
    return 0;
fail:
    for (i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    io_fail(c, err);
    return -1;
}

int hc_conn_exec(hc_conn *c, int n, const hc_cmd *cmds, redisReply **replies,
                 char *err, size_t errlen)
{
    char *req;
    long len;
    int rc;

    if (c->broken) {
        set_err(err, errlen, "connection closed");
        return -1;
    }
    if (c->mem) return hc_conn_exec_raw(c, NULL, 0, n, cmds, replies, err, errlen);
    len = hc_proto_format(n, cmds, &req);
    if (len < 0) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    rc = hc_conn_exec_raw(c, req, (size_t)len, n, cmds, replies, err, errlen);
    hc_proto_free(req);
    return rc;
}

/* One fixed command whose reply must be a status or bulk `expect`. */
static int simple(hc_conn *c, const char *name, const char *expect,
                  char *err, size_t errlen)
{
    size_t len = strlen(name);
    hc_cmd cmd;
    redisReply *r;
    int ok;

    cmd.argc = 1;
    cmd.argv = &name;
    cmd.argvlen = &len;
    if (hc_conn_exec(c, 1, &cmd, &r, err, errlen) != 0) return -1;
    ok = (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
         strcmp(r->str, expect) == 0;
    if (!ok) snprintf(err, errlen, "unexpected reply to %s", name);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

int hc_conn_ping(hc_conn *c, char *err, size_t errlen)
{
    return simple(c, "PING", "PONG", err, errlen);
}

void hc_conn_settle(hc_conn *c)
{
    char err[HC_ERRLEN];
    if (c->broken || c->state == 0) return;
    if (c->state & HC_ST_DIRTY) {
        c->broken = 1;
        return;
    }
    if (c->state & HC_ST_MULTI) {
        if (simple(c, "DISCARD", "OK", err, sizeof err) != 0) c->broken = 1;
    } else if (c->state & HC_ST_WATCH) {
        if (simple(c, "UNWATCH", "OK", err, sizeof err) != 0) c->broken = 1;
    }
    if (c->state != 0) c->broken = 1;
}

int hc_conn_set_timeout(hc_conn *c, double seconds)
{
    if (c->timeout == seconds) return 0;
    if (c->mem) { /* bounds BLPOP */
        c->timeout = seconds;
        return 0;
    }
    if (hc_sock_set_timeout(c->fd, seconds) != 0) return -1;
    c->timeout = seconds;
    return 0;
}

int hc_conn_send(hc_conn *c, int n, const hc_cmd *cmds, char *err, size_t errlen)
{
    char *req;
    long len;
    int e, rc;
    if (c->broken || c->mem) {
        set_err(err, errlen, c->mem ? "not supported by the memory backend" : "connection closed");
        return -1;
    }
    len = hc_proto_format(n, cmds, &req);
    if (len < 0) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    rc = write_all(c, req, (size_t)len, &e, err, errlen);
    hc_proto_free(req);
    if (rc != 0) c->broken = 1;
    return rc;
}

int hc_conn_read_reply(hc_conn *c, redisReply **r, char *err, size_t errlen)
{
    char buf[READ_CHUNK];
    if (c->mem) {
        set_err(err, errlen, "not supported by the memory backend");
        return -1;
    }
    for (;;) {
        ssize_t k;
        int e, rc = hc_proto_next(c->reader, r);
        if (rc > 0) return 0;
        if (rc < 0) {
            set_err(err, errlen, "protocol error");
            break;
        }
        k = read_some(c, buf, sizeof buf, &e, err, errlen);
        if (k < 0 && (e == EAGAIN || e == EWOULDBLOCK || (e == 0 && strcmp(err, "timeout") == 0)))
            return 1;
        if (k == 0) set_err(err, errlen, "connection closed");
        if (k <= 0) break;
        if (hc_proto_feed(c->reader, buf, (size_t)k) != 0) {
            set_err(err, errlen, "out of memory");
            break;
        }
    }
    c->broken = 1;
    return -1;
}
