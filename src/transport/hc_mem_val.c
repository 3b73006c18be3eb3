/* hc_mem_val.c -- what the commands of the in-process node are made of
 * (see hc_mem_int.h): hiredis replies, the store's entries as Redis
 * strings and lists, and SCAN/KEYS (Redis's glob, binary-safe). Every
 * function here runs with the node's lock held by its command. */
#include "hc_mem_int.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- replies ----------------------------------------------------------------- */

static redisReply *mr_new(int type)
{
    redisReply *r = calloc(1, sizeof *r);
    if (r) r->type = type;
    return r;
}

redisReply *mr_nil(void)
{
    return mr_new(REDIS_REPLY_NIL);
}

redisReply *mr_int(long long v)
{
    redisReply *r = mr_new(REDIS_REPLY_INTEGER);
    if (r) r->integer = v;
    return r;
}

static redisReply *mr_bytes(int type, const char *s, size_t n)
{
    redisReply *r = mr_new(type);
    if (r == NULL) return NULL;
    r->str = malloc(n + 1);
    if (r->str == NULL) {
        free(r);
        return NULL;
    }
    if (n) memcpy(r->str, s, n);
    r->str[n] = '\0';
    r->len = n;
    return r;
}

redisReply *mr_str(const char *s, size_t n)
{
    return mr_bytes(REDIS_REPLY_STRING, s, n);
}

redisReply *mr_take(char *data, size_t n)
{
    redisReply *r = mr_new(REDIS_REPLY_STRING);
    char *s = realloc(data, n + 1);
    if (r == NULL || s == NULL) {
        free(r);
        free(s ? s : data);
        return NULL;
    }
    s[n] = '\0';
    r->str = s;
    r->len = n;
    return r;
}

redisReply *mr_status(const char *s)
{
    return mr_bytes(REDIS_REPLY_STATUS, s, strlen(s));
}

redisReply *mr_err(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    return mr_bytes(REDIS_REPLY_ERROR, buf, (size_t)n);
}

redisReply *mr_arr(size_t n)
{
    redisReply *r = mr_new(REDIS_REPLY_ARRAY);
    if (r == NULL) return NULL;
    r->elements = n;
    if (n > 0 && (r->element = calloc(n, sizeof *r->element)) == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void mr_free(redisReply *r)
{
    size_t i;
    if (r == NULL) return;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) mr_free(r->element[i]);
        free(r->element);
    } else {
        free(r->str);
    }
    free(r);
}

redisReply *mr_done(redisReply *r)
{
    size_t i;
    if (r == NULL) return NULL;
    for (i = 0; i < r->elements; i++)
        if (r->element[i] == NULL) {
            mr_free(r);
            return NULL;
        }
    return r;
}

void mr_arg_text(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i, m = n < outlen - 1 ? n : outlen - 1;
    for (i = 0; i < m; i++) out[i] = (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') ? ' ' : s[i];
    out[m] = '\0';
}

const char *const hc_mv_wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";

redisReply *hc_mval_error(int code)
{
    switch (code) {
    case MV_WRONGTYPE: return mr_err("%s", hc_mv_wrongtype);
    case MV_TOOBIG: return mr_err("OOM command not allowed when used memory > 'maxmemory'.");
    case MV_NOTINT: return mr_err("ERR value is not an integer or out of range");
    case MV_OVERFLOW: return mr_err("ERR increment or decrement would overflow");
    case MV_NOKEY: return mr_err("ERR no such key");
    default: return NULL; /* MV_OOM: the exec fails */
    }
}

/* ---- numbers -------------------------------------------------------------------- */

int hc_mv_ll(const char *s, size_t n, long long *v)
{
    unsigned long long u = 0;
    size_t i = 0;
    int neg = 0;
    if (n == 0 || n > 20) return -1;
    if (n == 1 && s[0] == '0') {
        *v = 0;
        return 0;
    }
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1) return -1;
    }
    if (s[i] < '1' || s[i] > '9') return -1;
    for (; i < n; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') return -1;
        d = (unsigned)(s[i] - '0');
        if (u > (ULLONG_MAX - d) / 10) return -1;
        u = u * 10 + d;
    }
    if (neg) {
        if (u > (unsigned long long)LLONG_MAX + 1) return -1;
        *v = u == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)u;
    } else {
        if (u > (unsigned long long)LLONG_MAX) return -1;
        *v = (long long)u;
    }
    return 0;
}

double hc_mv_expires_in(mcall *c, long long ms)
{
    return c->now + (double)ms / 1000.0;
}

/* ---- entries ------------------------------------------------------------------ */

int hc_mv_read(mcall *c, const char *k, size_t kn, hc_store_val *v)
{
    int rc = hc_store_get(c->n->store, k, kn, c->now, 0, 0, v);
    if (rc < 0) return MV_OOM;
    if (rc != HC_STORE_HIT) return 0;
    return 1;
}

/* Stores bytes with the store's flags: 1, or MV_TOOBIG. */
static int mv_store(mcall *c, const char *k, size_t kn, const char *v, size_t vn, unsigned flags,
                    double expires)
{
    int rc = hc_store_set(c->n->store, k, kn, v, vn, flags, expires, expires, HC_STORE_ALWAYS, c->now);
    return rc == 1 ? 1 : MV_TOOBIG;
}

int hc_mv_get(mcall *c, const char *k, size_t kn, char **out, size_t *on)
{
    hc_store_val v;
    int rc = hc_mv_read(c, k, kn, &v);
    if (rc <= 0) return rc;
    if (v.flags & MV_FLAG_LIST) {
        free(v.data);
        return MV_WRONGTYPE;
    }
    *out = v.data;
    *on = v.len;
    return 1;
}

int hc_mv_set(mcall *c, const char *k, size_t kn, const char *v, size_t vn, double expires)
{
    return mv_store(c, k, kn, v, vn, 0, expires);
}

int hc_mv_set_px(mcall *c, const char *k, size_t kn, const char *v, size_t vn, long long ms)
{
    return mv_store(c, k, kn, v, vn, 0, ms > 0 ? hc_mv_expires_in(c, ms) : 0);
}

int hc_mv_del(mcall *c, const char *k, size_t kn)
{
    return hc_store_del(c->n->store, k, kn, c->now) == 1;
}

int hc_mv_exists(mcall *c, const char *k, size_t kn)
{
    hc_store_val v;
    int rc = hc_mv_read(c, k, kn, &v);
    if (rc == 1) free(v.data);
    return rc;
}

static long long ttl_ms(mcall *c, double expires)
{
    double ms;
    if (expires == 0) return -1;
    ms = (expires - c->now) * 1000.0;
    return ms <= 0 ? 0 : (long long)llround(ms);
}

int hc_mv_pttl(mcall *c, const char *k, size_t kn, long long *ms)
{
    hc_store_val v;
    int rc = hc_mv_read(c, k, kn, &v);
    if (rc < 0) return rc;
    if (rc == 0) {
        *ms = -2;
        return 0;
    }
    free(v.data);
    *ms = ttl_ms(c, v.expires);
    return 0;
}

int hc_mv_pexpire(mcall *c, const char *k, size_t kn, long long ms)
{
    if (ms <= 0) return hc_mv_del(c, k, kn);
    return hc_store_expire(c->n->store, k, kn, hc_mv_expires_in(c, ms), c->now) == 1;
}

int hc_mv_persist(mcall *c, const char *k, size_t kn)
{
    hc_store_val v;
    int rc = hc_mv_read(c, k, kn, &v);
    if (rc <= 0) return rc;
    free(v.data);
    if (v.expires == 0) return 0;
    return hc_store_expire(c->n->store, k, kn, 0, c->now) == 1;
}

int hc_mv_rename(mcall *c, const char *k, size_t kn, const char *d, size_t dn)
{
    hc_store_val v;
    int rc = hc_mv_read(c, k, kn, &v);
    if (rc < 0) return rc;
    if (rc == 0) return MV_NOKEY;
    if (kn == dn && memcmp(k, d, kn) == 0) {
        free(v.data);
        return 1;
    }
    rc = mv_store(c, d, dn, v.data, v.len, v.flags, v.expires);
    free(v.data);
    if (rc == 1) hc_mv_del(c, k, kn);
    return rc;
}

int hc_mv_incrby(mcall *c, const char *k, size_t kn, long long delta, long long *out)
{
    hc_store_val v;
    long long cur = 0;
    char buf[24];
    int rc = hc_mv_read(c, k, kn, &v), len;
    double expires = 0;
    if (rc < 0) return rc;
    if (rc == 1) {
        int bad = (v.flags & MV_FLAG_LIST) ? MV_WRONGTYPE : hc_mv_ll(v.data, v.len, &cur) ? MV_NOTINT : 0;
        expires = v.expires;
        free(v.data);
        if (bad) return bad;
    }
    if ((delta < 0 && cur < 0 && delta < LLONG_MIN - cur) || (delta > 0 && cur > 0 && delta > LLONG_MAX - cur))
        return MV_OVERFLOW;
    cur += delta;
    len = snprintf(buf, sizeof buf, "%lld", cur);
    rc = mv_store(c, k, kn, buf, (size_t)len, 0, expires);
    if (rc != 1) return rc;
    *out = cur;
    return 0;
}

/* ---- lists: [u32 BE length][bytes] per element, in order ------------------- */

size_t hc_mv_list_count(const char *p, size_t n)
{
    size_t at = 0, count = 0;
    while (at + 4 <= n) {
        const unsigned char *u = (const unsigned char *)p + at;
        size_t len = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
        at += 4 + len;
        count++;
    }
    return count;
}

/* The element at *at (advanced past it). */
const char *hc_mv_list_next(const char *p, size_t *at, size_t *len)
{
    const unsigned char *u = (const unsigned char *)p + *at;
    *len = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
    *at += 4 + *len;
    return p + *at - *len;
}

/* The list at key: 1 (v read, v->data malloc'ed), 0 none, MV_WRONGTYPE, MV_OOM. */
int hc_mv_read_list(mcall *c, const char *k, size_t kn, hc_store_val *v)
{
    int rc = hc_mv_read(c, k, kn, v);
    if (rc == 1 && !(v->flags & MV_FLAG_LIST)) {
        free(v->data);
        return MV_WRONGTYPE;
    }
    return rc;
}

long long hc_mv_push(mcall *c, const char *k, size_t kn, const char *e, size_t en, int left)
{
    hc_store_val v;
    char *buf;
    size_t n, count;
    int rc = hc_mv_read_list(c, k, kn, &v);
    if (rc < 0) return rc;
    if (rc == 0) {
        v.data = NULL;
        v.len = 0;
        v.expires = 0;
    }
    if (en > 0xffffffffu) {
        free(v.data);
        return MV_TOOBIG;
    }
    n = v.len + 4 + en;
    buf = malloc(n);
    if (buf == NULL) {
        free(v.data);
        return MV_OOM;
    }
    {
        size_t at = left ? 0 : v.len;
        unsigned char *u = (unsigned char *)buf + at;
        u[0] = (unsigned char)(en >> 24);
        u[1] = (unsigned char)(en >> 16);
        u[2] = (unsigned char)(en >> 8);
        u[3] = (unsigned char)en;
        if (en) memcpy(buf + at + 4, e, en);
        if (v.len) memcpy(left ? buf + 4 + en : buf, v.data, v.len);
    }
    free(v.data);
    count = hc_mv_list_count(buf, n);
    rc = mv_store(c, k, kn, buf, n, MV_FLAG_LIST, v.expires);
    free(buf);
    if (rc != 1) return rc;
    hc_mem_pushed(c->n);
    return (long long)count;
}

/* Pops one element from the left or the right. */
int hc_mv_pop(mcall *c, const char *k, size_t kn, int right, char **out, size_t *on)
{
    hc_store_val v;
    size_t at = 0, len = 0, last = 0;
    const char *e = NULL;
    int rc = hc_mv_read_list(c, k, kn, &v);
    if (rc <= 0) return rc;
    if (right) {
        while (at < v.len) {
            last = at;
            e = hc_mv_list_next(v.data, &at, &len);
        }
    } else {
        e = hc_mv_list_next(v.data, &at, &len);
    }
    *out = malloc(len ? len : 1);
    if (*out == NULL) {
        free(v.data);
        return MV_OOM;
    }
    if (len) memcpy(*out, e, len);
    *on = len;
    if (v.len == 4 + len) { /* it was the last one: Redis removes an empty list */
        hc_mv_del(c, k, kn);
        rc = 1;
    } else if (right) {
        rc = mv_store(c, k, kn, v.data, last, MV_FLAG_LIST, v.expires);
    } else {
        rc = mv_store(c, k, kn, v.data + at, v.len - at, MV_FLAG_LIST, v.expires);
    }
    free(v.data);
    if (rc != 1) {
        free(*out);
        return rc;
    }
    return 1;
}

int hc_mv_lpop(mcall *c, const char *k, size_t kn, char **out, size_t *on)
{
    return hc_mv_pop(c, k, kn, 0, out, on);
}

/* ---- glob (Redis's stringmatchlen, binary-safe, without recursion) ------ */

/* Does the pattern token at p[*pi] match byte ch? Moves *pi past it. */
static int token_match(const char *p, size_t pn, size_t *pi, char ch)
{
    size_t i = *pi;
    if (p[i] == '?') {
        *pi = i + 1;
        return 1;
    }
    if (p[i] == '[') {
        int neg, match = 0;
        i++;
        neg = i < pn && p[i] == '^';
        if (neg) i++;
        for (;;) {
            if (i >= pn) break; /* unterminated: the class ends with the pattern */
            if (p[i] == '\\' && pn - i >= 2) {
                i++;
                if (p[i] == ch) match = 1;
            } else if (p[i] == ']') {
                i++;
                break;
            } else if (pn - i >= 3 && p[i + 1] == '-') {
                int start = (signed char)p[i], end = (signed char)p[i + 2], x = (signed char)ch;
                if (start > end) {
                    int t = start;
                    start = end;
                    end = t;
                }
                if (x >= start && x <= end) match = 1;
                i += 2;
            } else if (p[i] == ch) {
                match = 1;
            }
            i++;
        }
        *pi = i;
        return neg ? !match : match;
    }
    if (p[i] == '\\' && pn - i >= 2) i++;
    *pi = i + 1;
    return p[i] == ch;
}

static int glob_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = 0, star_s = 0;
    int star = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            while (pi < pn && p[pi] == '*') pi++;
            if (pi == pn) return 1;
            star = 1;
            star_p = pi;
            star_s = si;
            continue;
        }
        if (pi < pn) {
            size_t np = pi;
            if (token_match(p, pn, &np, s[si])) {
                pi = np;
                si++;
                continue;
            }
        }
        if (!star) return 0;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '*') pi++;
    return pi == pn;
}

/* ---- key iteration ------------------------------------------------------------ */

typedef struct keylist {
    const char *pat;
    size_t pn;
    int type;        /* -1 any, 0 string, 1 list */
    char **k;
    size_t *kn;
    size_t n, cap;
    int oom;
} keylist;

static int collect(void *ctx, const char *key, size_t kn, const hc_store_val *v)
{
    keylist *l = (keylist *)ctx;
    if (l->type >= 0 && (int)(v->flags & MV_FLAG_LIST) != l->type) return 0;
    if (l->pat && !(l->pn == 1 && l->pat[0] == '*') && !glob_match(l->pat, l->pn, key, kn)) return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **k = realloc(l->k, cap * sizeof *k);
        size_t *n;
        if (k) l->k = k;
        n = k ? realloc(l->kn, cap * sizeof *n) : NULL;
        if (n == NULL) {
            l->oom = 1;
            return 1;
        }
        l->kn = n;
        l->cap = cap;
    }
    if ((l->k[l->n] = malloc(kn ? kn : 1)) == NULL) {
        l->oom = 1;
        return 1;
    }
    if (kn) memcpy(l->k[l->n], key, kn);
    l->kn[l->n++] = kn;
    return 0;
}

static void keylist_free(keylist *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) free(l->k[i]);
    free(l->k);
    free(l->kn);
}

/* The matching keys as an array reply (NULL: out of memory). */
redisReply *hc_mv_keys(mcall *c, const char *pat, size_t pn, int type)
{
    keylist l;
    redisReply *r = NULL;
    size_t i;
    memset(&l, 0, sizeof l);
    l.pat = pat;
    l.pn = pn;
    l.type = type;
    hc_store_each(c->n->store, c->now, collect, &l);
    if (!l.oom && (r = mr_arr(l.n)) != NULL)
        for (i = 0; i < l.n; i++) {
            r->element[i] = mr_take(l.k[i], l.kn[i]);
            l.k[i] = NULL;
        }
    keylist_free(&l);
    return mr_done(r);
}

static int count_each(void *ctx, const char *key, size_t kn, const hc_store_val *v)
{
    (void)key;
    (void)kn;
    (void)v;
    (*(long long *)ctx)++;
    return 0;
}

long long hc_mv_count(mcall *c)
{
    long long n = 0;
    hc_store_each(c->n->store, c->now, count_each, &n);
    return n;
}
