/* hc_mem_cmd.c -- the commands of the in-process node (see hc_mem.h) and
 * their table: each runs with the node's lock held as its entry says
 * (hc_mem.c takes it). What they are made of is in hc_mem_val.c. */
#include "hc_mem_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- arguments ------------------------------------------------------------------ */

static int arg_ll(mcall *c, int i, long long *v)
{
    return hc_mv_ll(c->argv[i], c->len[i], v);
}

static int arg_is(mcall *c, int i, const char *word)
{
    return c->len[i] == strlen(word) && strncasecmp(c->argv[i], word, c->len[i]) == 0;
}

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the commands ------------------------------------------------------------- */

static redisReply *syntax(void)
{
    return mr_err("ERR syntax error");
}

static redisReply *notint(void)
{
    return mr_err("ERR value is not an integer or out of range");
}

static redisReply *cmd_get(mcall *c)
{
    char *v;
    size_t vn;
    int rc = hc_mv_get(c, c->argv[1], c->len[1], &v, &vn);
    if (rc < 0) return hc_mval_error(rc);
    return rc ? mr_take(v, vn) : mr_nil();
}

static redisReply *cmd_getdel(mcall *c)
{
    char *v;
    size_t vn;
    int rc = hc_mv_get(c, c->argv[1], c->len[1], &v, &vn);
    if (rc < 0) return hc_mval_error(rc);
    if (rc == 0) return mr_nil();
    hc_mv_del(c, c->argv[1], c->len[1]);
    return mr_take(v, vn);
}

static redisReply *cmd_mget(mcall *c)
{
    redisReply *r = mr_arr((size_t)c->argc - 1);
    int i;
    if (r == NULL) return NULL;
    for (i = 1; i < c->argc; i++) {
        char *v;
        size_t vn;
        int rc = hc_mv_get(c, c->argv[i], c->len[i], &v, &vn);
        if (rc == MV_OOM) break;
        r->element[i - 1] = rc == 1 ? mr_take(v, vn) : mr_nil(); /* another type: nil */
    }
    return mr_done(r);
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] */
static redisReply *cmd_set(mcall *c)
{
    enum { NX = 1, XX = 2, GET = 4, KEEPTTL = 8, EX = 16, PX = 32, EXAT = 64, PXAT = 128 };
    unsigned f = 0;
    long long ms = 0;
    double expires = 0;
    hc_store_val old;
    int i, found, rc;
    redisReply *prev = NULL;
    for (i = 3; i < c->argc; i++) {
        int more = i + 1 < c->argc;
        if (arg_is(c, i, "NX") && !(f & XX)) f |= NX;
        else if (arg_is(c, i, "XX") && !(f & NX)) f |= XX;
        else if (arg_is(c, i, "GET")) f |= GET;
        else if (arg_is(c, i, "KEEPTTL") && !(f & (EX | PX | EXAT | PXAT))) f |= KEEPTTL;
        else if (more && !(f & (KEEPTTL | EX | PX | EXAT | PXAT)) &&
                 (arg_is(c, i, "EX") || arg_is(c, i, "PX") || arg_is(c, i, "EXAT") || arg_is(c, i, "PXAT"))) {
            f |= arg_is(c, i, "EX") ? EX : arg_is(c, i, "PX") ? PX : arg_is(c, i, "EXAT") ? EXAT : PXAT;
            if (arg_ll(c, ++i, &ms) != 0) return notint();
            if (ms <= 0 || ((f & (EX | EXAT)) && ms > LLONG_MAX / 1000))
                return mr_err("ERR invalid expire time in 'set' command");
            if (f & (EX | EXAT)) ms *= 1000;
        } else {
            return syntax();
        }
    }
    rc = hc_mv_read(c, c->argv[1], c->len[1], &old);
    if (rc < 0) return NULL;
    found = rc == 1;
    if (found && (f & GET) && (old.flags & MV_FLAG_LIST)) {
        free(old.data);
        return mr_err("%s", hc_mv_wrongtype);
    }
    if (f & GET) {
        prev = found ? mr_take(old.data, old.len) : mr_nil();
        if (prev == NULL) return NULL;
    } else if (found) {
        free(old.data);
    }
    if (((f & NX) && found) || ((f & XX) && !found)) return prev ? prev : mr_nil();
    if (f & (EX | PX)) expires = hc_mv_expires_in(c, ms);
    else if (f & (EXAT | PXAT)) {
        ms -= wall_ms();
        if (ms <= 0) { /* already expired: Redis deletes the key */
            hc_mv_del(c, c->argv[1], c->len[1]);
            return prev ? prev : mr_status("OK");
        }
        expires = hc_mv_expires_in(c, ms);
    } else if ((f & KEEPTTL) && found) {
        expires = old.expires;
    }
    rc = hc_mv_set(c, c->argv[1], c->len[1], c->argv[2], c->len[2], expires);
    if (rc != 1) {
        mr_free(prev);
        return hc_mval_error(rc);
    }
    return prev ? prev : mr_status("OK");
}

static redisReply *set_ex(mcall *c, long long mult, const char *name)
{
    long long t;
    int rc;
    if (arg_ll(c, 2, &t) != 0) return notint();
    if (t <= 0 || t > LLONG_MAX / mult) return mr_err("ERR invalid expire time in '%s' command", name);
    rc = hc_mv_set_px(c, c->argv[1], c->len[1], c->argv[3], c->len[3], t * mult);
    return rc == 1 ? mr_status("OK") : hc_mval_error(rc);
}

static redisReply *cmd_setex(mcall *c)
{
    return set_ex(c, 1000, "setex");
}

static redisReply *cmd_psetex(mcall *c)
{
    return set_ex(c, 1, "psetex");
}

static redisReply *cmd_setnx(mcall *c)
{
    int rc = hc_mv_exists(c, c->argv[1], c->len[1]);
    if (rc < 0) return NULL;
    if (rc == 1) return mr_int(0);
    rc = hc_mv_set(c, c->argv[1], c->len[1], c->argv[2], c->len[2], 0);
    return rc == 1 ? mr_int(1) : hc_mval_error(rc);
}

static redisReply *cmd_getset(mcall *c)
{
    char *v = NULL;
    size_t vn = 0;
    redisReply *prev;
    int rc = hc_mv_get(c, c->argv[1], c->len[1], &v, &vn);
    if (rc < 0) return hc_mval_error(rc);
    prev = rc ? mr_take(v, vn) : mr_nil();
    if (prev == NULL) return NULL;
    rc = hc_mv_set(c, c->argv[1], c->len[1], c->argv[2], c->len[2], 0);
    if (rc != 1) {
        mr_free(prev);
        return hc_mval_error(rc);
    }
    return prev;
}

static redisReply *cmd_append(mcall *c)
{
    hc_store_val v;
    char *buf;
    size_t n;
    int rc = hc_mv_read(c, c->argv[1], c->len[1], &v);
    if (rc < 0) return NULL;
    if (rc == 0) {
        v.data = NULL;
        v.len = 0;
        v.expires = 0;
    } else if (v.flags & MV_FLAG_LIST) {
        free(v.data);
        return mr_err("%s", hc_mv_wrongtype);
    }
    n = v.len + c->len[2];
    if ((buf = malloc(n ? n : 1)) == NULL) {
        free(v.data);
        return NULL;
    }
    if (v.len) memcpy(buf, v.data, v.len);
    if (c->len[2]) memcpy(buf + v.len, c->argv[2], c->len[2]);
    free(v.data);
    rc = hc_mv_set(c, c->argv[1], c->len[1], buf, n, v.expires);
    free(buf);
    return rc == 1 ? mr_int((long long)n) : hc_mval_error(rc);
}

static redisReply *cmd_mset(mcall *c)
{
    int i;
    if (c->argc % 2 != 1) return mr_err("ERR wrong number of arguments for 'mset' command");
    for (i = 1; i < c->argc; i += 2) /* all or nothing, as Redis refuses before it runs */
        if (!hc_store_fits(c->n->store, c->len[i], c->len[i + 1])) return hc_mval_error(MV_TOOBIG);
    for (i = 1; i < c->argc; i += 2) {
        int rc = hc_mv_set(c, c->argv[i], c->len[i], c->argv[i + 1], c->len[i + 1], 0);
        if (rc != 1) return hc_mval_error(rc);
    }
    return mr_status("OK");
}

static redisReply *cmd_del(mcall *c)
{
    long long n = 0;
    int i;
    for (i = 1; i < c->argc; i++) n += hc_mv_del(c, c->argv[i], c->len[i]);
    return mr_int(n);
}

static redisReply *cmd_exists(mcall *c)
{
    long long n = 0;
    int i;
    for (i = 1; i < c->argc; i++) {
        int rc = hc_mv_exists(c, c->argv[i], c->len[i]);
        if (rc < 0) return NULL;
        n += rc;
    }
    return mr_int(n);
}

static redisReply *cmd_type(mcall *c)
{
    hc_store_val v;
    int rc = hc_mv_read(c, c->argv[1], c->len[1], &v);
    if (rc < 0) return NULL;
    if (rc == 0) return mr_status("none");
    free(v.data);
    return mr_status(v.flags & MV_FLAG_LIST ? "list" : "string");
}

static redisReply *ttl_generic(mcall *c, int ms)
{
    long long t;
    if (hc_mv_pttl(c, c->argv[1], c->len[1], &t) != 0) return NULL;
    if (t >= 0 && !ms) t = (t + 500) / 1000;
    return mr_int(t);
}

static redisReply *cmd_ttl(mcall *c)
{
    return ttl_generic(c, 0);
}

static redisReply *cmd_pttl(mcall *c)
{
    return ttl_generic(c, 1);
}

/* EXPIRE / PEXPIRE key t [NX|XX|GT|LT] */
static redisReply *expire_generic(mcall *c, long long mult, const char *name)
{
    enum { NX = 1, XX = 2, GT = 4, LT = 8 };
    unsigned f = 0;
    long long t, cur;
    int i;
    for (i = 3; i < c->argc; i++) {
        char text[80];
        if (arg_is(c, i, "NX")) f |= NX;
        else if (arg_is(c, i, "XX")) f |= XX;
        else if (arg_is(c, i, "GT")) f |= GT;
        else if (arg_is(c, i, "LT")) f |= LT;
        else {
            mr_arg_text(c->argv[i], c->len[i], text, sizeof text);
            return mr_err("ERR Unsupported option %s", text);
        }
    }
    if ((f & NX) && (f & (XX | GT | LT)))
        return mr_err("ERR NX and XX, GT or LT options at the same time are not compatible");
    if ((f & GT) && (f & LT)) return mr_err("ERR GT and LT options at the same time are not compatible");
    if (arg_ll(c, 2, &t) != 0) return notint();
    if ((t > 0 && t > LLONG_MAX / mult) || (t < 0 && t < LLONG_MIN / mult))
        return mr_err("ERR invalid expire time in '%s' command", name);
    t *= mult;
    if (hc_mv_pttl(c, c->argv[1], c->len[1], &cur) != 0) return NULL;
    if (cur == -2) return mr_int(0);
    if ((f & NX) && cur != -1) return mr_int(0);
    if ((f & XX) && cur == -1) return mr_int(0);
    if ((f & GT) && (cur == -1 || t <= cur)) return mr_int(0);
    if ((f & LT) && cur != -1 && t >= cur) return mr_int(0);
    return mr_int(hc_mv_pexpire(c, c->argv[1], c->len[1], t));
}

static redisReply *cmd_expire(mcall *c)
{
    return expire_generic(c, 1000, "expire");
}

static redisReply *cmd_pexpire(mcall *c)
{
    return expire_generic(c, 1, "pexpire");
}

static redisReply *cmd_persist(mcall *c)
{
    int rc = hc_mv_persist(c, c->argv[1], c->len[1]);
    return rc < 0 ? NULL : mr_int(rc);
}

static redisReply *incr_generic(mcall *c, long long delta)
{
    long long v;
    int rc = hc_mv_incrby(c, c->argv[1], c->len[1], delta, &v);
    return rc < 0 ? hc_mval_error(rc) : mr_int(v);
}

static redisReply *cmd_incr(mcall *c)
{
    return incr_generic(c, 1);
}

static redisReply *cmd_decr(mcall *c)
{
    return incr_generic(c, -1);
}

static redisReply *cmd_incrby(mcall *c)
{
    long long d;
    if (arg_ll(c, 2, &d) != 0) return notint();
    return incr_generic(c, d);
}

static redisReply *cmd_decrby(mcall *c)
{
    long long d;
    if (arg_ll(c, 2, &d) != 0) return notint();
    if (d == LLONG_MIN) return mr_err("ERR decrement would overflow");
    return incr_generic(c, -d);
}

static redisReply *cmd_getrange(mcall *c)
{
    long long start, end, len;
    char *v;
    size_t vn;
    int rc;
    if (arg_ll(c, 2, &start) != 0 || arg_ll(c, 3, &end) != 0) return notint();
    rc = hc_mv_get(c, c->argv[1], c->len[1], &v, &vn);
    if (rc < 0) return hc_mval_error(rc);
    if (rc == 0) return mr_str("", 0);
    len = (long long)vn;
    if (start < 0 && end < 0 && start > end) {
        free(v);
        return mr_str("", 0);
    }
    if (start < 0) start = len + start;
    if (end < 0) end = len + end;
    if (start < 0) start = 0;
    if (end < 0) end = 0;
    if (end >= len) end = len - 1;
    if (start > end || len == 0) {
        free(v);
        return mr_str("", 0);
    }
    if (start > 0) memmove(v, v + start, (size_t)(end - start + 1));
    return mr_take(v, (size_t)(end - start + 1));
}

static redisReply *cmd_strlen(mcall *c)
{
    char *v;
    size_t vn;
    int rc = hc_mv_get(c, c->argv[1], c->len[1], &v, &vn);
    if (rc < 0) return hc_mval_error(rc);
    if (rc == 0) return mr_int(0);
    free(v);
    return mr_int((long long)vn);
}

static redisReply *cmd_rename(mcall *c)
{
    int rc = hc_mv_rename(c, c->argv[1], c->len[1], c->argv[2], c->len[2]);
    return rc == 1 ? mr_status("OK") : hc_mval_error(rc);
}

static redisReply *push_generic(mcall *c, int left)
{
    long long n = 0;
    int i;
    for (i = 2; i < c->argc; i++) {
        n = hc_mv_push(c, c->argv[1], c->len[1], c->argv[i], c->len[i], left);
        if (n < 0) return hc_mval_error((int)n);
    }
    return mr_int(n);
}

static redisReply *cmd_rpush(mcall *c)
{
    return push_generic(c, 0);
}

static redisReply *cmd_lpush(mcall *c)
{
    return push_generic(c, 1);
}

/* LPOP / RPOP key [count] */
static redisReply *pop_generic(mcall *c, int right)
{
    long long count = -1, i;
    redisReply *r;
    char *v;
    size_t vn;
    int rc;
    if (c->argc > 3) return mr_err("ERR wrong number of arguments for '%s' command", right ? "rpop" : "lpop");
    if (c->argc == 3 && (arg_ll(c, 2, &count) != 0 || count < 0))
        return mr_err("ERR value is out of range, must be positive");
    if (count < 0) {
        rc = hc_mv_pop(c, c->argv[1], c->len[1], right, &v, &vn);
        if (rc < 0) return hc_mval_error(rc);
        return rc ? mr_take(v, vn) : mr_nil();
    }
    {
        hc_store_val l;
        rc = hc_mv_read_list(c, c->argv[1], c->len[1], &l);
        if (rc < 0) return hc_mval_error(rc);
        if (rc == 0) return mr_nil();
        if ((long long)hc_mv_list_count(l.data, l.len) < count) count = (long long)hc_mv_list_count(l.data, l.len);
        free(l.data);
    }
    if ((r = mr_arr((size_t)count)) == NULL) return NULL;
    for (i = 0; i < count; i++) {
        rc = hc_mv_pop(c, c->argv[1], c->len[1], right, &v, &vn);
        if (rc != 1) break;
        r->element[i] = mr_take(v, vn);
    }
    return mr_done(r);
}

static redisReply *cmd_lpop(mcall *c)
{
    return pop_generic(c, 0);
}

static redisReply *cmd_rpop(mcall *c)
{
    return pop_generic(c, 1);
}

static redisReply *cmd_llen(mcall *c)
{
    hc_store_val v;
    size_t n;
    int rc = hc_mv_read_list(c, c->argv[1], c->len[1], &v);
    if (rc < 0) return hc_mval_error(rc);
    if (rc == 0) return mr_int(0);
    n = hc_mv_list_count(v.data, v.len);
    free(v.data);
    return mr_int((long long)n);
}

static redisReply *cmd_lrange(mcall *c)
{
    long long start, end, len, i;
    hc_store_val v;
    redisReply *r;
    size_t at = 0, elen;
    int rc;
    if (arg_ll(c, 2, &start) != 0 || arg_ll(c, 3, &end) != 0) return notint();
    rc = hc_mv_read_list(c, c->argv[1], c->len[1], &v);
    if (rc < 0) return hc_mval_error(rc);
    if (rc == 0) return mr_arr(0);
    len = (long long)hc_mv_list_count(v.data, v.len);
    if (start < 0) start = len + start;
    if (end < 0) end = len + end;
    if (start < 0) start = 0;
    if (start > end || start >= len) {
        free(v.data);
        return mr_arr(0);
    }
    if (end >= len) end = len - 1;
    r = mr_arr((size_t)(end - start + 1));
    for (i = 0; r && i <= end; i++) {
        const char *e = hc_mv_list_next(v.data, &at, &elen);
        if (i >= start) r->element[i - start] = mr_str(e, elen);
    }
    free(v.data);
    return mr_done(r);
}

static redisReply *cmd_scan(mcall *c)
{
    const char *pat = NULL;
    size_t pn = 0;
    long long count;
    int i, type = -1;
    redisReply *r;
    char *end;
    char buf[32];
    if (c->len[1] >= sizeof buf) return mr_err("ERR invalid cursor");
    memcpy(buf, c->argv[1], c->len[1]);
    buf[c->len[1]] = '\0';
    (void)strtoull(buf, &end, 10);
    if (c->len[1] == 0 || *end != '\0' || buf[0] == '-' || buf[0] == '+' || buf[0] == ' ')
        return mr_err("ERR invalid cursor");
    for (i = 2; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) return syntax();
        if (arg_is(c, i, "MATCH")) {
            pat = c->argv[i + 1];
            pn = c->len[i + 1];
        } else if (arg_is(c, i, "COUNT")) {
            if (arg_ll(c, i + 1, &count) != 0) return notint();
            if (count < 1) return syntax();
        } else if (arg_is(c, i, "TYPE")) {
            type = arg_is(c, i + 1, "string") ? 0 : arg_is(c, i + 1, "list") ? 1 : 2;
        } else {
            return syntax();
        }
    }
    if ((r = mr_arr(2)) == NULL) return NULL;
    r->element[0] = mr_str("0", 1);
    /* Every match in one reply: a cursor other than 0 comes after the end. */
    r->element[1] = strcmp(buf, "0") != 0 || type == 2 ? mr_arr(0) : hc_mv_keys(c, pat, pn, type);
    return mr_done(r);
}

static redisReply *cmd_keys(mcall *c)
{
    return hc_mv_keys(c, c->argv[1], c->len[1], -1);
}

static redisReply *cmd_dbsize(mcall *c)
{
    return mr_int(hc_mv_count(c));
}

static redisReply *cmd_flush(mcall *c)
{
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "ASYNC") && !arg_is(c, 1, "SYNC"))) return syntax();
    hc_store_flush(c->n->store);
    return mr_status("OK");
}

static redisReply *cmd_ping(mcall *c)
{
    if (c->argc > 2) return mr_err("ERR wrong number of arguments for 'ping' command");
    return c->argc == 2 ? mr_str(c->argv[1], c->len[1]) : mr_status("PONG");
}

static redisReply *cmd_echo(mcall *c)
{
    return mr_str(c->argv[1], c->len[1]);
}

static redisReply *cmd_time(mcall *c)
{
    struct timespec ts;
    char s[24], u[24];
    redisReply *r = mr_arr(2);
    int sn, un;
    (void)c;
    if (r == NULL) return NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    sn = snprintf(s, sizeof s, "%lld", (long long)ts.tv_sec);
    un = snprintf(u, sizeof u, "%ld", ts.tv_nsec / 1000);
    r->element[0] = mr_str(s, (size_t)sn);
    r->element[1] = mr_str(u, (size_t)un);
    return mr_done(r);
}

/* Sorted by name (bsearch). */
static const mcmd table[] = {
    {"APPEND", 3, M_WRITE, cmd_append},
    {"BLPOP", -3, M_BLOCK, hc_mem_blpop},
    {"DBSIZE", 1, M_READ, cmd_dbsize},
    {"DECR", 2, M_WRITE, cmd_decr},
    {"DECRBY", 3, M_WRITE, cmd_decrby},
    {"DEL", -2, M_WRITE, cmd_del},
    {"ECHO", 2, M_NONE, cmd_echo},
    {"EVAL", -3, M_WRITE, hc_mscript_eval},
    {"EVALSHA", -3, M_WRITE, hc_mscript_evalsha},
    {"EXISTS", -2, M_READ, cmd_exists},
    {"EXPIRE", -3, M_WRITE, cmd_expire},
    {"FLUSHALL", -1, M_WRITE, cmd_flush},
    {"FLUSHDB", -1, M_WRITE, cmd_flush},
    {"GET", 2, M_READ, cmd_get},
    {"GETDEL", 2, M_WRITE, cmd_getdel},
    {"GETRANGE", 4, M_READ, cmd_getrange},
    {"GETSET", 3, M_WRITE, cmd_getset},
    {"INCR", 2, M_WRITE, cmd_incr},
    {"INCRBY", 3, M_WRITE, cmd_incrby},
    {"KEYS", 2, M_READ, cmd_keys},
    {"LLEN", 2, M_READ, cmd_llen},
    {"LPOP", -2, M_WRITE, cmd_lpop},
    {"LPUSH", -3, M_WRITE, cmd_lpush},
    {"LRANGE", 4, M_READ, cmd_lrange},
    {"MGET", -2, M_READ, cmd_mget},
    {"MSET", -3, M_WRITE, cmd_mset},
    {"PERSIST", 2, M_WRITE, cmd_persist},
    {"PEXPIRE", -3, M_WRITE, cmd_pexpire},
    {"PING", -1, M_NONE, cmd_ping},
    {"PSETEX", 4, M_WRITE, cmd_psetex},
    {"PTTL", 2, M_READ, cmd_pttl},
    {"RENAME", 3, M_WRITE, cmd_rename},
    {"RPOP", -2, M_WRITE, cmd_rpop},
    {"RPUSH", -3, M_WRITE, cmd_rpush},
    {"SCAN", -2, M_READ, cmd_scan},
    {"SCRIPT", -2, M_WRITE, hc_mscript_cmd},
    {"SET", -3, M_WRITE, cmd_set},
    {"SETEX", 4, M_WRITE, cmd_setex},
    {"SETNX", 3, M_WRITE, cmd_setnx},
    {"STRLEN", 2, M_READ, cmd_strlen},
    {"TIME", 1, M_NONE, cmd_time},
    {"TTL", 2, M_READ, cmd_ttl},
    {"TYPE", 2, M_READ, cmd_type},
    {"UNLINK", -2, M_WRITE, cmd_del},
};

const mcmd *hc_mcmd_find(const char *name, size_t len)
{
    size_t lo = 0, hi = sizeof table / sizeof table[0];
    if (strlen(name) != len) return NULL; /* a NUL inside the name */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = strcmp(name, table[mid].name);
        if (d == 0) return &table[mid];
        if (d < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}
