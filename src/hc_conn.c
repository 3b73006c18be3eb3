/* hc_conn.c -- one blocking connection (see hc_conn.h). */
#include "hc_conn.h"
#include "hc_time.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
}

void hc_conn_errmsg(const redisContext *ctx, char *err, size_t errlen)
{
    static const struct { int code; const char *msg; } io[] = {
        {EAGAIN, "timeout"},         {ETIMEDOUT, "timeout"},
        {EINPROGRESS, "timeout"},    {ECONNREFUSED, "connection refused"},
        {ENOENT, "no such socket"},  {ECONNRESET, "connection reset"},
        {EPIPE, "connection closed"},{EHOSTUNREACH, "host unreachable"},
        {ENETUNREACH, "network unreachable"}, {EACCES, "permission denied"},
    };
    size_t i;

    if (ctx == NULL) { set_err(err, errlen, "out of memory"); return; }
    switch (ctx->err) {
    case REDIS_ERR_EOF: set_err(err, errlen, "connection closed"); return;
    case REDIS_ERR_PROTOCOL: set_err(err, errlen, "protocol error"); return;
    case REDIS_ERR_OOM: set_err(err, errlen, "out of memory"); return;
    case REDIS_ERR_IO:
        /* hiredis copies strerror(errno) into errstr; match it back. */
        for (i = 0; i < sizeof io / sizeof io[0]; i++)
            if (strcmp(ctx->errstr, strerror(io[i].code)) == 0) {
                set_err(err, errlen, io[i].msg);
                return;
            }
        break;
    default:
        break;
    }
    /* Anything else (resolver errors, ...): hiredis's text, lower-cased. */
    snprintf(err, errlen, "%s", ctx->errstr[0] ? ctx->errstr : "connection error");
    for (i = 0; err[i]; i++) err[i] = (char)tolower((unsigned char)err[i]);
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

static void enable_keepalive(int fd, int idle)
{
    int on = 1, intvl = idle / 3 > 0 ? idle / 3 : 1, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
#ifdef TCP_KEEPIDLE
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#else
    (void)intvl; (void)cnt;
#endif
}

hc_conn *hc_conn_open(const hc_settings *s, char *err, size_t errlen)
{
    struct timeval ct = hc_timeval(s->connect_timeout);
    redisContext *ctx;
    hc_conn *c;

    ctx = s->path ? redisConnectUnixWithTimeout(s->path, ct)
                  : redisConnectWithTimeout(s->host, s->port, ct);
    if (ctx == NULL || ctx->err) {
        hc_conn_errmsg(ctx, err, errlen);
        if (ctx) redisFree(ctx);
        return NULL;
    }
    if (redisSetTimeout(ctx, hc_timeval(s->timeout)) != REDIS_OK) {
        hc_conn_errmsg(ctx, err, errlen);
        redisFree(ctx);
        return NULL;
    }
    if (!s->path && s->keepalive > 0) enable_keepalive(ctx->fd, s->keepalive);

    c = calloc(1, sizeof *c);
    if (c == NULL) {
        redisFree(ctx);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->ctx = ctx;
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

void hc_conn_close(hc_conn *c)
{
    if (c == NULL) return;
    if (c->ctx) redisFree(c->ctx); /* close(2) only: no QUIT, no shutdown(2) */
    free(c);
}

int hc_conn_usable(const hc_conn *c)
{
    struct pollfd p;
    p.fd = c->ctx->fd;
    p.events = POLLIN;
    p.revents = 0;
    /* Readable while idle means EOF, an error, or stray data: all fatal. */
    return poll(&p, 1, 0) == 0;
}

int hc_conn_exec(hc_conn *c, int n, const hc_cmd *cmds, redisReply **replies,
                 char *err, size_t errlen)
{
    int i, got = 0;
    void *r;

    if (c->broken) {
        set_err(err, errlen, "connection closed");
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (redisAppendCommandArgv(c->ctx, cmds[i].argc, cmds[i].argv,
                                   cmds[i].argvlen) != REDIS_OK)
            goto fail;
        c->state = hc_cmd_track(c->state, &cmds[i]);
    }
    for (got = 0; got < n; got++) {
        if (redisGetReply(c->ctx, &r) != REDIS_OK || r == NULL) goto fail;
        replies[got] = r;
    }
    return 0;
fail:
    hc_conn_errmsg(c->ctx, err, errlen);
    for (i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    c->broken = 1;
    return -1;
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
    return redisSetTimeout(c->ctx, hc_timeval(seconds)) == REDIS_OK ? 0 : -1;
}
