/* hc_proto.c -- protocol core: bytes of requests and replies (hc_proto.h). */
#include "hc_proto.h"

#include <stdlib.h>
#include <string.h>

long hc_proto_format(int n, const hc_cmd *cmds, char **out)
{
    char *one, **parts, *buf;
    long *lens, total = 0, len;
    int i;

    *out = NULL;
    if (n == 1) { /* the hot path: one command, one allocation */
        len = redisFormatCommandArgv(&one, cmds[0].argc, cmds[0].argv, cmds[0].argvlen);
        if (len < 0) return -1;
        *out = one;
        return len;
    }
    parts = calloc((size_t)(n > 0 ? n : 1), sizeof *parts);
    lens = calloc((size_t)(n > 0 ? n : 1), sizeof *lens);
    if (parts == NULL || lens == NULL) goto oom;
    for (i = 0; i < n; i++) {
        lens[i] = redisFormatCommandArgv(&parts[i], cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        if (lens[i] < 0) {
            parts[i] = NULL;
            goto oom;
        }
        total += lens[i];
    }
    buf = malloc((size_t)total + 1);
    if (buf == NULL) goto oom;
    for (len = 0, i = 0; i < n; i++) {
        memcpy(buf + len, parts[i], (size_t)lens[i]);
        len += lens[i];
        redisFreeCommand(parts[i]);
    }
    buf[total] = '\0';
    free(parts);
    free(lens);
    *out = buf;
    return total;
oom:
    if (parts)
        for (i = 0; i < n; i++)
            if (parts[i]) redisFreeCommand(parts[i]);
    free(parts);
    free(lens);
    return -1;
}

void hc_proto_free(char *buf)
{
    free(buf); /* redisFreeCommand is free(3) too */
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
