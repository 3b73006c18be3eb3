/* hc_mem_script.c -- hicache's six scripts (hc_scripts.c) in C for the
 * in-process node, each to the contract written above its Lua source, and
 * SCRIPT LOAD|EXISTS|FLUSH, EVALSHA and EVAL of those sources. Every
 * script runs under the node's write lock: atomic, as in Redis. A call
 * that fails inside a script (redis.call raising: a wrong type, a bad
 * number) ends the script with that error reply; what it wrote before
 * stays written, as in Redis. */
#include "hc_mem_int.h"
#include "hc_entry.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

void hc_mscript_init(hc_mnode *n)
{
    static const char hex[] = "0123456789abcdef";
    int i, j;
    for (i = 0; i < HC_SCRIPTS; i++) {
        const char *src = hc_script_source(i);
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)src, strlen(src), md);
        for (j = 0; j < SHA_DIGEST_LENGTH; j++) {
            n->sha[i][2 * j] = hex[md[j] >> 4];
            n->sha[i][2 * j + 1] = hex[md[j] & 15];
        }
        n->sha[i][40] = '\0';
    }
}

/* ---- KEYS and ARGV ------------------------------------------------------------ */

typedef struct sargs {
    int nk, na;
    const char **k, **a;
    const size_t *kl, *al;
} sargs;

#define K(i) s->k[(i) - 1], s->kl[(i) - 1]
#define A(i) s->a[(i) - 1], s->al[(i) - 1]

static int a_is(const sargs *s, int i, const char *v, size_t n)
{
    return i >= 1 && i <= s->na && s->al[i - 1] == n && (n == 0 || memcmp(s->a[i - 1], v, n) == 0);
}

static int a_str(const sargs *s, int i, const char *lit)
{
    return a_is(s, i, lit, strlen(lit));
}

/* ARGV[i] as an integer (what a Redis command taking it would accept). */
static int a_ll(const sargs *s, int i, long long *v)
{
    return i >= 1 && i <= s->na && hc_mv_ll(s->a[i - 1], s->al[i - 1], v) == 0 ? 0 : -1;
}

/* Lua's tonumber of a string (decimal): 0 with *v, -1 when it is not one. */
static int lua_tonum(const char *p, size_t n, double *v)
{
    char buf[64], *end;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    *v = strtod(buf, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') end++;
    return end == buf || *end != '\0' || *v != *v ? -1 : 0;
}

static redisReply *missing(void)
{
    return mr_err("ERR Lua redis lib command arguments must be strings or integers");
}

static redisReply *expire_err(void)
{
    return mr_err("ERR invalid expire time in 'set' command");
}

/* ---- what the scripts do with keys ------------------------------------------- */

/* SET key v PX ms with ms an argument: 1, or an error reply in *e. */
static int set_px_arg(mcall *c, const sargs *s, const char *k, size_t kn, const char *v, size_t vn,
                      int msarg, redisReply **e)
{
    long long ms;
    int rc;
    if (a_ll(s, msarg, &ms) != 0) {
        *e = msarg <= s->na ? hc_mval_error(MV_NOTINT) : missing();
        return -1;
    }
    if (ms <= 0) {
        *e = expire_err();
        return -1;
    }
    rc = hc_mv_set_px(c, k, kn, v, vn, ms);
    if (rc != 1) {
        *e = hc_mval_error(rc);
        return -1;
    }
    return 1;
}

/* RPUSH wake '1' + PEXPIRE wake ARGV[ttlarg]: 0 or -1 with *e. */
static int wake(mcall *c, const sargs *s, const char *w, size_t wn, int ttlarg, redisReply **e)
{
    long long ms, n = hc_mv_push(c, w, wn, "1", 1, 0);
    if (n < 0) {
        *e = hc_mval_error((int)n);
        return -1;
    }
    if (a_ll(s, ttlarg, &ms) != 0) {
        *e = ttlarg <= s->na ? hc_mval_error(MV_NOTINT) : missing();
        return -1;
    }
    if (hc_mv_pexpire(c, w, wn, ms) < 0) {
        *e = NULL;
        return -1;
    }
    return 0;
}

/* GET of a script (a list raises): 1 with *v, 0 nil, -1 with *e. */
static int sget(mcall *c, const char *k, size_t kn, char **v, size_t *vn, redisReply **e)
{
    int rc = hc_mv_get(c, k, kn, v, vn);
    if (rc < 0) {
        *e = hc_mval_error(rc);
        return -1;
    }
    return rc;
}

/* GET k == ARGV[i]: 1, 0, or -1 with *e. */
static int get_is(mcall *c, const sargs *s, const char *k, size_t kn, int i, redisReply **e)
{
    char *v;
    size_t vn;
    int rc = sget(c, k, kn, &v, &vn, e);
    if (rc <= 0) return rc;
    rc = i >= 1 && i <= s->na && a_is(s, i, v, vn);
    free(v);
    return rc;
}

/* WRITE's tagged(key): the header of a tagged entry (its first 12 + h
 * bytes, malloc'ed) as 1, else 0 (also for a list: GETRANGE fails inside
 * pcall); MV_OOM. */
static int tagged(mcall *c, const char *k, size_t kn, char **h, size_t *hn)
{
    hc_store_val v;
    const unsigned char *u;
    size_t want;
    int rc = hc_mv_read(c, k, kn, &v);
    if (rc <= 0) return rc;
    u = (const unsigned char *)v.data;
    if ((v.flags & MV_FLAG_LIST) || v.len < HC_ENTRY_FIXED || u[0] != 0xc9 || u[5] != 0x48 || u[6] != 2 ||
        !(u[7] & HC_ENTRY_TAGS)) {
        free(v.data);
        return 0;
    }
    want = HC_ENTRY_FIXED + (((size_t)u[8] << 24) | ((size_t)u[9] << 16) | ((size_t)u[10] << 8) | u[11]);
    *h = v.data;
    *hn = want < v.len ? want : v.len; /* GETRANGE stops at the end */
    return 1;
}

/* ---- WRITE ------------------------------------------------------------------ */

typedef struct wctx {
    mcall *c;
    const sargs *s;
    redisReply *e; /* the error that ends the script */
} wctx;

/* revoke(lease, wake): UNLINK lease; if there was one, RPUSH + PEXPIRE wake. */
static int revoke(wctx *w, int kl, int kw)
{
    const sargs *s = w->s;
    if (hc_mv_del(w->c, K(kl)) != 1) return 0;
    return wake(w->c, s, K(kw), 1, &w->e);
}

/* put(key, bytes, px): px '0' no expiry */
static int put(wctx *w, int k, int a)
{
    const sargs *s = w->s;
    int rc;
    if (a_str(s, a + 1, "0")) {
        rc = hc_mv_set(w->c, K(k), A(a), 0);
        if (rc != 1) {
            w->e = hc_mval_error(rc);
            return -1;
        }
        return 1;
    }
    return set_px_arg(w->c, s, K(k), A(a), a + 1, &w->e);
}

static redisReply *s_write(mcall *c, const sargs *s)
{
    wctx w;
    redisReply *out = mr_arr((size_t)s->na), *r;
    char *h = NULL; /* a tagged entry's header (malloc'ed) */
    size_t hn = 0;
    int k = 1, a = 2, n = 0;
    w.c = c;
    w.s = s;
    w.e = NULL;
    if (out == NULL) return NULL;
    out->elements = 0;
    while (a <= s->na) {
        int rc, need_k = 3, need_a = 1;
        r = NULL;
        if (a_str(s, a, "set")) need_a = 3;
        else if (a_str(s, a, "nx") || a_str(s, a, "xx")) need_a = 3;
        else if (a_str(s, a, "incr")) need_a = 2;
        else if (a_str(s, a, "rename")) need_k = 6;
        else if (a_str(s, a, "fill")) need_k = 4, need_a = 3;
        else if (a_str(s, a, "tag")) need_k = 1;
        else if (!a_str(s, a, "del")) {
            mr_free(out);
            return mr_err("ERR hicache write: unknown op");
        }
        if (k + need_k - 1 > s->nk || a + need_a - 1 > s->na) {
            w.e = missing();
            goto abort;
        }
        if (a_str(s, a, "set")) {
            if (put(&w, k, a + 1) < 0 || revoke(&w, k + 1, k + 2) < 0) goto abort;
            r = mr_int(1);
            k += 3, a += 3;
        } else if (a_str(s, a, "nx") || a_str(s, a, "xx")) {
            int nx = a_str(s, a, "nx"), e = 0;
            rc = hc_mv_exists(c, K(k));
            if (rc < 0) goto abort;
            if (rc == 1) {
                rc = tagged(c, K(k), &h, &hn);
                if (rc < 0) goto abort;
                if (rc == 0) e = 1;
                else if (a_is(s, a + 3, h, hn)) e = a_str(s, a + 4, "1") ? 1 : 0;
                else e = 2; /* the header, for the caller to check */
            }
            if (e == 2) {
                r = mr_take(h, hn);
                h = NULL;
            } else {
                int stored = nx == (e == 0);
                if (stored && put(&w, k, a + 1) < 0) goto abort;
                if (revoke(&w, k + 1, k + 2) < 0) goto abort;
                r = mr_int(stored);
            }
            k += 3, a += 5;
        } else if (a_str(s, a, "del")) {
            rc = tagged(c, K(k), &h, &hn);
            if (rc < 0) goto abort;
            rc = hc_mv_del(c, K(k));
            if (rc == 1 && h) {
                r = mr_take(h, hn);
                h = NULL;
            } else {
                r = mr_int(rc);
            }
            if (revoke(&w, k + 1, k + 2) < 0) {
                mr_free(r);
                goto abort;
            }
            k += 3, a += 1;
        } else if (a_str(s, a, "incr")) {
            rc = hc_mv_exists(c, K(k));
            if (rc < 0) goto abort;
            if (rc == 1) {
                long long d, v;
                if (a_ll(s, a + 1, &d) != 0) r = hc_mval_error(MV_NOTINT);
                else if ((rc = hc_mv_incrby(c, K(k), d, &v)) < 0) {
                    if (rc == MV_OOM) goto abort;
                    r = hc_mval_error(rc); /* pcall: the error is the item's answer */
                } else {
                    char buf[24];
                    r = mr_str(buf, (size_t)snprintf(buf, sizeof buf, "%lld", v));
                }
            } else {
                r = mr_nil();
            }
            if (revoke(&w, k + 1, k + 2) < 0) {
                mr_free(r);
                goto abort;
            }
            k += 3, a += 2;
        } else if (a_str(s, a, "rename")) {
            rc = hc_mv_exists(c, K(k));
            if (rc < 0) goto abort;
            if (rc == 1) {
                rc = tagged(c, K(k), &h, &hn);
                if (rc < 0) goto abort;
                rc = hc_mv_rename(c, K(k), K(k + 3));
                if (rc != 1) {
                    w.e = hc_mval_error(rc);
                    goto abort;
                }
                r = h ? mr_take(h, hn) : mr_int(1);
                h = NULL;
            } else {
                r = mr_int(0);
            }
            if (revoke(&w, k + 1, k + 2) < 0 || revoke(&w, k + 4, k + 5) < 0) {
                mr_free(r);
                goto abort;
            }
            k += 6, a += 1;
        } else if (a_str(s, a, "fill")) {
            int stored = 0;
            rc = get_is(c, s, K(k + 1), a + 1, &w.e);
            if (rc < 0) goto abort;
            if (rc == 1) {
                hc_mv_del(c, K(k + 1));
                if (wake(c, s, K(k + 2), 1, &w.e) < 0) goto abort;
                rc = get_is(c, s, K(k + 3), a + 2, &w.e);
                if (rc < 0) goto abort;
                if (rc == 1) {
                    if (a + 4 > s->na) {
                        w.e = missing();
                        goto abort;
                    }
                    if (put(&w, k, a + 3) < 0) goto abort;
                    stored = 1;
                }
            }
            r = mr_int(stored);
            k += 4, a += 5;
        } else { /* tag */
            r = mr_int(hc_mv_del(c, K(k)));
            k += 1, a += 1;
        }
        free(h);
        h = NULL;
        if (r == NULL) goto abort;
        out->element[n++] = r;
        out->elements = (size_t)n;
    }
    return out;
abort:
    free(h);
    mr_free(out);
    return w.e; /* NULL: out of memory */
}

/* ---- LEASE, RELEASE, TAGS, ACQUIRE, EXTEND ------------------------------------ */

/* LEASE  KEYS: V lease epoch  ARGV: token, lease ms, ignore, new epoch,
 * epoch ttl -> {1, epoch} | {2, epoch} | {3, pttl, epoch} */
static redisReply *s_lease(mcall *c, const sargs *s)
{
    redisReply *e = NULL, *r;
    char *ep = NULL, *cur = NULL;
    size_t en = 0, cn = 0;
    long long ms;
    int rc;
    if (s->nk < 3 || s->na < 5) return missing();
    rc = sget(c, K(3), &ep, &en, &e);
    if (rc < 0) return e;
    if (rc == 1) {
        if (a_ll(s, 5, &ms) != 0) {
            free(ep);
            return hc_mval_error(MV_NOTINT);
        }
        if (hc_mv_pexpire(c, K(3), ms) < 0) {
            free(ep);
            return NULL;
        }
    } else {
        if ((ep = malloc(s->al[3] ? s->al[3] : 1)) == NULL) return NULL;
        en = s->al[3];
        if (en) memcpy(ep, s->a[3], en);
        if (set_px_arg(c, s, K(3), ep, en, 5, &e) < 0) {
            free(ep);
            return e;
        }
    }
    if (!a_str(s, 3, "1")) {
        rc = hc_mv_exists(c, K(1));
        if (rc < 0) goto oom;
        if (rc == 1) {
            if ((r = mr_arr(2)) == NULL) goto oom;
            r->element[0] = mr_int(1);
            r->element[1] = mr_take(ep, en);
            return mr_done(r);
        }
    }
    rc = sget(c, K(2), &cur, &cn, &e);
    if (rc < 0) {
        free(ep);
        return e;
    }
    if (rc == 1) {
        const char *colon = cn ? memchr(cur, ':', cn) : NULL;
        int same = colon == NULL || ((size_t)(colon - cur) == en && memcmp(cur, ep, en) == 0);
        free(cur);
        if (same) {
            long long pttl;
            if (hc_mv_pttl(c, K(2), &pttl) != 0 || (r = mr_arr(3)) == NULL) goto oom;
            r->element[0] = mr_int(3);
            r->element[1] = mr_int(pttl);
            r->element[2] = mr_take(ep, en);
            return mr_done(r);
        }
    }
    {
        char *val = malloc(en + 1 + s->al[0]);
        if (val == NULL) goto oom;
        memcpy(val, ep, en);
        val[en] = ':';
        memcpy(val + en + 1, s->a[0], s->al[0]);
        rc = set_px_arg(c, s, K(2), val, en + 1 + s->al[0], 2, &e);
        free(val);
        if (rc < 0) {
            free(ep);
            return e;
        }
    }
    if ((r = mr_arr(2)) == NULL) goto oom;
    r->element[0] = mr_int(2);
    r->element[1] = mr_take(ep, en);
    return mr_done(r);
oom:
    free(ep);
    return NULL;
}

/* RELEASE  KEYS: lease wake  ARGV: value, wake ttl -> 1 | 0 */
static redisReply *s_release(mcall *c, const sargs *s)
{
    redisReply *e = NULL;
    int rc;
    if (s->nk < 2 || s->na < 1) return missing();
    rc = get_is(c, s, K(1), 1, &e);
    if (rc < 0) return e;
    if (rc == 0) return mr_int(0);
    hc_mv_del(c, K(1));
    if (wake(c, s, K(2), 2, &e) < 0) return e;
    return mr_int(1);
}

/* TAGS  KEYS: tag keys  ARGV: mode, ms, new token per key -> tokens.
 * An ms that is not a number fails where the Lua compares it. */
static redisReply *s_tags(mcall *c, const sargs *s)
{
    redisReply *out, *e = NULL;
    double ms = 0;
    int i, ms_ok;
    if (s->na < 2) return missing();
    ms_ok = lua_tonum(A(2), &ms) == 0;
    if ((out = mr_arr((size_t)s->nk)) == NULL) return NULL;
    for (i = 1; i <= s->nk; i++) {
        char *t = NULL;
        size_t tn = 0;
        int rc = sget(c, K(i), &t, &tn, &e);
        if (rc < 0) goto abort;
        if (rc == 0 && a_str(s, 1, "p")) {
            if (2 + i > s->na) {
                e = missing();
                goto abort;
            }
            if (!ms_ok) {
                e = mr_err("ERR hicache tags: ms is not a number");
                goto abort;
            }
            if ((t = malloc(s->al[1 + i] ? s->al[1 + i] : 1)) == NULL) goto abort;
            tn = s->al[1 + i];
            memcpy(t, s->a[1 + i], tn);
            if (ms > 0) {
                if (ms != floor(ms) || ms > 1e18) {
                    free(t);
                    e = hc_mval_error(MV_NOTINT);
                    goto abort;
                }
                rc = hc_mv_set_px(c, K(i), t, tn, (long long)ms);
            } else {
                rc = hc_mv_set(c, K(i), t, tn, 0);
            }
            if (rc != 1) {
                free(t);
                e = hc_mval_error(rc);
                goto abort;
            }
        } else if (rc == 1) {
            if (ms_ok && ms == 0) {
                if (hc_mv_persist(c, K(i)) < 0) goto abort_t;
            } else {
                long long p;
                if (hc_mv_pttl(c, K(i), &p) != 0) goto abort_t;
                if (p >= 0 && !ms_ok) {
                    free(t);
                    e = mr_err("ERR hicache tags: ms is not a number");
                    goto abort;
                }
                if (p >= 0 && (double)p < ms) {
                    if (ms != floor(ms) || ms > 1e18) {
                        free(t);
                        e = hc_mval_error(MV_NOTINT);
                        goto abort;
                    }
                    if (hc_mv_pexpire(c, K(i), (long long)ms) < 0) goto abort_t;
                }
            }
        }
        out->element[i - 1] = t ? mr_take(t, tn) : mr_nil();
        if (out->element[i - 1] == NULL) goto abort;
        continue;
abort_t:
        free(t);
        goto abort;
    }
    return out;
abort:
    mr_free(out);
    return e;
}

/* ACQUIRE  KEYS: lock fence  ARGV: token, ttl ms, fence ttl ms
 * -> {1, fence} | {0, pttl} */
static redisReply *s_acquire(mcall *c, const sargs *s)
{
    redisReply *r, *e = NULL;
    long long ms, pttl;
    int rc;
    if (s->nk < 2 || s->na < 3) return missing();
    if (a_ll(s, 2, &ms) != 0) return hc_mval_error(MV_NOTINT);
    if (ms <= 0) return expire_err();
    rc = hc_mv_exists(c, K(1));
    if (rc < 0) return NULL;
    if (rc == 0) {
        struct timespec ts;
        char *v = NULL, buf[64];
        size_t vn;
        double last = 0, f;
        int bn;
        if (hc_mv_set_px(c, K(1), A(1), ms) != 1) return hc_mval_error(MV_TOOBIG);
        clock_gettime(CLOCK_REALTIME, &ts);
        rc = sget(c, K(2), &v, &vn, &e);
        if (rc < 0) return e;
        if (rc == 1 && lua_tonum(v, vn, &last) != 0) last = 0;
        free(v);
        f = fmax(last + 1, (double)ts.tv_sec * 1000000.0 + (double)(ts.tv_nsec / 1000));
        bn = snprintf(buf, sizeof buf, "%.0f", f);
        if (set_px_arg(c, s, K(2), buf, (size_t)bn, 3, &e) < 0) return e;
        if ((r = mr_arr(2)) == NULL) return NULL;
        r->element[0] = mr_int(1);
        r->element[1] = mr_int((long long)f);
        return mr_done(r);
    }
    if (hc_mv_pttl(c, K(1), &pttl) != 0 || (r = mr_arr(2)) == NULL) return NULL;
    r->element[0] = mr_int(0);
    r->element[1] = mr_int(pttl);
    return mr_done(r);
}

/* EXTEND  KEYS: key  ARGV: value, ttl ms, replace -> 1 | 0 */
static redisReply *s_extend(mcall *c, const sargs *s)
{
    redisReply *e = NULL;
    double ms;
    int rc;
    if (s->nk < 1 || s->na < 3) return missing();
    rc = get_is(c, s, K(1), 1, &e);
    if (rc < 0) return e;
    if (rc == 0) return mr_int(0);
    if (lua_tonum(A(2), &ms) != 0) return mr_err("ERR hicache extend: ms expected");
    if (a_str(s, 3, "0")) {
        long long left;
        if (hc_mv_pttl(c, K(1), &left) != 0) return NULL;
        if (left > 0) ms += (double)left;
    }
    if (ms != floor(ms) || fabs(ms) > 9e18) return hc_mval_error(MV_NOTINT);
    rc = hc_mv_pexpire(c, K(1), (long long)ms);
    return rc < 0 ? NULL : mr_int(rc);
}

typedef redisReply *(*script_fn)(mcall *c, const sargs *s);

static const script_fn natives[HC_SCRIPTS] = {s_write, s_lease, s_release, s_tags, s_acquire, s_extend};

/* ---- EVALSHA, EVAL, SCRIPT ---------------------------------------------------- */

/* Runs script id with argv[2] = numkeys, then keys, then arguments. */
static redisReply *run(mcall *c, int id)
{
    long long nk;
    sargs s;
    if (hc_mv_ll(c->argv[2], c->len[2], &nk) != 0) return hc_mval_error(MV_NOTINT);
    if (nk < 0) return mr_err("ERR Number of keys can't be negative");
    if (nk > c->argc - 3) return mr_err("ERR Number of keys can't be greater than number of args");
    s.nk = (int)nk;
    s.k = c->argv + 3;
    s.kl = c->len + 3;
    s.na = c->argc - 3 - s.nk;
    s.a = c->argv + 3 + s.nk;
    s.al = c->len + 3 + s.nk;
    return natives[id](c, &s);
}

/* The script whose source is src, or -1. */
static int by_source(const char *src, size_t n)
{
    int i;
    for (i = 0; i < HC_SCRIPTS; i++) {
        const char *x = hc_script_source(i);
        if (strlen(x) == n && memcmp(x, src, n) == 0) return i;
    }
    return -1;
}

/* The script whose SHA1 is sha (any case), or -1. */
static int by_sha(const hc_mnode *n, const char *sha, size_t len)
{
    int i;
    size_t j;
    if (len != 40) return -1;
    for (i = 0; i < HC_SCRIPTS; i++) {
        for (j = 0; j < 40; j++) {
            char ch = sha[j] >= 'A' && sha[j] <= 'F' ? (char)(sha[j] + 32) : sha[j];
            if (ch != n->sha[i][j]) break;
        }
        if (j == 40) return i;
    }
    return -1;
}

redisReply *hc_mscript_evalsha(mcall *c)
{
    int id = by_sha(c->n, c->argv[1], c->len[1]);
    if (id < 0 || !(c->n->loaded & (1u << id))) return mr_err("NOSCRIPT No matching script. Please use EVAL.");
    return run(c, id);
}

redisReply *hc_mscript_eval(mcall *c)
{
    int id = by_source(c->argv[1], c->len[1]);
    if (id < 0)
        return mr_err("ERR EVAL of a script other than hicache's own is not supported by the memory backend");
    c->n->loaded |= 1u << id; /* EVAL caches the script, as in Redis */
    return run(c, id);
}

redisReply *hc_mscript_cmd(mcall *c)
{
    const char *sub = c->argv[1];
    size_t sn = c->len[1];
    char text[80];
    if (sn == 4 && strncasecmp(sub, "LOAD", 4) == 0) {
        int id;
        if (c->argc != 3) return mr_err("ERR wrong number of arguments for 'script|load' command");
        id = by_source(c->argv[2], c->len[2]);
        if (id < 0)
            return mr_err("ERR SCRIPT LOAD of a script other than hicache's own is not supported by the memory backend");
        c->n->loaded |= 1u << id;
        return mr_str(c->n->sha[id], 40);
    }
    if (sn == 6 && strncasecmp(sub, "EXISTS", 6) == 0) {
        redisReply *r;
        int i;
        if (c->argc < 3) return mr_err("ERR wrong number of arguments for 'script|exists' command");
        if ((r = mr_arr((size_t)c->argc - 2)) == NULL) return NULL;
        for (i = 2; i < c->argc; i++) {
            int id = by_sha(c->n, c->argv[i], c->len[i]);
            r->element[i - 2] = mr_int(id >= 0 && (c->n->loaded & (1u << id)));
        }
        return mr_done(r);
    }
    if (sn == 5 && strncasecmp(sub, "FLUSH", 5) == 0) {
        if (c->argc > 3 || (c->argc == 3 && !(c->len[2] == 5 && strncasecmp(c->argv[2], "ASYNC", 5) == 0) &&
                            !(c->len[2] == 4 && strncasecmp(c->argv[2], "SYNC", 4) == 0)))
            return mr_err("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        c->n->loaded = 0;
        return mr_status("OK");
    }
    mr_arg_text(sub, sn, text, sizeof text);
    return mr_err("ERR unknown subcommand '%s'. Try SCRIPT HELP.", text);
}
