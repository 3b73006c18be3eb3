/*
 * hc_lseal.c -- which values a cache seals, and the Lua functions around
 * sealing (hc_seal.h does the cryptography):
 *
 *   core.seal_family(family)      keys.define's encrypt = true (process-wide)
 *   cache:_seal_family(family)    memoize's encrypt = true (this cache)
 *   cache:_decode_at(bytes, full) decode bytes stored at a full Redis key (CLI)
 *   core.entry_info(bytes)        what a stored value is, without its keys (CLI)
 */
#include "hc_ops.h"

#include <string.h>

#include <sodium.h>

/* The family of a full key: after prefix ':' version ':', up to the next
 * ':' (or the end). 0 when the key is not of this cache's layout. */
static int key_family(const client *cl, const char *k, size_t kn, const char **f, size_t *fn)
{
    size_t i = cl->prefix_len, start;
    if (kn <= i || k[i] != ':') return 0;
    for (i++; i < kn && k[i] != ':'; i++) {} /* the version */
    if (i >= kn) return 0;
    start = ++i;
    while (i < kn && k[i] != ':') i++;
    *f = k + start;
    *fn = i - start;
    return *fn > 0;
}

int hc_seal_must(const client *cl, const char *key, size_t kn)
{
    const char *f;
    size_t fn;
    int i;
    if (cl->seal_all) return 1;
    /* a cache without families, in a process that declared none: no parse */
    if (cl->seal_nfam == 0 && !hc_seal_family_any()) return 0;
    if (!key_family(cl, key, kn, &f, &fn)) return 0;
    for (i = 0; i < cl->seal_nfam; i++)
        if (cl->seal_fam_len[i] == fn && memcmp(cl->seal_fam[i], f, fn) == 0) return 1;
    return hc_seal_family_registered(f, fn);
}

int hc_seal_value(client *cl, const char *key, size_t kn, hc_buf *val, char *err, size_t errlen)
{
    if (!hc_seal_must(cl, key, kn)) return 0;
    return hc_seal_always(cl, key, kn, val, err, errlen);
}

int hc_seal_always(client *cl, const char *key, size_t kn, hc_buf *val, char *err, size_t errlen)
{
    char hex[3 * (HC_TOKEN_LEN + 1)];
    unsigned char nonce[HC_SEAL_NONCE];
    hc_buf out;
    if (cl->ring == NULL) {
        snprintf(err, errlen, "key '%.*s%s' is in an encrypted family, and this cache has no encryption keys",
                 (int)(kn > 60 ? 60 : kn), key, kn > 60 ? "..." : "");
        return -1;
    }
    if (cl->xio) {
        /* An operation driven from outside runs again on every round and
         * must build the same request bytes: its random tokens are
         * replayed. The nonce is a hash of three of them (24 random
         * bytes), the key and the plaintext: the same on a rerun, and a
         * different one should the value change between runs (a table
         * edited while the operation waited): a nonce never seals two
         * plaintexts. */
        crypto_generichash_state h;
        hc_client_tokens(cl, hex, 3);
        crypto_generichash_init(&h, NULL, 0, sizeof nonce);
        crypto_generichash_update(&h, (const unsigned char *)hex, sizeof hex);
        crypto_generichash_update(&h, (const unsigned char *)key, kn);
        crypto_generichash_update(&h, (const unsigned char *)(val->data ? val->data : ""), val->len);
        crypto_generichash_final(&h, nonce, sizeof nonce);
    }
    hc_buf_init(&out, val->max ? val->max + HC_SEAL_FIXED + HC_SEAL_IDMAX + HC_SEAL_NONCE + HC_SEAL_TAG : 0);
    if (hc_seal(cl->ring, key, kn, val->data ? val->data : "", val->len, cl->xio ? nonce : NULL, &out) != 0) {
        hc_buf_free(&out);
        snprintf(err, errlen, "value: larger than the size limit, or out of memory");
        return -1;
    }
    hc_buf_free(val);
    *val = out;
    return 0;
}

void hc_seal_decoding(const client *cl, hc_decoding *d, const char *key, size_t kn)
{
    hc_decoding_seal(d, cl->ring, key, kn, key ? hc_seal_must(cl, key, kn) : 0);
}

void hc_seal_event(lua_State *L, client *cl, const char *key, size_t kn, const char *why)
{
    char err[HC_CODEC_ERRLEN + 16];
    if (!HC_OBSERVED(cl)) return;
    snprintf(err, sizeof err, "decrypt error: %s", why);
    hc_client_event(L, cl, HC_OP_DECRYPT, HC_EV_ERROR, key, kn, 0, 0, 0, err);
}

/* ---- Lua ------------------------------------------------------------------ */

static const char *family_arg(lua_State *L, int idx, size_t *n)
{
    const char *f = luaL_checklstring(L, idx, n);
    size_t i;
    if (*n == 0 || *n > HC_SEAL_FAMMAX) luaL_argerror(L, idx, "a family is 1 to 63 characters");
    for (i = 0; i < *n; i++)
        if (f[i] == ':') luaL_argerror(L, idx, "a family is a key's text before its first ':'");
    return f;
}

/* core.seal_family(family): every cache of the process seals the values
 * of this family, and refuses plain ones (keys.define's encrypt). */
static int core_seal_family(lua_State *L)
{
    size_t n;
    const char *f = family_arg(L, 1, &n);
    if (hc_seal_family_register(f, n) != 0)
        return luaL_error(L, "too many encrypted families (at most %d)", HC_SEAL_FAMILIES);
    return 0;
}

/* cache:_seal_family(family): this cache seals the family (memoize). */
static int cache_seal_family(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t n;
    const char *f = family_arg(L, 2, &n);
    int i;
    if (cl->ring == NULL) return luaL_argerror(L, 2, "this cache has no encryption keys (hicache.new{encrypt = ...})");
    for (i = 0; i < cl->seal_nfam; i++)
        if (cl->seal_fam_len[i] == n && memcmp(cl->seal_fam[i], f, n) == 0) return 0;
    if (cl->seal_nfam == HC_SEAL_CACHE_FAMILIES)
        return luaL_error(L, "too many encrypted families on this cache (at most %d)", HC_SEAL_CACHE_FAMILIES);
    memcpy(cl->seal_fam[cl->seal_nfam], f, n);
    cl->seal_fam[cl->seal_nfam][n] = '\0';
    cl->seal_fam_len[cl->seal_nfam++] = (unsigned char)n;
    return 0;
}

/* cache:_decode_at(bytes, full_key) -> value | nil, "decode error: ..." |
 * nil, "decrypt error: ..." */
static int cache_decode_at(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t n, kn;
    const char *p = luaL_checklstring(L, 2, &n);
    const char *k = luaL_checklstring(L, 3, &kn);
    return hc_push_decoded(L, cl, p, n, NULL, k, kn, NULL);
}

static void set_int(lua_State *L, const char *name, long long v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, name);
}

/* The format of the codec's bytes p[0..n) (after any envelope). */
static const char *format_of(const char *p, size_t n, int *compressed)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = n > 0 && p[0] == '-' ? 1 : 0;
    *compressed = 0;
    if (n > i && n - i <= 20) {
        size_t j;
        for (j = i; j < n && p[j] >= '0' && p[j] <= '9'; j++) {}
        if (j == n) return "integer";
    }
    if (n >= 4 && u[0] == 0x28 && u[1] == 0xb5 && u[2] == 0x2f && u[3] == 0xfd) {
        *compressed = 1;
        return "zstd";
    }
    if (n == 0) return "unknown";
    if (u[0] >= 0x80) return "msgpack"; /* maps, arrays, strings, floats, nil, booleans */
    if (p[0] != '\0' && strchr("{[\"-0123456789tfn", p[0]) && hc_utf8_valid(u, n)) return "json";
    return "unknown";
}

/* core.entry_info(bytes) -> {envelope =, soft_ms =, delta_ms =, tags =,
 * encrypted = key id, compressed =, format =, value_size =}: what a
 * stored value is, read from its bytes alone (hicache inspect). bytes may
 * be a prefix (GETRANGE): then value_size is what the prefix holds. */
static int core_entry_info(lua_State *L)
{
    size_t n, vn;
    const char *p = luaL_checklstring(L, 1, &n), *v = p;
    hc_entry e;
    int i, compressed;
    lua_createtable(L, 0, 8);
    vn = n;
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "envelope");
    if (n >= 6 && (unsigned char)p[0] == 0xc9) {
        int st = hc_entry_parse(p, n, 1, &e, NULL);
        if (st != HC_ENTRY_OK) st = hc_entry_parse(p, n, 0, &e, NULL); /* a prefix */
        if (st == HC_ENTRY_OK && e.envelope) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "envelope");
            if (e.has_soft) {
                set_int(L, "soft_ms", e.soft_ms);
                set_int(L, "delta_ms", e.delta_ms);
            }
            if (e.tags.n > 0) {
                lua_createtable(L, e.tags.n, 0);
                for (i = 0; i < e.tags.n; i++) {
                    lua_pushlstring(L, e.tags.name[i], e.tags.name_len[i]);
                    lua_rawseti(L, -2, i + 1);
                }
                lua_setfield(L, -2, "tags");
            }
            v = p + e.header_end;
            vn = n - e.header_end;
        } else if (st == HC_ENTRY_CORRUPT) {
            lua_pushliteral(L, "corrupt envelope");
            lua_setfield(L, -2, "format");
            set_int(L, "value_size", (long long)n);
            return 1;
        }
    }
    set_int(L, "value_size", (long long)vn);
    if (hc_sealed(v, vn)) {
        const char *id;
        size_t idn;
        if (hc_sealed_id(v, vn, &id, &idn) == 0) lua_pushlstring(L, id, idn);
        else lua_pushliteral(L, "?");
        lua_setfield(L, -2, "encrypted");
        lua_pushliteral(L, "encrypted");
        lua_setfield(L, -2, "format");
        return 1;
    }
    lua_pushstring(L, format_of(v, vn, &compressed));
    lua_setfield(L, -2, "format");
    lua_pushboolean(L, compressed);
    lua_setfield(L, -2, "compressed");
    return 1;
}

/* cache:_seal_families() -> the families this cache seals (its config's
 * and memoize's), for with_version */
static int cache_seal_families(lua_State *L)
{
    client *cl = hc_check_client(L);
    int i;
    lua_createtable(L, cl->seal_nfam, 0);
    for (i = 0; i < cl->seal_nfam; i++) {
        lua_pushlstring(L, cl->seal_fam[i], cl->seal_fam_len[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg seal_methods[] = {
    {"_seal_family", cache_seal_family},
    {"_seal_families", cache_seal_families},
    {"_decode_at", cache_decode_at},
    {NULL, NULL}};

void hc_seal_register(lua_State *L, int core_idx)
{
    luaL_setfuncs(L, seal_methods, 0);
    lua_pushcfunction(L, core_seal_family);
    lua_setfield(L, core_idx, "seal_family");
    lua_pushcfunction(L, core_entry_info);
    lua_setfield(L, core_idx, "entry_info");
}
