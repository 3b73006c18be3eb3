/*
 * hc_cache.c -- what the cache API files share (hc_ops.h): key and TTL
 * arguments, observation, decoding; and the small methods that are
 * neither reads nor writes (encode, decode, key names).
 *
 * The rules of every cache method: arguments are checked and keys
 * composed before any C buffer is allocated or a connection borrowed;
 * values are encoded without raising; replies are decoded inside hc_pcall
 * and freed before any error is re-raised.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_ops.h"
#include "hc_slot.h"
#include "hc_reply.h"
#include "hc_time.h"

/* ---- keys and TTLs --------------------------------------------------------- */

size_t hc_key_compose(lua_State *L, const client *cl, long long version, int idx, char *buf,
                      const char **why)
{
    char num[40], ns[HC_PREFIX_MAX + 24];
    const char *k;
    size_t kn, head;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        k = lua_tolstring(L, idx, &kn);
        break;
    case LUA_TNUMBER:
        if (hc_isinteger(L, idx)) kn = (size_t)snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        else {
            /* a float key: %.17g round-trips every finite double and keeps
             * the sign of -0.0 ("-0", never the integer key "0"); NaN and
             * the infinities name no value and are refused */
            double d = (double)lua_tonumber(L, idx);
            if (d != d || d - d != 0) {
                *why = "key must not be NaN or infinite";
                return 0;
            }
            kn = (size_t)snprintf(num, sizeof num, "%.17g", d);
        }
        k = num;
        break;
    default:
        *why = "key must be a string or a number";
        return 0;
    }
    if (kn > HC_KEY_MAX) {
        *why = "key longer than 1024 bytes: build it with hicache.keys (opts.max_length, keys.hashed) to hash long parts";
        return 0;
    }
    if (version == cl->version) return hc_name_value(buf, cl->ns, cl->ns_len, k, kn);
    head = hc_name_namespace(ns, cl->prefix, cl->prefix_len, version);
    return hc_name_value(buf, ns, head, k, kn);
}

size_t hc_key_arg(lua_State *L, const client *cl, int idx, char *buf)
{
    const char *why = NULL;
    size_t n = hc_key_compose(L, cl, cl->version, idx, buf, &why);
    if (n == 0) luaL_argerror(L, idx, why);
    return n;
}

long long hc_ttl_arg(lua_State *L, const client *cl, int idx)
{
    double t;
    if (lua_isnoneornil(L, idx)) return cl->ttl_ms;
    if (lua_type(L, idx) != LUA_TNUMBER) luaL_argerror(L, idx, "ttl must be a number of seconds");
    t = (double)lua_tonumber(L, idx);
    if (!(t >= 0)) luaL_argerror(L, idx, "ttl must be a non-negative number");
    if (t > 1e11) luaL_argerror(L, idx, "ttl too large");
    return (long long)ceil(t * 1000.0);
}

int hc_parse_ll(const char *s, size_t n, long long *v)
{
    char buf[24], *end;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    *v = strtoll(buf, &end, 10);
    return errno != 0 || *end != '\0' ? -1 : 0;
}

const char *const hc_opts_tags_only[] = {"tags", NULL};

void hc_opts_check(lua_State *L, int idx, int argn, const char *const *known)
{
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) != LUA_TTABLE) luaL_argerror(L, argn, "opts must be a table");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int i, ok = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (i = 0; known[i] != NULL && !ok; i++) ok = strcmp(k, known[i]) == 0;
        }
        if (!ok) {
            const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
            luaL_argerror(L, argn, lua_pushfstring(L, "unknown option '%s'", name));
        }
    }
}

void hc_list_check(lua_State *L, int idx, int argn, const char *what)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (!hc_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            luaL_argerror(L, argn, lua_pushfstring(L, "%s must be a list (no holes, no other keys)", what));
        }
    }
    if (count != n) luaL_argerror(L, argn, lua_pushfstring(L, "%s must be a list (no holes, no other keys)", what));
}

int hc_opts_tags(lua_State *L, int idx, int argn, hc_taglist *t, const char *const *known)
{
    int top = lua_gettop(L);
    hc_opts_check(L, idx, argn, known);
    if (lua_isnoneornil(L, idx)) return 0;
    lua_getfield(L, idx, "tags");
    if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        return 0;
    }
    hc_taglist_from_lua(L, lua_gettop(L), argn, t);
    lua_settop(L, top); /* the names stay anchored by opts.tags */
    return 1;
}

/* ---- namespace companions (the epoch of clear() and delete_pattern()) ---- */

size_t hc_epoch_slot_name(const client *cl, int slot, char *buf)
{
    /* P:e:{<tag of the slot>}:<version>:epoch -- "e" is no integer, so no
     * value key (P:<integer>:k) nor other internal name starts so */
    const char *tag = hc_slot_tag(slot);
    size_t n = 0, tn = strlen(tag), vn = cl->ns_len - cl->prefix_len - 1;
    memcpy(buf + n, cl->prefix, cl->prefix_len);
    n += cl->prefix_len;
    memcpy(buf + n, ":e:{", 4);
    n += 4;
    memcpy(buf + n, tag, tn);
    n += tn;
    memcpy(buf + n, "}:", 2);
    n += 2;
    memcpy(buf + n, cl->ns + cl->prefix_len + 1, vn); /* "<version>:" */
    n += vn;
    memcpy(buf + n, "epoch", 5);
    return n + 5;
}

size_t hc_epoch_slot_wake_name(const client *cl, int slot, const char *epoch, size_t en, char *buf)
{
    size_t n = hc_epoch_slot_name(cl, slot, buf);
    if (en > 64) en = 64;
    buf[n++] = ':';
    memcpy(buf + n, epoch, en);
    return n + en;
}

size_t hc_epoch_name(const client *cl, const char *v, size_t vn, char *buf)
{
    if (cl->cluster) return hc_epoch_slot_name(cl, hc_slot(v, vn), buf);
    return hc_name_companion(buf, cl->prefix, cl->prefix_len, cl->ns, cl->ns_len, "epoch", 5);
}

size_t hc_epoch_wake_name(const client *cl, const char *v, size_t vn, const char *epoch, size_t en, char *buf)
{
    char what[8 + 64];
    if (cl->cluster) return hc_epoch_slot_wake_name(cl, hc_slot(v, vn), epoch, en, buf);
    if (en > 64) en = 64;
    memcpy(what, "epoch:", 6);
    memcpy(what + 6, epoch, en);
    return hc_name_companion(buf, cl->prefix, cl->prefix_len, cl->ns, cl->ns_len, what, 6 + en);
}

/* The TAGS script over t (hc_scripts.c): mode 'p' creates missing tags
 * with fresh tokens (into tokens), 'x' only extends; px ms. */
void hc_tags_script(hc_cmdb *b, client *cl, const hc_taglist *t, char mode, long long px, char *tokens)
{
    char key[HC_PREFIX_MAX + HC_TAG_MAX + 8], m[2] = {mode, '\0'};
    int i;
    hc_client_script(cl, b, HC_SCRIPT_TAGS);
    hc_cmdb_int(b, t->n);
    for (i = 0; i < t->n; i++) hc_cmdb_add(b, key, hc_name_tag(key, cl->prefix, cl->prefix_len, t->name[i], t->name_len[i]));
    hc_cmdb_str(b, m);
    hc_cmdb_int(b, px);
    if (mode == 'p') {
        hc_client_tokens(cl, tokens, t->n);
        for (i = 0; i < t->n; i++) hc_cmdb_ref(b, tokens + i * (HC_TOKEN_LEN + 1), HC_TOKEN_LEN);
    }
    hc_cmdb_end(b);
}

/* ---- results ------------------------------------------------------------------ */

int hc_observe(lua_State *L, client *cl, int op, unsigned ev, const char *key, size_t kn, size_t in,
               size_t out, double t0, int n)
{
    const char *err = NULL;
    if (n == 2 && lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
        err = lua_tostring(L, -1);
        ev = HC_EV_ERROR;
    }
    hc_client_event(L, cl, op, ev, key, kn, in, out, t0, err);
    return n;
}

int hc_call_observed(lua_State *L, lua_CFunction fn, int op, unsigned ev)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    const char *why;
    size_t kn;
    double t0;
    int n;
    if (!HC_OBSERVED(cl)) return fn(L);
    t0 = hc_client_t0(cl);
    n = fn(L); /* raises on a bad key before any I/O: then nothing to record */
    kn = hc_key_compose(L, cl, cl->version, 2, key, &why);
    return hc_observe(L, cl, op, ev, key, kn, 0, 0, t0, n);
}

int hc_unexpected(lua_State *L, redisReply *r)
{
    char msg[HC_ERRLEN];
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof msg, "%s", r->str);
        freeReplyObject(r);
        return hc_fail(L, msg);
    }
    freeReplyObject(r);
    return hc_fail(L, "unexpected reply");
}

typedef struct one {
    hc_decoding d;
    char *sealerr;
} one;

static int decode_one_cb(lua_State *L, void *ud)
{
    one *o = (one *)ud;
    if (hc_decode_push(L, &o->d) != 0) {
        if (o->d.seal_failed && o->sealerr) { /* the caller's miss */
            snprintf(o->sealerr, HC_CODEC_ERRLEN, "%s", o->d.err);
            return 0;
        }
        lua_pushnil(L);
        lua_pushfstring(L, "%s error: %s", o->d.seal_failed ? "decrypt" : "decode", o->d.err);
        return 2;
    }
    return 1;
}

int hc_push_decoded(lua_State *L, client *cl, const char *p, size_t n, redisReply *r, const char *key, size_t kn,
                    char *sealerr)
{
    one o;
    int top = lua_gettop(L), st;
    hc_decoding_init(&o.d, &cl->codec, p, n);
    hc_seal_decoding(cl, &o.d, key, kn);
    o.sealerr = sealerr;
    if (sealerr) sealerr[0] = '\0';
    st = hc_pcall(L, decode_one_cb, &o, 0, LUA_MULTRET);
    hc_decoding_done(&o.d);
    if (r) freeReplyObject(r);
    if (st == -1) return luaL_error(L, "stack overflow");
    if (st != 0) return lua_error(L);
    return lua_gettop(L) - top;
}

/* ---- methods --------------------------------------------------------------------- */

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

/* cache:encode(value[, key]) -> bytes: the codec alone (tests, tools,
 * transports); with a key, the bytes a set of that key stores (sealed
 * when its values are encrypted). */
static int cache_encode(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_CODEC_ERRLEN], key[HC_FULLKEY_MAX];
    size_t kn = 0;
    hc_buf b;
    luaL_checkany(L, 2);
    lua_settop(L, 3);
    if (!lua_isnil(L, 3)) kn = hc_key_arg(L, cl, 3, key);
    hc_buf_init(&b, cl->codec.max_bytes);
    if (hc_encode(L, 2, &cl->codec, &b, err, sizeof err) != 0) {
        hc_buf_free(&b);
        return luaL_argerror(L, 2, err);
    }
    if (kn && hc_seal_value(cl, key, kn, &b, err, sizeof err) != 0) {
        hc_buf_free(&b);
        return luaL_argerror(L, 3, err);
    }
    return push_buf(L, &b);
}

/* cache:decode(bytes[, key]) -> value | nil, "decode error: ..." |
 * nil, "decrypt error: ..." (an encrypted value opens only with the key
 * it was stored at) */
static int cache_decode(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t n, kn = 0;
    const char *p = luaL_checklstring(L, 2, &n);
    if (!lua_isnoneornil(L, 3)) kn = hc_key_arg(L, cl, 3, key);
    return hc_push_decoded(L, cl, p, n, NULL, kn ? key : NULL, kn, NULL);
}

/* cache:_entry(value, soft_ms, delta_ms, tags, tokens, key) -> bytes of an
 * envelope (soft_ms nil: no soft expiry; tags nil: untagged; tokens: the
 * tags' tokens in canonical order; key: the value is sealed when that
 * key's values are encrypted). Raises when value cannot be encoded. */
static int cache_entry(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_CODEC_ERRLEN], key[HC_FULLKEY_MAX];
    int has_soft = !lua_isnoneornil(L, 3), i;
    long long soft = has_soft ? (long long)luaL_checkinteger(L, 3) : 0;
    long long delta = has_soft ? (long long)luaL_checkinteger(L, 4) : 0;
    size_t kn = 0;
    hc_taglist t;
    hc_buf b, v;
    luaL_checkany(L, 2);
    /* the header holds soft as an i64 of Unix ms and delta as a u32 */
    if (soft < 0) return luaL_argerror(L, 3, "soft expiry must be Unix milliseconds");
    if (delta < 0 || delta > 0xffffffffLL) return luaL_argerror(L, 4, "compute time must be 0 to 2^32-1 ms");
    lua_settop(L, 7);
    t.n = 0;
    if (!lua_isnil(L, 5)) {
        hc_taglist_from_lua(L, 5, 5, &t);
        luaL_checktype(L, 6, LUA_TTABLE);
        for (i = 0; i < t.n; i++) {
            lua_rawgeti(L, 6, i + 1);
            if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 6, "a token per tag expected");
            t.tok[i] = lua_tolstring(L, -1, &t.tok_len[i]); /* anchored by the table */
            lua_pop(L, 1);
            if (t.tok_len[i] > 255) return luaL_argerror(L, 6, "token too long");
        }
    }
    if (!lua_isnil(L, 7)) kn = hc_key_arg(L, cl, 7, key);
    if (cl->codec.ser == HC_SER_RAW)
        return luaL_argerror(L, 2, "value: the raw serializer cannot carry tags or get_or_set metadata");
    hc_buf_init(&v, cl->codec.max_bytes);
    if (hc_encode(L, 2, &cl->codec, &v, err, sizeof err) != 0) {
        hc_buf_free(&v);
        return luaL_argerror(L, 2, err);
    }
    if (kn && hc_seal_value(cl, key, kn, &v, err, sizeof err) != 0) {
        hc_buf_free(&v);
        return luaL_argerror(L, 7, err);
    }
    hc_buf_init(&b, cl->codec.max_bytes);
    i = hc_entry_wrap(v.data, v.len, has_soft, soft, delta, &t, &b);
    hc_buf_free(&v);
    if (i != 0) {
        hc_buf_free(&b);
        return luaL_argerror(L, 2, "value: larger than the size limit, or out of memory");
    }
    return push_buf(L, &b);
}

/* cache:_key(key) -> "prefix:version:key" (raises on a bad key) */
static int cache_key(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX];
    size_t kn = hc_key_arg(L, cl, 2, key);
    lua_pushlstring(L, key, kn);
    return 1;
}

/* cache:_names(key) -> {value =, lease =, wake =, epoch =, epoch_wake =
 * function(epoch)}: the Redis keys of key (tests, tools) */
static int names_epoch_wake(lua_State *L)
{
    client *cl = (client *)lua_touserdata(L, lua_upvalueindex(1));
    char name[HC_NAME_MAX];
    size_t en, vn;
    const char *e = luaL_checklstring(L, 1, &en);
    const char *v = lua_tolstring(L, lua_upvalueindex(2), &vn);
    if (en > 64) return luaL_argerror(L, 1, "epoch too long");
    lua_pushlstring(L, name, hc_epoch_wake_name(cl, v, vn, e, en, name));
    return 1;
}

static int cache_names(lua_State *L)
{
    client *cl = hc_check_client(L);
    char key[HC_FULLKEY_MAX], name[HC_NAME_MAX];
    size_t kn = hc_key_arg(L, cl, 2, key);
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, key, kn);
    lua_setfield(L, -2, "value");
    lua_pushlstring(L, name, hc_name_companion(name, cl->prefix, cl->prefix_len, key, kn, "lease", 5));
    lua_setfield(L, -2, "lease");
    lua_pushlstring(L, name, hc_name_companion(name, cl->prefix, cl->prefix_len, key, kn, "wake", 4));
    lua_setfield(L, -2, "wake");
    lua_pushlstring(L, name, hc_epoch_name(cl, key, kn, name));
    lua_setfield(L, -2, "epoch");
    lua_pushvalue(L, 1); /* keeps the client alive for the closure */
    lua_pushlstring(L, key, kn);
    lua_pushcclosure(L, names_epoch_wake, 2);
    lua_setfield(L, -2, "epoch_wake");
    return 1;
}

/* cache:_tag_name(tag) -> the tag's key */
static int cache_tag_name(lua_State *L)
{
    client *cl = hc_check_client(L);
    char name[HC_PREFIX_MAX + HC_TAG_MAX + 8];
    size_t tn;
    const char *t = luaL_checklstring(L, 2, &tn);
    if (tn < 1 || tn > HC_TAG_MAX) return luaL_argerror(L, 2, "a tag must be 1 to 1024 bytes");
    lua_pushlstring(L, name, hc_name_tag(name, cl->prefix, cl->prefix_len, t, tn));
    return 1;
}

/* cache:_lock_names(name) -> lock key, fence key, wake-up list */
static int cache_lock_names(lua_State *L)
{
    client *cl = hc_check_client(L);
    char buf[HC_PREFIX_MAX + HC_TAG_MAX + 32];
    size_t n;
    const char *l = luaL_checklstring(L, 2, &n);
    if (n < 1 || n > HC_TAG_MAX) return luaL_argerror(L, 2, "lock name must be 1 to 1024 bytes");
    lua_pushlstring(L, buf, hc_name_lock(buf, cl->prefix, cl->prefix_len, l, n, ""));
    lua_pushlstring(L, buf, hc_name_lock(buf, cl->prefix, cl->prefix_len, l, n, ":fence"));
    lua_pushlstring(L, buf, hc_name_lock(buf, cl->prefix, cl->prefix_len, l, n, ":wake"));
    return 3;
}

/* cache:_namespace() -> "prefix:version:" */
static int cache_namespace(lua_State *L)
{
    client *cl = hc_check_client(L);
    lua_pushlstring(L, cl->ns, cl->ns_len);
    return 1;
}

/* cache:_scan_pattern(glob) -> the SCAN MATCH pattern of the keys of
 * this namespace matching glob (the namespace glob-escaped) */
static int cache_scan_pattern(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t pn;
    const char *p = luaL_checklstring(L, 2, &pn);
    char *buf = (char *)lua_newuserdata(L, 2 * cl->ns_len + pn + 1);
    lua_pushlstring(L, buf, hc_name_scan_pattern(buf, cl->ns, cl->ns_len, p, pn));
    return 1;
}

static const luaL_Reg cache_methods[] = {
    {"_key", cache_key},
    {"_namespace", cache_namespace},
    {"_names", cache_names},
    {"_tag_name", cache_tag_name},
    {"_lock_names", cache_lock_names},
    {"_scan_pattern", cache_scan_pattern},
    {"_entry", cache_entry},
    {"encode", cache_encode},
    {"decode", cache_decode},
    {NULL, NULL}};

void hc_cache_register(lua_State *L)
{
    luaL_setfuncs(L, cache_methods, 0);
}
