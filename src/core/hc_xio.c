/* hc_xio.c -- protocol core: an operation driven from outside (hc_xio.h). */
#include "hc_xio.h"
#include "hc_entry.h"
#include "hc_proto.h"
#include "hc_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct round {
    char *req;            /* request bytes (hc_proto_format)          */
    size_t reqlen;
    int n;                /* replies it needs                          */
    double timeout;
    char *resp;           /* the replies' bytes, once complete         */
    size_t resplen, respcap;
    int answered, used;   /* used: consumed in the current run         */
    char *fail;           /* answered by the transport's error, not bytes */
    int idempotent;       /* every command only reads (hc_cmd_idempotent) */
    redisReply **kept;    /* the replies as feed parsed them, for the first
                             replay (later ones parse resp afresh)        */
} round;

struct hc_xio {
    round r[HC_XIO_ROUNDS];
    int nrounds;
    int pending;          /* index of the round waiting for bytes, or -1 */
    redisReader *reader;  /* counts the replies of the pending round   */
    int got;
    unsigned state;       /* connection state after the rounds sent so far
                             (hc_cmd_track), from the state set before  */
    char *tokens;         /* hex tokens drawn so far, HC_TOKEN_LEN+1 each */
    int ntokens, captokens, token_pos;
    double t0;
    unsigned long long memo[2]; /* hc_xio_memo: values kept across runs */
    int nmemo;
};

static void free_kept(round *rd)
{
    int i;
    if (rd->kept == NULL) return;
    for (i = 0; i < rd->n; i++)
        if (rd->kept[i]) freeReplyObject(rd->kept[i]);
    free(rd->kept);
    rd->kept = NULL;
}

hc_xio *hc_xio_new(void)
{
    hc_xio *x = calloc(1, sizeof *x);
    if (x == NULL) return NULL;
    x->pending = -1;
    x->t0 = hc_now();
    return x;
}

/* Frees what the rounds own; the xio then has none. */
static void clear_rounds(hc_xio *x)
{
    int i;
    for (i = 0; i < x->nrounds; i++) {
        hc_proto_free(x->r[i].req);
        free(x->r[i].resp);
        free(x->r[i].fail);
        free_kept(&x->r[i]);
    }
    x->nrounds = 0;
}

void hc_xio_free(hc_xio *x)
{
    if (x == NULL) return;
    clear_rounds(x);
    if (x->reader) redisReaderFree(x->reader);
    free(x->tokens);
    free(x);
}

void hc_xio_reset(hc_xio *x)
{
    clear_rounds(x);
    if (x->reader && x->pending >= 0) { /* a round left unfinished: bytes in it */
        redisReaderFree(x->reader);
        x->reader = NULL;
    }
    x->pending = -1;
    x->got = 0;
    x->state = 0;
    x->ntokens = x->token_pos = 0;
    x->nmemo = 0;
    x->t0 = 0; /* the next operation's start: its first run (begin_run) */
}

void hc_xio_begin_run(hc_xio *x)
{
    int i;
    if (x->t0 == 0) x->t0 = hc_now();
    for (i = 0; i < x->nrounds; i++) x->r[i].used = 0;
    x->token_pos = 0;
}

int hc_xio_pending(const hc_xio *x)
{
    return x->pending >= 0;
}

double hc_xio_t0(const hc_xio *x)
{
    return x->t0;
}

/* Parses an answered round's bytes into n replies. */
static int replay(round *rd, redisReply **replies, char *err, size_t errlen)
{
    redisReader *rr;
    int i, got = 0;
    if (rd->kept) { /* the first replay: the replies feed already parsed */
        memcpy(replies, rd->kept, (size_t)rd->n * sizeof *replies);
        free(rd->kept);
        rd->kept = NULL;
        return 0;
    }
    rr = hc_proto_reader();
    if (rr == NULL || hc_proto_feed(rr, rd->resp, rd->resplen) != 0) goto fail;
    for (; got < rd->n; got++)
        if (hc_proto_next(rr, &replies[got]) != 1) goto fail;
    redisReaderFree(rr);
    return 0;
fail:
    for (i = 0; i < got; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    if (rr) redisReaderFree(rr);
    snprintf(err, errlen, "out of memory");
    return -1;
}

int hc_xio_exec(hc_xio *x, int n, const hc_cmd *cmds, double timeout, redisReply **replies,
                char *err, size_t errlen)
{
    char *req;
    long len = hc_proto_format(n, cmds, &req);
    int i;
    round *rd;

    if (len < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < x->nrounds; i++) {
        rd = &x->r[i];
        if (rd->used || !rd->answered || rd->n != n || rd->reqlen != (size_t)len ||
            memcmp(rd->req, req, (size_t)len) != 0)
            continue;
        hc_proto_free(req);
        rd->used = 1;
        if (rd->fail) {
            snprintf(err, errlen, "%s", rd->fail);
            return -1;
        }
        return replay(rd, replies, err, errlen);
    }
    if (x->pending >= 0 || x->nrounds == HC_XIO_ROUNDS) {
        hc_proto_free(req);
        snprintf(err, errlen, x->pending >= 0 ? "pending" : "too many round trips");
        return -1;
    }
    rd = &x->r[x->nrounds];
    memset(rd, 0, sizeof *rd);
    rd->req = req;
    rd->reqlen = (size_t)len;
    rd->n = n;
    rd->timeout = timeout;
    rd->idempotent = 1;
    for (i = 0; i < n; i++) {
        if (!hc_cmd_idempotent(&cmds[i])) rd->idempotent = 0;
        x->state = hc_cmd_track(x->state, &cmds[i]);
    }
    if (x->reader == NULL && (x->reader = hc_proto_reader()) == NULL) {
        hc_proto_free(req);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    x->pending = x->nrounds++;
    x->got = 0;
    snprintf(err, errlen, "pending");
    return -1;
}

int hc_xio_idempotent(const hc_xio *x)
{
    return x->pending >= 0 && x->r[x->pending].idempotent && x->r[x->pending].resplen == 0;
}

const char *hc_xio_request(const hc_xio *x, size_t *len, int *nreplies, double *timeout)
{
    const round *rd;
    if (x->pending < 0) return NULL;
    rd = &x->r[x->pending];
    *len = rd->reqlen;
    *nreplies = rd->n;
    *timeout = rd->timeout;
    return rd->req;
}

int hc_xio_feed(hc_xio *x, const char *buf, size_t n)
{
    round *rd;
    redisReply *r;
    if (x->pending < 0) return -1;
    rd = &x->r[x->pending];
    if (rd->resplen + n > rd->respcap) {
        size_t cap = rd->respcap ? rd->respcap : 256;
        char *p;
        while (cap < rd->resplen + n) cap *= 2;
        if ((p = realloc(rd->resp, cap)) == NULL) return -1;
        rd->resp = p;
        rd->respcap = cap;
    }
    memcpy(rd->resp + rd->resplen, buf, n);
    rd->resplen += n;
    if (hc_proto_feed(x->reader, buf, n) != 0) return -1;
    if (rd->kept == NULL && (rd->kept = calloc((size_t)rd->n, sizeof *rd->kept)) == NULL) return -1;
    for (;;) {
        int rc = hc_proto_next(x->reader, &r);
        if (rc < 0) return -1;
        if (rc == 0) return 0;
        rd->kept[x->got] = r;
        if (++x->got == rd->n) break;
    }
    if (hc_proto_pending(x->reader)) return -1; /* bytes past the last reply */
    rd->answered = 1;
    x->pending = -1; /* the reader is empty again: the next round reuses it */
    return 1;
}

unsigned hc_xio_state(const hc_xio *x)
{
    return x->state;
}

void hc_xio_set_state(hc_xio *x, unsigned state)
{
    x->state = state;
}

int hc_xio_fail(hc_xio *x, const char *err)
{
    round *rd;
    if (x->pending < 0) return -1;
    rd = &x->r[x->pending];
    if ((rd->fail = strdup(err && err[0] ? err : "connection closed")) == NULL) return -1;
    free_kept(rd);
    rd->answered = 1;
    x->pending = -1;
    redisReaderFree(x->reader);
    x->reader = NULL;
    return 0;
}

int hc_xio_tokens(hc_xio *x, char *hex, int n)
{
    const size_t one = HC_TOKEN_LEN + 1;
    int i;
    for (i = 0; i < n; i++, x->token_pos++) {
        if (x->token_pos == x->ntokens) {
            if (x->ntokens == x->captokens) {
                int cap = x->captokens ? x->captokens * 2 : 8;
                char *p = realloc(x->tokens, (size_t)cap * one);
                if (p == NULL) return -1;
                x->tokens = p;
                x->captokens = cap;
            }
            hc_tokens_new(x->tokens + (size_t)x->ntokens * one, 1);
            x->ntokens++;
        }
        memcpy(hex + (size_t)i * one, x->tokens + (size_t)x->token_pos * one, one);
    }
    return 0;
}

int hc_xio_memo_get(const hc_xio *x, unsigned long long *a, unsigned long long *b)
{
    if (!x->nmemo) return 0;
    *a = x->memo[0];
    *b = x->memo[1];
    return 1;
}

void hc_xio_memo_set(hc_xio *x, unsigned long long a, unsigned long long b)
{
    x->memo[0] = a;
    x->memo[1] = b;
    x->nmemo = 1;
}
