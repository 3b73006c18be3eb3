/* hc_proto.c -- protocol core: bytes of requests and replies (hc_proto.h). */
#include "hc_proto.h"

#include <stdlib.h>
#include <string.h>

/* Decimal digits of v into p (no terminator); returns the count. */
static size_t put_uint(char *p, size_t v)
{
    char tmp[24];
    size_t n = 0, i;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Hand-written, on purpose: hiredis's redisFormatCommandArgv writes every
 * length with sprintf(3) and costs about 2,000 instructions for "GET key"
 * (callgrind, 12-15% of a whole get's client CPU); this writes the same
 * bytes (spec/proto_spec.lua compares the two on random commands) in one
 * allocation. docs/DESIGN.md, "The hot path", has the figures. */
long hc_proto_format(int n, const hc_cmd *cmds, char **out)
{
    size_t total = 0, pos = 0;
    char *buf;
    int i, j;

    *out = NULL;
    for (i = 0; i < n; i++) {
        total += 3 + digits((size_t)cmds[i].argc);
        for (j = 0; j < cmds[i].argc; j++)
            total += 5 + digits(cmds[i].argvlen[j]) + cmds[i].argvlen[j];
    }
    if ((buf = malloc(total + 1)) == NULL) return -1;
    for (i = 0; i < n; i++) {
        buf[pos++] = '*';
        pos += put_uint(buf + pos, (size_t)cmds[i].argc);
        buf[pos++] = '\r';
        buf[pos++] = '\n';
        for (j = 0; j < cmds[i].argc; j++) {
            size_t len = cmds[i].argvlen[j];
            buf[pos++] = '$';
            pos += put_uint(buf + pos, len);
            buf[pos++] = '\r';
            buf[pos++] = '\n';
            if (len) memcpy(buf + pos, cmds[i].argv[j], len);
            pos += len;
            buf[pos++] = '\r';
            buf[pos++] = '\n';
        }
    }
    buf[pos] = '\0';
    *out = buf;
    return (long)pos;
}

void hc_proto_free(char *buf)
{
    free(buf);
}

redisReader *hc_proto_reader(void)
{
    return redisReaderCreate();
}

int hc_proto_feed(redisReader *r, const char *buf, size_t n)
{
    return redisReaderFeed(r, buf, n) == REDIS_OK ? 0 : -1;
}

int hc_proto_next(redisReader *r, redisReply **out)
{
    void *v = NULL;
    *out = NULL;
    if (redisReaderGetReply(r, &v) != REDIS_OK) return -1;
    if (v == NULL) return 0;
    *out = (redisReply *)v;
    return 1;
}

int hc_proto_pending(const redisReader *r)
{
    return r->buf != NULL && r->pos < r->len;
}
