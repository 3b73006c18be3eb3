/*
 * hc_buf.h -- a growable byte buffer owned by C (malloc), for encoders
 * that must not raise. The owner frees it with hc_buf_free on every path.
 */
#ifndef HC_BUF_H
#define HC_BUF_H

#include <stdlib.h>
#include <string.h>

typedef struct hc_buf {
    char *data;
    size_t len, cap;
    size_t max;   /* growth beyond this fails (0 = no limit) */
    int oom;      /* set when an append failed               */
} hc_buf;

static inline void hc_buf_init(hc_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->oom = 0;
}

static inline void hc_buf_free(hc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* 0 on success; -1 (and b->oom) when out of memory or past b->max. */
static inline int hc_buf_append(hc_buf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        char *d;
        while (cap - b->len < n) {
            if (cap > ((size_t)-1) / 2) { b->oom = 1; return -1; }
            cap *= 2;
        }
        if (b->max && b->len + n > b->max) { b->oom = 1; return -1; }
        d = (char *)realloc(b->data, cap);
        if (d == NULL) { b->oom = 1; return -1; }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

#endif
