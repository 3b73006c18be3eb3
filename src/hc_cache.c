/*
 * hc_cache.c -- the cache API on hicache.client: one C call per operation
 * (key composition, checkout, command, decode). Arguments are checked and
 * keys composed before any C buffer is allocated or a connection borrowed;
 * values are encoded without raising; replies are decoded inside hc_pcall
 * and freed before any error is re-raised.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hc_args.h"
#include "hc_client.h"
#include "hc_reply.h"
#include "hc_time.h"

/* ---- keys and TTLs --------------------------------------------------------- */

/* Writes prefix:version:key for the key at idx into buf (HC_FULLKEY_MAX
 * bytes). Never raises: returns the length, or 0 with *why set. */
static size_t compose(lua_State *L, const client *cl, long long version, int idx,
                      char *buf, const char **why)
{
    char num[40];
    const char *k;
    size_t kn;
    int head;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        k = lua_tolstring(L, idx, &kn);
        break;
    case LUA_TNUMBER:
        if (hc_isinteger(L, idx)) kn = (size_t)snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        else kn = (size_t)snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, idx));
        k = num;
        break;
    default:
        *why = "key must be a string or a number";
        return 0;
    }
    if (kn > HC_KEY_MAX) {
        *why = "key longer than 1024 bytes: hash long keys (hicache.keys, in a later release)";
        return 0;
    }
    head = snprintf(buf, HC_FULLKEY_MAX, "%s:%lld:", cl->prefix, version);
    memcpy(buf + head, k, kn);
    return (size_t)head + kn;
}

static size_t key_arg(lua_State *L, const client *cl, int idx, char *buf)
{
    const char *why = NULL;
    size_t n = compose(L, cl, cl->version, idx, buf, &why);
    if (n == 0) luaL_argerror(L, idx, why);
    return n;
}

/* TTL at idx in ms: none/nil -> the cache default, 0 -> never expires. */
static long long ttl_arg(lua_State *L, const client *cl, int idx)
{
    double t, ms;
    if (lua_isnoneornil(L, idx)) return cl->ttl_ms;
    if (lua_type(L, idx) != LUA_TNUMBER) luaL_argerror(L, idx, "ttl must be a number of seconds");
    t = (double)lua_tonumber(L, idx);
    if (!(t >= 0)) luaL_argerror(L, idx, "ttl must be a non-negative number");
    if (t > 1e11) luaL_argerror(L, idx, "ttl too large");
    ms = ceil(t * 1000.0);
    return (long long)ms;
}

/* ---- observability ----------------------------------------------------------- */

#define OBSERVED(cl) ((cl)->stats != NULL || (cl)->hook != LUA_NOREF)

/* After an operation that pushed `n` results: records it (an error when it
 * returned nil, err) and returns n. */
static int observe(lua_State *L, client *cl, int op, unsigned ev, const char *key, size_t kn,
                   size_t in, size_t out, double t0, int n)
{
    const char *err = NULL;
    if (n == 2 && lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
        err = lua_tostring(L, -1);
        ev = HC_EV_ERROR;
    }
    hc_client_event(L, cl, op, ev, key, kn, in, out, t0, err);
    return n;
}

/* ---- running commands -------------------------------------------------------- */

typedef struct vec {
    int argc;
    const char *argv[8];
    size_t lens[8];
    char num[2][32];
} vec;

static void vec_add(vec *v, const char *s, size_t n)
{
    v->argv[v->argc] = s;
    v->lens[v->argc] = n;
    v->argc++;
}

static void vec_str(vec *v, const char *s)
{
    vec_add(v, s, strlen(s));
}

static void vec_int(vec *v, int slot, long long x)
{
    int n = snprintf(v->num[slot], sizeof v->num[slot], "%lld", x);
    vec_add(v, v->num[slot], (size_t)n);
}

static hc_cmd vec_cmd(vec *v)
{
    hc_cmd c;
    c.argc = v->argc;
    c.argv = v->argv;
    c.argvlen = v->lens;
    return c;
}

/* Runs one command. 0 with *r, or -1 after pushing nil, err (2 values). */
static int run1(lua_State *L, client *cl, vec *v, redisReply **r)
{
    char err[HC_ERRLEN];
    hc_cmd c = vec_cmd(v);
    if (hc_client_exec(cl, 1, &c, r, err) != 0) {
        hc_fail(L, err);
        return -1;
    }
    return 0;
}

/* Pushes a server error reply as nil, msg and frees it. */
static int reply_error(lua_State *L, redisReply *r)
{
    char msg[HC_ERRLEN];
    snprintf(msg, sizeof msg, "%s", r->str);
    freeReplyObject(r);
    return hc_fail(L, msg);
}

static int unexpected(lua_State *L, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) return reply_error(L, r);
    freeReplyObject(r);
    return hc_fail(L, "unexpected reply");
}

/* ---- decoding values ---------------------------------------------------------- */

typedef struct one {
    hc_decoding d;
} one;

static int decode_one_cb(lua_State *L, void *ud)
{
    one *o = (one *)ud;
    if (hc_decode_push(L, &o->d) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "decode error: %s", o->d.err);
        return 2;
    }
    return 1;
}

/* Decodes p[0..n): pushes value or nil, "decode error: ...". Frees r (if
 * any) and everything decoding allocated, also when Lua raises. */
static int push_decoded(lua_State *L, client *cl, const char *p, size_t n, redisReply *r)
{
    one o;
    int top = lua_gettop(L), st;
    hc_decoding_init(&o.d, &cl->codec, p, n);
    st = hc_pcall(L, decode_one_cb, &o, 0, LUA_MULTRET);
    hc_decoding_done(&o.d);
    if (r) freeReplyObject(r);
    if (st == -1) return luaL_error(L, "stack overflow");
    if (st != 0) return lua_error(L);
    return lua_gettop(L) - top;
}

/* ---- get / set / add -------------------------------------------------------------- */

/* cache:get(key, default) -> value | default (miss) | nil, err */
static int tagged_get(lua_State *L, client *cl, int tags_idx);
static int tagged_set(lua_State *L, client *cl, int tags_idx, long long ms);
static int push_meta_reply(lua_State *L, client *cl, redisReply *r);

static int cache_get(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    vec v;
    redisReply *r;
    size_t kn;
    if (lua_type(L, 4) == LUA_TTABLE) { /* opts */
        lua_settop(L, 4);
        lua_getfield(L, 4, "tags");
        if (!lua_isnil(L, -1)) return tagged_get(L, cl, 5);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, 4)) {
        return luaL_argerror(L, 4, "opts must be a table");
    }
    kn = key_arg(L, cl, 2, key);
    v.argc = 0;
    vec_str(&v, "GET");
    vec_add(&v, key, kn);
    if (!OBSERVED(cl)) {
        if (run1(L, cl, &v, &r) != 0) return 2;
        if (r->type == REDIS_REPLY_NIL) {
            freeReplyObject(r);
            lua_settop(L, 3);
            return 1; /* the default, or nil */
        }
        if (r->type != REDIS_REPLY_STRING) return unexpected(L, r);
        return push_decoded(L, cl, r->str, r->len, r);
    } else {
        double t0 = hc_now();
        size_t in;
        if (run1(L, cl, &v, &r) != 0) return observe(L, cl, HC_OP_GET, 0, key, kn, 0, 0, t0, 2);
        if (r->type == REDIS_REPLY_NIL) {
            freeReplyObject(r);
            lua_settop(L, 3);
            return observe(L, cl, HC_OP_GET, HC_EV_MISS, key, kn, 0, 0, t0, 1);
        }
        if (r->type != REDIS_REPLY_STRING) return observe(L, cl, HC_OP_GET, 0, key, kn, 0, 0, t0, unexpected(L, r));
        in = r->len;
        return observe(L, cl, HC_OP_GET, HC_EV_HIT, key, kn, in, 0, t0, push_decoded(L, cl, r->str, r->len, r));
    }
}

/* Shared by set and add: mode 0 plain, 1 NX, 2 XX. */
static int do_set(lua_State *L, client *cl, int mode)
{
    char key[HC_FULLKEY_MAX], err[HC_CODEC_ERRLEN];
    size_t kn = key_arg(L, cl, 2, key);
    long long ms = ttl_arg(L, cl, 4);
    hc_buf val;
    vec v;
    redisReply *r;
    hc_cmd c;
    int rc;

    if (lua_isnone(L, 3)) luaL_argerror(L, 3, "value expected");
    hc_buf_init(&val, cl->codec.max_bytes);
    if (hc_encode(L, 3, &cl->codec, &val, err, sizeof err) != 0) {
        hc_buf_free(&val);
        return luaL_argerror(L, 3, err);
    }
    /* From here to hc_buf_free nothing may raise. */
    v.argc = 0;
    vec_str(&v, "SET");
    vec_add(&v, key, kn);
    vec_add(&v, val.data ? val.data : "", val.len);
    if (ms > 0) {
        vec_str(&v, "PX");
        vec_int(&v, 0, ms);
    }
    if (mode == 1) vec_str(&v, "NX");
    if (mode == 2) vec_str(&v, "XX");
    c = vec_cmd(&v);
    {
        char e[HC_ERRLEN];
        double t0 = OBSERVED(cl) ? hc_now() : 0;
        size_t out = val.len;
        int n;
        rc = hc_client_exec(cl, 1, &c, &r, e);
        hc_buf_free(&val);
        if (rc != 0) {
            n = hc_fail(L, e);
        } else if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_NIL) {
            /* nil: the NX/XX condition was not met */
            lua_pushboolean(L, r->type == REDIS_REPLY_STATUS);
            freeReplyObject(r);
            n = 1;
        } else {
            n = unexpected(L, r);
        }
        if (!OBSERVED(cl)) return n;
        return observe(L, cl, HC_OP_SET, HC_EV_SET, key, kn, 0, out, t0, n);
    }
}

/* cache:set(key, value, ttl, opts) -> true | false (nx/xx not met) | nil, err */
static int cache_set(lua_State *L)
{
    client *cl = hc_check_client(L);
    int mode = 0;
    if (!lua_isnoneornil(L, 5)) {
        int nx, xx;
        luaL_checktype(L, 5, LUA_TTABLE);
        lua_settop(L, 5);
        lua_getfield(L, 5, "nx");
        nx = lua_toboolean(L, -1);
        lua_getfield(L, 5, "xx");
        xx = lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (nx && xx) return luaL_argerror(L, 5, "nx and xx are exclusive");
        lua_getfield(L, 5, "tags");
        if (!lua_isnil(L, -1)) {
            long long ms = ttl_arg(L, cl, 4);
            if (nx || xx) return luaL_argerror(L, 5, "tags cannot be combined with nx / xx");
            if (lua_isnone(L, 3)) luaL_argerror(L, 3, "value expected");
            return tagged_set(L, cl, 6, ms);
        }
        lua_pop(L, 1);
        mode = nx ? 1 : xx ? 2 : 0;
    }
    lua_settop(L, 4);
    return do_set(L, cl, mode);
}

/* cache:add(key, value, ttl) -> true (stored) | false (key exists) | nil, err */
static int cache_add(lua_State *L)
{
    client *cl = hc_check_client(L);
    lua_settop(L, 4);
    return do_set(L, cl, 1);
}

/* ---- many keys ----------------------------------------------------------------- */

/* Composes the keys of the list at idx into GC-owned memory and returns
 * the argument vector with `lead` free slots in front. Raises naming the
 * bad key. */
static hc_cmd keys_vector(lua_State *L, const client *cl, int idx, int lead, int *n)
{
    int i, count;
    size_t total = 0;
    char *bytes, key[HC_FULLKEY_MAX];
    const char **argv;
    size_t *lens;
    hc_cmd c;

    luaL_checktype(L, idx, LUA_TTABLE);
    count = (int)lua_rawlen(L, idx);
    for (i = 1; i <= count; i++) {
        const char *why = NULL;
        size_t kn;
        lua_rawgeti(L, idx, i);
        kn = compose(L, cl, cl->version, lua_gettop(L), key, &why);
        lua_pop(L, 1);
        if (kn == 0) luaL_argerror(L, idx, lua_pushfstring(L, "keys[%d]: %s", i, why));
        total += kn;
    }
    lens = (size_t *)lua_newuserdata(L, (size_t)(count + lead) * (sizeof *lens + sizeof *argv) + total + 1);
    argv = (const char **)(lens + count + lead);
    bytes = (char *)(argv + count + lead);
    for (i = 1; i <= count; i++) {
        const char *why;
        size_t kn;
        lua_rawgeti(L, idx, i);
        kn = compose(L, cl, cl->version, lua_gettop(L), key, &why);
        lua_pop(L, 1);
        memcpy(bytes, key, kn);
        argv[lead + i - 1] = bytes;
        lens[lead + i - 1] = kn;
        bytes += kn;
    }
    *n = count;
    c.argc = count + lead;
    c.argv = argv;
    c.argvlen = lens;
    return c;
}

typedef struct many {
    client *cl;
    redisReply *r;
    hc_decoding d; /* the element being decoded; freed again by the caller */
} many;

/* args: keys list. Returns values map (+ errors map when some failed). */
static int get_many_cb(lua_State *L, void *ud)
{
    many *m = (many *)ud;
    size_t i;
    int has_errors = 0;
    lua_createtable(L, 0, (int)m->r->elements); /* 2: values */
    lua_newtable(L);                             /* 3: errors */
    for (i = 0; i < m->r->elements; i++) {
        redisReply *e = m->r->element[i];
        int rc;
        if (e->type != REDIS_REPLY_STRING) continue; /* a miss */
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        hc_decoding_init(&m->d, &m->cl->codec, e->str, e->len);
        rc = hc_decode_push(L, &m->d);
        hc_decoding_done(&m->d);
        if (rc == 0) {
            lua_rawset(L, 2);
        } else {
            lua_pushfstring(L, "decode error: %s", m->d.err);
            lua_rawset(L, 3);
            has_errors = 1;
        }
    }
    if (!has_errors) lua_pop(L, 1);
    return has_errors ? 2 : 1;
}

/* cache:get_many(keys) -> {key = value} (misses absent)[, {key = err}] | nil, err */
static int cache_get_many(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    redisReply *r;
    hc_cmd c;
    many m;
    int n, top, st;
    double t0;

    lua_settop(L, 2);
    c = keys_vector(L, cl, 2, 1, &n);
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    ((const char **)c.argv)[0] = "MGET";
    ((size_t *)c.argvlen)[0] = 4;
    t0 = OBSERVED(cl) ? hc_now() : 0;
    if (hc_client_exec(cl, 1, &c, &r, err) != 0) return hc_fail(L, err);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n) return unexpected(L, r);
    m.cl = cl;
    m.r = r;
    hc_decoding_init(&m.d, &cl->codec, NULL, 0);
    top = lua_gettop(L);
    lua_pushvalue(L, 2);
    {
        size_t i, hits = 0, in = 0;
        for (i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING) {
                hits++;
                in += r->element[i]->len;
            }
        st = hc_pcall(L, get_many_cb, &m, 1, LUA_MULTRET);
        hc_decoding_done(&m.d);
        freeReplyObject(r);
        if (st == -1) return luaL_error(L, "stack overflow");
        if (st != 0) return lua_error(L);
        if (OBSERVED(cl)) {
            if (cl->stats) {
                hc_stats_count(cl->stats, HC_EV_HIT, hits, NULL, 0);
                hc_stats_count(cl->stats, HC_EV_MISS, (unsigned long long)n - hits, NULL, 0);
            }
            hc_client_event(L, cl, HC_OP_GET_MANY, 0, NULL, 0, in, 0, t0, NULL);
        }
    }
    return lua_gettop(L) - top;
}

/* cache:set_many(map, ttl) -> {failed keys} ({} when all stored) | nil, err */
static int cache_set_many(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_CODEC_ERRLEN], ioerr[HC_ERRLEN];
    long long ms;
    int n = 0, i, rc, nfailed = 0;
    size_t total = 0;
    hc_cmd *cmds;
    hc_buf *vals;
    const char **argv;
    size_t *lens;
    char *bytes, ttl[32];
    int *failed;
    redisReply **replies;

    luaL_checktype(L, 2, LUA_TTABLE);
    ms = ttl_arg(L, cl, 3);
    lua_settop(L, 3);
    /* 4: the keys, in a list, checked and measured */
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        const char *why = NULL;
        size_t kn = compose(L, cl, cl->version, lua_gettop(L) - 1, key, &why);
        if (kn == 0) luaL_argerror(L, 2, why);
        total += kn;
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 4, ++n);
    }
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    /* 5: every C array this call needs, owned by the GC */
    cmds = (hc_cmd *)lua_newuserdata(L, (size_t)n * (sizeof *cmds + sizeof *vals + 5 * (sizeof *argv + sizeof *lens) +
                                                   sizeof *failed + sizeof *replies) + total + 1);
    vals = (hc_buf *)(cmds + n);
    replies = (redisReply **)(vals + n);
    argv = (const char **)(replies + n);
    lens = (size_t *)(argv + 5 * n);
    failed = (int *)(lens + 5 * n);
    bytes = (char *)(failed + n);
    snprintf(ttl, sizeof ttl, "%lld", ms);
    for (i = 0; i < n; i++) hc_buf_init(&vals[i], cl->codec.max_bytes);
    /* Encode every value: no Lua allocation from here to the frees. */
    for (i = 0; i < n; i++) {
        const char *why = NULL;
        size_t kn;
        int k = 5 * i;
        lua_rawgeti(L, 4, i + 1);
        kn = compose(L, cl, cl->version, lua_gettop(L), key, &why);
        lua_rawget(L, 2);
        if (hc_encode(L, lua_gettop(L), &cl->codec, &vals[i], err, sizeof err) != 0) {
            int j;
            for (j = 0; j <= i; j++) hc_buf_free(&vals[j]);
            /* the buffers are freed: raising is safe now */
            lua_rawgeti(L, 4, i + 1);
            return luaL_argerror(L, 2, lua_pushfstring(L, "key '%s': %s", lua_tostring(L, -1), err));
        }
        lua_pop(L, 1);
        memcpy(bytes, key, kn);
        argv[k] = "SET";           lens[k] = 3;
        argv[k + 1] = bytes;       lens[k + 1] = kn;
        argv[k + 2] = vals[i].data ? vals[i].data : ""; lens[k + 2] = vals[i].len;
        argv[k + 3] = "PX";        lens[k + 3] = 2;
        argv[k + 4] = ttl;         lens[k + 4] = strlen(ttl);
        cmds[i].argc = ms > 0 ? 5 : 3;
        cmds[i].argv = argv + k;
        cmds[i].argvlen = lens + k;
        bytes += kn;
    }
    {
        double t0 = OBSERVED(cl) ? hc_now() : 0;
        size_t out = 0;
        for (i = 0; i < n; i++) out += vals[i].len;
        rc = hc_client_exec(cl, n, cmds, replies, ioerr);
        for (i = 0; i < n; i++) hc_buf_free(&vals[i]);
        if (rc != 0) return hc_fail(L, ioerr);
        for (i = 0; i < n; i++) {
            if (replies[i]->type != REDIS_REPLY_STATUS) failed[nfailed++] = i + 1;
            freeReplyObject(replies[i]);
        }
        if (OBSERVED(cl)) { /* the replies are freed: the hook may raise */
            if (cl->stats) hc_stats_count(cl->stats, HC_EV_SET, (unsigned long long)(n - nfailed), NULL, 0);
            hc_client_event(L, cl, HC_OP_SET_MANY, 0, NULL, 0, 0, out, t0, NULL);
        }
    }
    lua_createtable(L, nfailed, 0);
    for (i = 0; i < nfailed; i++) {
        lua_rawgeti(L, 4, failed[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* ---- delete, exists, counters, expiry --------------------------------------------- */

static int integer_reply(lua_State *L, redisReply *r, int as_bool)
{
    long long x;
    if (r->type != REDIS_REPLY_INTEGER) return unexpected(L, r);
    x = r->integer;
    freeReplyObject(r);
    if (as_bool) lua_pushboolean(L, x > 0);
    else lua_pushinteger(L, (lua_Integer)x);
    return 1;
}

/* One command on one key: name key [extra] -> integer or bool. */
static int key_command(lua_State *L, const char *name, int as_bool)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = key_arg(L, cl, 2, key);
    vec v;
    redisReply *r;
    v.argc = 0;
    vec_str(&v, name);
    vec_add(&v, key, kn);
    if (run1(L, cl, &v, &r) != 0) return 2;
    return integer_reply(L, r, as_bool);
}

/* cache:has_key(key) -> bool | nil, err */
static int cache_has_key(lua_State *L) { return key_command(L, "EXISTS", 1); }

/* cache:persist(key) -> true (a TTL was removed) | false | nil, err */
static int cache_persist(lua_State *L) { return key_command(L, "PERSIST", 1); }

/* cache:ttl(key) -> seconds left | 0 (no expiry) | nil (missing) | nil, err */
static int cache_ttl(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = key_arg(L, cl, 2, key);
    vec v;
    redisReply *r;
    long long ms;
    v.argc = 0;
    vec_str(&v, "PTTL");
    vec_add(&v, key, kn);
    if (run1(L, cl, &v, &r) != 0) return 2;
    if (r->type != REDIS_REPLY_INTEGER) return unexpected(L, r);
    ms = r->integer;
    freeReplyObject(r);
    if (ms == -2) lua_pushnil(L);
    else if (ms == -1) lua_pushinteger(L, 0);
    else lua_pushnumber(L, (lua_Number)ms / 1000.0);
    return 1;
}

/* cache:expire(key, ttl) / cache:touch(key, ttl) -> true (key exists) | false | nil, err
 * ttl nil -> the cache default; 0 -> never expires. */
static int cache_expire(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], err[HC_ERRLEN];
    size_t kn = key_arg(L, cl, 2, key);
    long long ms = ttl_arg(L, cl, 3);
    redisReply *r[2];
    vec a, b;
    hc_cmd c[2];
    a.argc = b.argc = 0;
    if (ms > 0) {
        vec_str(&a, "PEXPIRE");
        vec_add(&a, key, kn);
        vec_int(&a, 0, ms);
        c[0] = vec_cmd(&a);
        if (hc_client_exec(cl, 1, c, r, err) != 0) return hc_fail(L, err);
        return integer_reply(L, r[0], 1);
    }
    vec_str(&a, "PERSIST");
    vec_add(&a, key, kn);
    vec_str(&b, "EXISTS");
    vec_add(&b, key, kn);
    c[0] = vec_cmd(&a);
    c[1] = vec_cmd(&b);
    if (hc_client_exec(cl, 2, c, r, err) != 0) return hc_fail(L, err);
    freeReplyObject(r[0]);
    return integer_reply(L, r[1], 1);
}

/* ---- scripts run by EVALSHA (loaded once, again after NOSCRIPT) ---------- */

/* INCRBY only on an existing key, so a missing key is an error and the
 * TTL is kept (INCRBY never touches it). KEYS: key  ARGV: delta */
static const char incr_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('HICACHE missing') end\n"
    "return redis.call('INCRBY', KEYS[1], ARGV[1])\n";

/* The name of a tagged entry from the current generations of its key and
 * tags ({base}@g0.g1...), and its value if present (else {name}).
 * KEYS: base, gen, tag gens...  ARGV: "value" or "name" */
static const char tagged_get_script[] =
    "local g = redis.call('MGET', unpack(KEYS, 2))\n"
    "for i = 1, #g do g[i] = g[i] or '0' end\n"
    "local name = '{' .. KEYS[1] .. '}@' .. table.concat(g, '.')\n"
    "if ARGV[1] == 'name' then return {name} end\n"
    "local v = redis.call('GET', name)\n"
    "if v then return v end\n"
    "return {name}\n";

/* Stores a tagged entry under the current generations and creates the
 * key's generation (so invalidate(key) can move it on).
 * KEYS: base, gen, tag gens...  ARGV: bytes, px (0 = no expiry) */
static const char tagged_set_script[] =
    "local g = redis.call('MGET', unpack(KEYS, 2))\n"
    "for i = 1, #g do g[i] = g[i] or '0' end\n"
    "local name = '{' .. KEYS[1] .. '}@' .. table.concat(g, '.')\n"
    "if ARGV[2] == '0' then redis.call('SET', name, ARGV[1]) else redis.call('SET', name, ARGV[1], 'PX', ARGV[2]) end\n"
    "redis.call('SET', KEYS[2], '0', 'NX')\n"
    "return 1\n";

static const char *const script_src[HC_SCRIPTS] = {incr_script, tagged_get_script, tagged_set_script};

/* Runs script id with argv[2..argc) (argv[0], argv[1] are filled here:
 * EVALSHA sha). 0 with *r (any reply but NOSCRIPT), or -1 with err. */
static int eval_script(client *cl, int id, int argc, const char **argv, size_t *lens,
                       redisReply **r, char *err)
{
    int attempt;
    for (attempt = 0; attempt < 2; attempt++) {
        hc_cmd c;
        if (cl->sha[id][0] == '\0') {
            const char *la[3] = {"SCRIPT", "LOAD", script_src[id]};
            size_t ll[3] = {6, 4, strlen(script_src[id])};
            redisReply *lr;
            c.argc = 3;
            c.argv = la;
            c.argvlen = ll;
            if (hc_client_exec(cl, 1, &c, &lr, err) != 0) return -1;
            if (lr->type != REDIS_REPLY_STRING || lr->len != 40) {
                snprintf(err, HC_ERRLEN, "%s", lr->type == REDIS_REPLY_ERROR ? lr->str : "SCRIPT LOAD failed");
                freeReplyObject(lr);
                return -1;
            }
            memcpy(cl->sha[id], lr->str, 40);
            cl->sha[id][40] = '\0';
            freeReplyObject(lr);
        }
        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = cl->sha[id];
        lens[1] = 40;
        c.argc = argc;
        c.argv = argv;
        c.argvlen = lens;
        if (hc_client_exec(cl, 1, &c, r, err) != 0) return -1;
        if ((*r)->type == REDIS_REPLY_ERROR && strncmp((*r)->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(*r);
            cl->sha[id][0] = '\0'; /* flushed or restarted: load again */
            continue;
        }
        return 0;
    }
    snprintf(err, HC_ERRLEN, "script could not be loaded");
    return -1;
}

/* ---- tags: entries named {base}@<generations> ---------------------------- */

/* Builds [EVALSHA, sha, nkeys, base, {base}:gen, tag keys...] + `extra`
 * free slots, in GC-owned memory (may raise: call it first). Returns the
 * number of filled slots. */
static int tagged_vec(lua_State *L, client *cl, int key_idx, int tags_idx, int extra,
                      const char ***argv_out, size_t **lens_out)
{
    char base[HC_FULLKEY_MAX];
    size_t bn = key_arg(L, cl, key_idx, base);
    int ntags, i, nkeys, anchor;
    const char **argv;
    size_t *lens;
    if (lua_type(L, tags_idx) != LUA_TTABLE) luaL_argerror(L, tags_idx, "opts.tags must be a list of strings");
    ntags = (int)lua_rawlen(L, tags_idx);
    if (ntags < 1) luaL_argerror(L, tags_idx, "opts.tags must be a non-empty list");
    nkeys = 2 + ntags;
    lua_createtable(L, nkeys + 1, 0);
    anchor = lua_gettop(L);
    lua_pushlstring(L, base, bn);
    lua_rawseti(L, anchor, 1);
    lua_pushliteral(L, "{");
    lua_pushlstring(L, base, bn);
    lua_pushliteral(L, "}:gen");
    lua_concat(L, 3);
    lua_rawseti(L, anchor, 2);
    for (i = 1; i <= ntags; i++) {
        size_t tn;
        lua_rawgeti(L, tags_idx, i);
        if (lua_type(L, -1) != LUA_TSTRING || (lua_tolstring(L, -1, &tn), tn == 0) || tn > HC_KEY_MAX)
            luaL_argerror(L, tags_idx, "opts.tags must hold non-empty strings of at most 1024 bytes");
        lua_pushfstring(L, "%s:tag:{", cl->prefix);
        lua_insert(L, -2);
        lua_pushliteral(L, "}");
        lua_concat(L, 3);
        lua_rawseti(L, anchor, 2 + i);
    }
    lua_pushfstring(L, "%d", nkeys);
    lua_rawseti(L, anchor, nkeys + 1);
    lens = (size_t *)lua_newuserdata(L, (size_t)(3 + nkeys + extra) * (sizeof *lens + sizeof *argv));
    argv = (const char **)(lens + 3 + nkeys + extra);
    lua_rawgeti(L, anchor, nkeys + 1);
    argv[2] = lua_tolstring(L, -1, &lens[2]);
    lua_pop(L, 1);
    for (i = 1; i <= nkeys; i++) {
        lua_rawgeti(L, anchor, i);
        argv[2 + i] = lua_tolstring(L, -1, &lens[2 + i]); /* anchored by the table */
        lua_pop(L, 1);
    }
    *argv_out = argv;
    *lens_out = lens;
    return 3 + nkeys;
}

/* cache:_tagged(key, tags, mode) -> true, value[, soft, delta] | false, {name}
 * | nil, err. mode "name": only the current name. */
static int cache_tagged(lua_State *L)
{
    client *cl = hc_check_client(L);
    const char **argv;
    size_t *lens;
    char err[HC_ERRLEN];
    redisReply *r;
    int name_only, n;
    lua_settop(L, 4);
    name_only = lua_type(L, 4) == LUA_TSTRING && strcmp(lua_tostring(L, 4), "name") == 0;
    n = tagged_vec(L, cl, 2, 3, 1, &argv, &lens);
    argv[n] = name_only ? "name" : "value";
    lens[n] = strlen(argv[n]);
    if (eval_script(cl, HC_SCRIPT_TAGGED_GET, n + 1, argv, lens, &r, err) != 0) return hc_fail(L, err);
    return push_meta_reply(L, cl, r);
}

/* get with opts.tags: the value, or default when there is none */
static int tagged_get(lua_State *L, client *cl, int tags_idx)
{
    const char **argv;
    size_t *lens;
    char err[HC_ERRLEN];
    redisReply *r;
    int n = tagged_vec(L, cl, 2, tags_idx, 1, &argv, &lens);
    argv[n] = "value";
    lens[n] = 5;
    if (eval_script(cl, HC_SCRIPT_TAGGED_GET, n + 1, argv, lens, &r, err) != 0) return hc_fail(L, err);
    if (r->type == REDIS_REPLY_ARRAY) { /* a miss */
        freeReplyObject(r);
        lua_pushvalue(L, 3);
        return 1;
    }
    if (r->type != REDIS_REPLY_STRING) return unexpected(L, r);
    return push_decoded(L, cl, r->str, r->len, r);
}

/* set with opts.tags: stored under the current generations */
static int tagged_set(lua_State *L, client *cl, int tags_idx, long long ms)
{
    const char **argv;
    size_t *lens;
    char err[HC_CODEC_ERRLEN], ioerr[HC_ERRLEN], px[32];
    redisReply *r;
    hc_buf val;
    int n = tagged_vec(L, cl, 2, tags_idx, 2, &argv, &lens), rc;
    hc_buf_init(&val, cl->codec.max_bytes);
    if (hc_encode(L, 3, &cl->codec, &val, err, sizeof err) != 0) {
        hc_buf_free(&val);
        return luaL_argerror(L, 3, err);
    }
    argv[n] = val.data ? val.data : "";
    lens[n] = val.len;
    lens[n + 1] = (size_t)snprintf(px, sizeof px, "%lld", ms);
    argv[n + 1] = px;
    rc = eval_script(cl, HC_SCRIPT_TAGGED_SET, n + 2, argv, lens, &r, ioerr);
    hc_buf_free(&val);
    if (rc != 0) return hc_fail(L, ioerr);
    if (r->type != REDIS_REPLY_INTEGER) return unexpected(L, r);
    freeReplyObject(r);
    lua_pushboolean(L, 1);
    return 1;
}

static int incr_by(lua_State *L, client *cl, const char *key, size_t kn, long long delta)
{
    char err[HC_ERRLEN], msg[HC_ERRLEN], num[32];
    const char *argv[5];
    size_t lens[5];
    redisReply *r;
    int n = snprintf(num, sizeof num, "%lld", delta);
    argv[2] = "1";  lens[2] = 1;
    argv[3] = key;  lens[3] = kn;
    argv[4] = num;  lens[4] = (size_t)n;
    double t0 = OBSERVED(cl) ? hc_now() : 0;
    if (eval_script(cl, HC_SCRIPT_INCR, 5, argv, lens, &r, err) != 0) {
        hc_fail(L, err);
        return OBSERVED(cl) ? observe(L, cl, HC_OP_INCR, 0, key, kn, 0, 0, t0, 2) : 2;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        integer_reply(L, r, 0);
        return OBSERVED(cl) ? observe(L, cl, HC_OP_INCR, 0, key, kn, 0, 0, t0, 1) : 1;
    }
    if (r->type != REDIS_REPLY_ERROR) return unexpected(L, r);
    snprintf(msg, sizeof msg, "%s", r->str);
    freeReplyObject(r);
    if (strstr(msg, "HICACHE missing")) return hc_fail(L, "not found");
    if (strstr(msg, "overflow")) return hc_fail(L, "overflow");
    if (strstr(msg, "not an integer")) return hc_fail(L, "not an integer");
    return hc_fail(L, msg);
}

static int do_incr(lua_State *L, int sign)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = key_arg(L, cl, 2, key);
    lua_Integer n = 1;
    if (!lua_isnoneornil(L, 3)) {
        if (!hc_isinteger(L, 3)) return luaL_argerror(L, 3, "delta must be an integer");
        n = lua_tointeger(L, 3);
    }
    if (sign < 0) {
        if (n == (lua_Integer)(-9223372036854775807LL - 1)) return hc_fail(L, "overflow");
        n = -n;
    }
    return incr_by(L, cl, key, kn, (long long)n);
}

/* cache:incr(key, n) / cache:decr(key, n) -> new value | nil, "not found" |
 * nil, "not an integer" | nil, "overflow" | nil, err */
static int cache_incr(lua_State *L) { return do_incr(L, 1); }
static int cache_decr(lua_State *L) { return do_incr(L, -1); }

/* cache:incr_version(key, delta) -> new version | nil, "not found" | nil, err
 * Moves the entry (value and TTL) from this cache's version to
 * version + delta, as Django's incr_version does, with one RENAME. */
static int cache_incr_version(lua_State *L)
{
    client *cl = hc_check_client(L);
    char from[HC_FULLKEY_MAX], to[HC_FULLKEY_MAX], msg[HC_ERRLEN];
    const char *why = NULL;
    size_t fn = key_arg(L, cl, 2, from), tn;
    lua_Integer delta = 1;
    vec v;
    redisReply *r;
    if (!lua_isnoneornil(L, 3)) {
        if (!hc_isinteger(L, 3)) return luaL_argerror(L, 3, "delta must be an integer");
        delta = lua_tointeger(L, 3);
    }
    if (delta > 1000000000 || delta < -1000000000) return luaL_argerror(L, 3, "delta out of range");
    tn = compose(L, cl, cl->version + (long long)delta, 2, to, &why);
    v.argc = 0;
    vec_str(&v, "RENAME");
    vec_add(&v, from, fn);
    vec_add(&v, to, tn);
    if (run1(L, cl, &v, &r) != 0) return 2;
    if (r->type == REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        lua_pushinteger(L, (lua_Integer)(cl->version + (long long)delta));
        return 1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof msg, "%s", r->str);
        freeReplyObject(r);
        return hc_fail(L, strstr(msg, "no such key") ? "not found" : msg);
    }
    return unexpected(L, r);
}

/* cache:_namespace() -> "prefix:version:" (for keys/delete_pattern/clear) */
static int cache_namespace(lua_State *L)
{
    client *cl = hc_check_client(L);
    char buf[HC_PREFIX_MAX + 32];
    int n = snprintf(buf, sizeof buf, "%s:%lld:", cl->prefix, cl->version);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int push_buf_cb(lua_State *L, void *ud)
{
    hc_buf *b = (hc_buf *)ud;
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    return 1;
}

/* Pushes the bytes of b as a string and frees b, also when Lua raises. */
static int push_buf(lua_State *L, hc_buf *b)
{
    int st = hc_pcall(L, push_buf_cb, b, 0, 1);
    hc_buf_free(b);
    if (st == -1) return luaL_error(L, "stack overflow");
    if (st != 0) return lua_error(L);
    return 1;
}

/* cache:encode(value) -> bytes: the codec alone (tests, tools, transports). */
static int cache_encode(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_CODEC_ERRLEN];
    hc_buf b;
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    hc_buf_init(&b, cl->codec.max_bytes);
    if (hc_encode(L, 2, &cl->codec, &b, err, sizeof err) != 0) {
        hc_buf_free(&b);
        return luaL_argerror(L, 2, err);
    }
    return push_buf(L, &b);
}

/* cache:decode(bytes) -> value | nil, "decode error: ..." */
static int cache_decode(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    return push_decoded(L, cl, p, n, NULL);
}

/* cache:_tag_key(tag) -> "prefix:tag:{tag}": the tag's generation counter */
static int cache_tag_key(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t n;
    luaL_checklstring(L, 2, &n);
    if (n == 0 || n > HC_KEY_MAX) return luaL_argerror(L, 2, "a tag must be 1 to 1024 bytes");
    lua_pushfstring(L, "%s:tag:{", cl->prefix);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "}");
    lua_concat(L, 3);
    return 1;
}

/* cache:_key(key) -> "prefix:version:key" (raises on a bad key) */
static int cache_key(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = key_arg(L, cl, 2, key);
    lua_pushlstring(L, key, kn);
    return 1;
}

typedef struct meta {
    hc_decoding d;
} meta;

static int get_meta_cb(lua_State *L, void *ud)
{
    meta *m = (meta *)ud;
    lua_pushboolean(L, 1);
    if (hc_decode_push(L, &m->d) != 0) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushfstring(L, "decode error: %s", m->d.err);
        return 2;
    }
    if (!m->d.enveloped) return 2;
    lua_pushinteger(L, (lua_Integer)m->d.soft_ms);
    lua_pushinteger(L, (lua_Integer)m->d.delta_ms);
    return 4;
}

/* Pushes what a value read gives: nil reply -> false; bulk -> true, value
 * [, soft_ms, delta_ms]; error -> nil, msg; array (the tagged-read script's
 * answer when there is no entry) -> false, table. Frees r on every path. */
static int push_meta_reply(lua_State *L, client *cl, redisReply *r)
{
    meta m;
    int top, st;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        lua_pushboolean(L, 0);
        return 1;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        lua_pushboolean(L, 0);
        return 1 + hc_reply_push_one(L, r);
    }
    if (r->type != REDIS_REPLY_STRING) return unexpected(L, r);
    hc_decoding_init(&m.d, &cl->codec, r->str, r->len);
    top = lua_gettop(L);
    st = hc_pcall(L, get_meta_cb, &m, 0, LUA_MULTRET);
    hc_decoding_done(&m.d);
    freeReplyObject(r);
    if (st == -1) return luaL_error(L, "stack overflow");
    if (st != 0) return lua_error(L);
    return lua_gettop(L) - top;
}

static int get_meta(lua_State *L, client *cl, const char *key, size_t kn)
{
    vec v;
    redisReply *r;
    v.argc = 0;
    vec_str(&v, "GET");
    vec_add(&v, key, kn);
    if (run1(L, cl, &v, &r) != 0) return 2;
    return push_meta_reply(L, cl, r);
}

/* cache:_get_meta(key) -> true, value[, soft_ms, delta_ms] | false (miss) | nil, err
 * One GET, as cache:get; an enveloped entry also gives its metadata. */
static int cache_get_meta(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = key_arg(L, cl, 2, key);
    return get_meta(L, cl, key, kn);
}

/* cache:_get_meta_raw(full_key): the same for a key already composed */
static int cache_get_meta_raw(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t kn;
    const char *key = luaL_checklstring(L, 2, &kn);
    return get_meta(L, cl, key, kn);
}

/* cache:_encode_env(value, soft_ms, delta_ms) -> bytes of an envelope */
static int cache_encode_env(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_CODEC_ERRLEN];
    long long soft = (long long)luaL_checkinteger(L, 3), delta = (long long)luaL_checkinteger(L, 4);
    hc_buf b;
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    hc_buf_init(&b, cl->codec.max_bytes);
    if (hc_encode_envelope(L, 2, &cl->codec, soft, delta, &b, err, sizeof err) != 0) {
        hc_buf_free(&b);
        return luaL_argerror(L, 2, err);
    }
    return push_buf(L, &b);
}

static const luaL_Reg cache_methods[] = {
    {"_key", cache_key},
    {"_tag_key", cache_tag_key},
    {"_tagged", cache_tagged},
    {"_get_meta", cache_get_meta},
    {"_get_meta_raw", cache_get_meta_raw},
    {"_encode_env", cache_encode_env},
    {"get", cache_get},
    {"set", cache_set},
    {"add", cache_add},
    {"get_many", cache_get_many},
    {"set_many", cache_set_many},
    {"has_key", cache_has_key},
    {"incr", cache_incr},
    {"decr", cache_decr},
    {"ttl", cache_ttl},
    {"expire", cache_expire},
    {"touch", cache_expire},
    {"persist", cache_persist},
    {"incr_version", cache_incr_version},
    {"_namespace", cache_namespace},
    {"encode", cache_encode},
    {"decode", cache_decode},
    {NULL, NULL}};

void hc_cache_register(lua_State *L)
{
    luaL_setfuncs(L, cache_methods, 0);
}
