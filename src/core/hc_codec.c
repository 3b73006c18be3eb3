/* hc_codec.c -- format dispatch, integers as text, zstd, error paths. */
#include "hc_codec.h"
#include "compat.h"
#include "hc_entry.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include <sodium.h>

#include <jansson.h>

/* ---- error paths ------------------------------------------------------ */

static int is_identifier(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || n > 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    for (i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
    return 1;
}

void hc_path_error(lua_State *L, const hc_path *p, const char *why, char *err, size_t errlen)
{
    size_t used;
    int d;
    used = (size_t)snprintf(err, errlen, "value");
    for (d = 1; d <= p->depth && used < errlen; d++) {
        int k = p->key_idx[d];
        char seg[96];
        if (k == 0) {
            snprintf(seg, sizeof seg, "[%lld]", p->index[d]);
        } else if (lua_type(L, k) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, k, &n); /* a string: no conversion */
            if (is_identifier(s, n)) snprintf(seg, sizeof seg, ".%s", s);
            else snprintf(seg, sizeof seg, "[\"%.40s%s\"]", s, n > 40 ? "..." : "");
        } else if (lua_type(L, k) == LUA_TNUMBER) {
            if (hc_isinteger(L, k)) snprintf(seg, sizeof seg, "[%lld]", (long long)lua_tointeger(L, k));
            else snprintf(seg, sizeof seg, "[%.17g]", (double)lua_tonumber(L, k));
        } else if (lua_type(L, k) == LUA_TBOOLEAN) {
            snprintf(seg, sizeof seg, "[%s]", lua_toboolean(L, k) ? "true" : "false");
        } else {
            snprintf(seg, sizeof seg, "[<%s>]", lua_typename(L, lua_type(L, k)));
        }
        used += (size_t)snprintf(err + used, errlen - used, "%s", seg);
    }
    if (used < errlen) snprintf(err + used, errlen - used, ": %s", why);
}

int hc_path_enter(lua_State *L, hc_path *p, int idx, int max_depth, char *err, size_t errlen)
{
    const void *t = lua_topointer(L, idx);
    int d;
    for (d = 0; d < p->depth; d++)
        if (p->tables[d] == t) {
            hc_path_error(L, p, "cannot cache a cyclic table", err, errlen);
            return -1;
        }
    if (p->depth >= max_depth || p->depth >= HC_DEPTH_LIMIT) {
        hc_path_error(L, p, "nested too deeply", err, errlen);
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        hc_path_error(L, p, "nested too deeply (Lua stack)", err, errlen);
        return -1;
    }
    p->tables[p->depth] = t;
    return 0;
}

/* A table is an array when its keys are exactly 1..n (n > 0). */
int hc_table_is_array(lua_State *L, int idx, size_t *count)
{
    size_t n = 0;
    lua_Integer max = 0;
    int array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        n++;
        if (array) {
            if (lua_type(L, -2) == LUA_TNUMBER && hc_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
                lua_Integer k = lua_tointeger(L, -2);
                if (k > max) max = k;
            } else {
                array = 0;
            }
        }
        lua_pop(L, 1);
    }
    *count = n;
    return array && n > 0 && (size_t)max == n;
}

int hc_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        {
            size_t j;
            for (j = 1; j < len; j++) {
                if ((s[i + j] & 0xc0) != 0x80) return 0;
                cp = (cp << 6) | (s[i + j] & 0x3f);
            }
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

/* ---- encode ------------------------------------------------------------- */

static int compress(const hc_codec *c, hc_buf *out, char *err, size_t errlen)
{
    size_t bound, n;
    char *z;
    if (c->compress_min == 0 || out->len < c->compress_min || c->ser == HC_SER_RAW) return 0;
    bound = ZSTD_compressBound(out->len);
    z = (char *)malloc(bound);
    if (z == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n = ZSTD_compress(z, bound, out->data, out->len, c->compress_level);
    if (ZSTD_isError(n) || n >= out->len) { /* keep it uncompressed */
        free(z);
        return 0;
    }
    free(out->data);
    out->data = z;
    out->len = n;
    out->cap = bound;
    return 0;
}

int hc_encode(lua_State *L, int idx, const hc_codec *c, hc_buf *out, char *err, size_t errlen)
{
    int rc;
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    if (c->ser == HC_SER_RAW) {
        size_t n;
        const char *s;
        if (lua_type(L, idx) != LUA_TSTRING) {
            snprintf(err, errlen, "value: the raw serializer stores strings only, got %s",
                     lua_typename(L, lua_type(L, idx)));
            return -1;
        }
        s = lua_tolstring(L, idx, &n);
        if (hc_buf_append(out, s, n) != 0) goto oom;
        return 0;
    }
    if (lua_type(L, idx) == LUA_TNUMBER && hc_isinteger(L, idx)) {
        char num[32];
        int n = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        if (hc_buf_append(out, num, (size_t)n) != 0) goto oom;
        return 0; /* never compressed: INCRBY must work on it */
    }
    rc = c->ser == HC_SER_JSON ? hc_json_encode(L, idx, c, out, err, errlen)
                               : hc_msgpack_encode(L, idx, c, out, err, errlen);
    if (rc != 0) return -1;
    if (out->oom) goto oom;
    return compress(c, out, err, errlen);
oom:
    snprintf(err, errlen, "value: larger than the size limit, or out of memory");
    return -1;
}

/* ---- decode ------------------------------------------------------------- */

void hc_decoding_init(hc_decoding *d, const hc_codec *c, const char *data, size_t len)
{
    d->c = c;
    d->data = data;
    d->len = len;
    d->owned = NULL;
    d->json = NULL;
    d->enveloped = 0;
    d->soft_ms = d->delta_ms = 0;
    d->ring = NULL;
    d->key = NULL;
    d->key_len = 0;
    d->must_seal = d->seal_failed = 0;
    d->opened = NULL;
    d->opened_len = 0;
    d->err[0] = '\0';
}

void hc_decoding_seal(hc_decoding *d, const hc_keyring *ring, const char *key, size_t kn, int must_seal)
{
    d->ring = ring;
    d->key = key;
    d->key_len = kn;
    d->must_seal = must_seal;
}

static void hc_decoding_done_opened(hc_decoding *d)
{
    if (d->opened) {
        sodium_memzero(d->opened, d->opened_len);
        free(d->opened);
    }
    d->opened = NULL;
    d->opened_len = 0;
}

void hc_decoding_done(hc_decoding *d)
{
    free(d->owned);
    d->owned = NULL;
    hc_decoding_done_opened(d); /* plaintext of an encrypted value: wiped */
    if (d->json) json_decref((json_t *)d->json);
    d->json = NULL;
}

/* Decimal integer text (what django-redis and hc_encode write for ints):
 * an optional '-', digits, no leading zero. 1: *v set; 0: not integer
 * text; -1: integer text outside the 64-bit range. */
static int int_text(const char *s, size_t n, long long *v)
{
    size_t i = 0, j;
    int neg = 0;
    unsigned long long acc = 0, lim;
    if (n > 0 && s[0] == '-') { neg = 1; i = 1; }
    if (i == n || (n - i > 1 && s[i] == '0') || (neg && s[i] == '0')) return 0;
    for (j = i; j < n; j++)
        if (s[j] < '0' || s[j] > '9') return 0;
    lim = neg ? (unsigned long long)LLONG_MAX + 1ULL : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        unsigned dgt = (unsigned)(s[i] - '0');
        if (acc > (lim - dgt) / 10) return -1;
        acc = acc * 10 + dgt;
    }
    if (!neg) *v = (long long)acc;
    else if (acc == (unsigned long long)LLONG_MAX + 1ULL) *v = LLONG_MIN;
    else *v = -(long long)acc;
    return 1;
}

static int is_zstd(const char *p, size_t n)
{
    return n >= 4 && (unsigned char)p[0] == 0x28 && (unsigned char)p[1] == 0xb5 &&
           (unsigned char)p[2] == 0x2f && (unsigned char)p[3] == 0xfd;
}

/* What bytes that hicache cannot decode probably are: the formats other
 * django-redis settings write (its default serializer is pickle, and it
 * has zlib, gzip, lz4 and lzma compressors), or NULL. Only consulted
 * after decoding failed, so a valid value is never misnamed: a pickle
 * (protocol 2+: 0x80, the protocol byte, ..., '.') reads in MessagePack
 * as an empty map followed by trailing bytes, zlib's 0x78 as the integer
 * 120 followed by trailing bytes. */
static const char *foreign_format(const hc_codec *c, const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n >= 3 && u[0] == 0x80 && u[1] >= 2 && u[1] <= 5 && u[n - 1] == '.')
        return c->ser == HC_SER_JSON
                   ? "value looks like a Python pickle (configure django-redis with "
                     "django_redis.serializers.json.JSONSerializer)"
                   : "value looks like a Python pickle (configure django-redis with "
                     "django_redis.serializers.msgpack.MSGPackSerializer)";
    if (n >= 2 && u[0] == 0x78 && (u[1] == 0x01 || u[1] == 0x5e || u[1] == 0x9c || u[1] == 0xda))
        return "value looks like zlib-compressed data (hicache reads zstd; configure django-redis "
               "with django_redis.compressors.zstd.ZStdCompressor)";
    if (n >= 2 && u[0] == 0x1f && u[1] == 0x8b)
        return "value looks like gzip-compressed data (hicache reads zstd; configure django-redis "
               "with django_redis.compressors.zstd.ZStdCompressor)";
    if (n >= 4 && u[0] == 0x04 && u[1] == 0x22 && u[2] == 0x4d && u[3] == 0x18)
        return "value looks like lz4-compressed data (hicache reads zstd; configure django-redis "
               "with django_redis.compressors.zstd.ZStdCompressor)";
    if (n >= 6 && memcmp(p, "\xfd" "7zXZ\0", 6) == 0)
        return "value looks like lzma-compressed data (hicache reads zstd; configure django-redis "
               "with django_redis.compressors.zstd.ZStdCompressor)";
    return NULL;
}

/* The serializer's decoder; on failure, names a foreign format. */
static int decode_value(lua_State *L, hc_decoding *d, const char *p, size_t n)
{
    int rc = d->c->ser == HC_SER_JSON ? hc_json_decode(L, d, p, n)
                                      : hc_msgpack_decode(L, d->c, p, n, d->err, sizeof d->err);
    if (rc != 0) {
        const char *what = foreign_format(d->c, p, n);
        if (what) snprintf(d->err, sizeof d->err, "%s", what);
    }
    return rc;
}

int hc_decode_push(lua_State *L, hc_decoding *d)
{
    const char *p = d->data;
    size_t n = d->len;
    long long v;
    int r;

    if (d->c->ser == HC_SER_RAW) {
        if (hc_sealed(p, n) || d->must_seal) { /* raw never opens: nor returns sealed or planted bytes */
            d->seal_failed = 1;
            snprintf(d->err, sizeof d->err, "%s", hc_sealed(p, n) ? "no encryption keys" : "value not encrypted");
            return -1;
        }
        lua_pushlstring(L, p, n);
        return 0;
    }
    if (n >= 6 && (unsigned char)p[0] == 0xc9) { /* maybe an envelope: the value follows its header */
        hc_entry e;
        if (hc_entry_parse(p, n, 1, &e, NULL) != HC_ENTRY_OK) {
            /* where values must be sealed, a damaged header (it is not
             * authenticated) is a value that does not open: a miss */
            d->seal_failed = d->must_seal;
            snprintf(d->err, sizeof d->err, "corrupt hicache envelope");
            return -1;
        }
        if (e.envelope) {
            d->enveloped = e.has_soft;
            d->soft_ms = e.soft_ms;
            d->delta_ms = e.delta_ms;
            p = e.value;
            n = e.value_len;
        }
    }
    if (hc_sealed(p, n)) { /* open it: the codec's bytes are inside */
        size_t m;
        d->seal_failed = 1;
        if (d->key == NULL) {
            snprintf(d->err, sizeof d->err, "an encrypted value opens only with its key");
            return -1;
        }
        hc_decoding_done_opened(d);
        if (hc_open(d->ring, d->key, d->key_len, p, n, &d->opened, &m, d->err, sizeof d->err) != 0) return -1;
        d->opened_len = m;
        d->seal_failed = 0;
        p = d->opened;
        n = m;
    } else if (d->must_seal) {
        d->seal_failed = 1;
        snprintf(d->err, sizeof d->err, "value not encrypted");
        return -1;
    }
    r = int_text(p, n, &v);
    if (r == 1) {
        hc_push_int64(L, (long long)v);
        return 0;
    }
    if (r == -1) {
        snprintf(d->err, sizeof d->err, "integer out of range");
        return -1;
    }
    if (is_zstd(p, n)) {
        unsigned long long size = ZSTD_getFrameContentSize(p, n);
        size_t got;
        if (size == ZSTD_CONTENTSIZE_ERROR) {
            snprintf(d->err, sizeof d->err, "corrupt zstd frame");
            return -1;
        }
        if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
            snprintf(d->err, sizeof d->err, "zstd frame without content size");
            return -1;
        }
        if (size > d->c->max_bytes) {
            snprintf(d->err, sizeof d->err, "decompressed size %llu over the limit", size);
            return -1;
        }
        d->owned = (char *)malloc(size ? (size_t)size : 1);
        if (d->owned == NULL) {
            snprintf(d->err, sizeof d->err, "out of memory");
            return -1;
        }
        got = ZSTD_decompress(d->owned, (size_t)size, p, n);
        if (ZSTD_isError(got) || got != size) {
            snprintf(d->err, sizeof d->err, "corrupt zstd frame");
            return -1;
        }
        p = d->owned;
        n = got;
    }
    return decode_value(L, d, p, n);
}
