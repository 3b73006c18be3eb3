/* hc_entry.c -- envelopes and tag lists (see hc_entry.h). */
#include "hc_entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#include "compat.h"
#include "hc_names.h"

#define ENV_TYPE 0x48
#define ENV_VERSION 2

static void put_be(unsigned char *p, unsigned long long v, int n)
{
    int i;
    for (i = n - 1; i >= 0; i--, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

static unsigned long long get_be(const unsigned char *p, int n)
{
    unsigned long long v = 0;
    int i;
    for (i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* ---- parse ------------------------------------------------------------- */

static int parse_header(const unsigned char *u, size_t from, size_t to, unsigned flags, hc_entry *e)
{
    size_t at = from;
    if (flags & ~(HC_ENTRY_SOFT | HC_ENTRY_TAGS)) return -1;
    if (flags & HC_ENTRY_SOFT) {
        if (to - at < 12) return -1;
        e->has_soft = 1;
        e->soft_ms = (long long)get_be(u + at, 8);
        e->delta_ms = (long long)get_be(u + at + 8, 4);
        at += 12;
    }
    if (flags & HC_ENTRY_TAGS) {
        int i, n;
        if (to - at < 1) return -1;
        n = u[at++];
        if (n < 1 || n > HC_TAGS_MAX) return -1;
        for (i = 0; i < n; i++) {
            size_t len, tl;
            if (to - at < 2) return -1;
            len = (size_t)get_be(u + at, 2);
            at += 2;
            if (len < 1 || len > HC_TAG_MAX || to - at < len + 1) return -1;
            e->tags.name[i] = (const char *)u + at;
            e->tags.name_len[i] = len;
            at += len;
            tl = u[at++];
            if (to - at < tl) return -1;
            e->tags.tok[i] = (const char *)u + at;
            e->tags.tok_len[i] = tl;
            at += tl;
        }
        e->tags.n = n;
    }
    return at == to ? 0 : -1;
}

int hc_entry_parse(const char *p, size_t n, int complete, hc_entry *e, size_t *need)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t h;
    e->envelope = e->has_soft = 0;
    e->soft_ms = e->delta_ms = 0;
    e->tags.n = 0;
    e->header_end = 0;
    e->value = complete ? p : NULL;
    e->value_len = complete ? n : 0;
    if (n < 6 || u[0] != 0xc9 || u[5] != ENV_TYPE) return HC_ENTRY_OK; /* a plain value */
    e->envelope = 1;
    if (n < HC_ENTRY_FIXED) {
        if (complete) return HC_ENTRY_CORRUPT;
        if (need) *need = HC_ENTRY_FIXED;
        return HC_ENTRY_SHORT;
    }
    if (u[6] != ENV_VERSION) return HC_ENTRY_CORRUPT;
    h = (size_t)get_be(u + 8, 4);
    if (h > n - HC_ENTRY_FIXED) {
        if (complete || h > 16u * 1024 * 1024) return HC_ENTRY_CORRUPT;
        if (need) *need = HC_ENTRY_FIXED + h;
        return HC_ENTRY_SHORT;
    }
    if (complete && get_be(u + 1, 4) != (unsigned long long)(n - 6)) return HC_ENTRY_CORRUPT;
    if (parse_header(u, HC_ENTRY_FIXED, HC_ENTRY_FIXED + h, u[7], e) != 0) return HC_ENTRY_CORRUPT;
    e->header_end = HC_ENTRY_FIXED + h;
    if (complete) {
        e->value = p + e->header_end;
        e->value_len = n - e->header_end;
    }
    return HC_ENTRY_OK;
}

/* ---- encode -------------------------------------------------------------- */

int hc_entry_wrap(const char *value, size_t vn, int has_soft, long long soft_ms, long long delta_ms,
                  const hc_taglist *tags, hc_buf *out)
{
    unsigned char fixed[HC_ENTRY_FIXED], num[12];
    size_t h = 0;
    unsigned flags = 0;
    int i, ntags = tags ? tags->n : 0, rc = 0;
    if (has_soft) {
        flags |= HC_ENTRY_SOFT;
        h += 12;
    }
    if (ntags > 0) {
        flags |= HC_ENTRY_TAGS;
        h += 1;
        for (i = 0; i < ntags; i++) h += 2 + tags->name_len[i] + 1 + tags->tok_len[i];
    }
    if (delta_ms < 0) delta_ms = 0;
    if (delta_ms > 0xffffffffLL) delta_ms = 0xffffffffLL;
    fixed[0] = 0xc9;
    put_be(fixed + 1, (unsigned long long)(6 + h + vn), 4);
    fixed[5] = ENV_TYPE;
    fixed[6] = ENV_VERSION;
    fixed[7] = (unsigned char)flags;
    put_be(fixed + 8, (unsigned long long)h, 4);
    rc |= hc_buf_append(out, fixed, sizeof fixed);
    if (has_soft) {
        put_be(num, (unsigned long long)soft_ms, 8);
        put_be(num + 8, (unsigned long long)delta_ms, 4);
        rc |= hc_buf_append(out, num, 12);
    }
    if (ntags > 0) {
        num[0] = (unsigned char)ntags;
        rc |= hc_buf_append(out, num, 1);
        for (i = 0; i < ntags; i++) {
            put_be(num, (unsigned long long)tags->name_len[i], 2);
            num[2] = (unsigned char)tags->tok_len[i];
            rc |= hc_buf_append(out, num, 2);
            rc |= hc_buf_append(out, tags->name[i], tags->name_len[i]);
            rc |= hc_buf_append(out, num + 2, 1);
            rc |= hc_buf_append(out, tags->tok[i], tags->tok_len[i]);
        }
    }
    rc |= hc_buf_append(out, value ? value : "", vn);
    return rc != 0 ? -1 : 0;
}

/* ---- tag lists ---------------------------------------------------------- */

typedef struct name_ref {
    const char *s;
    size_t n;
} name_ref;

static int cmp_name(const void *a, const void *b)
{
    const name_ref *x = (const name_ref *)a, *y = (const name_ref *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c != 0) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

void hc_taglist_from_lua(lua_State *L, int idx, int argn, hc_taglist *t)
{
    name_ref refs[HC_TAGS_MAX];
    int i, n, out = 0;
    if (lua_type(L, idx) != LUA_TTABLE) luaL_argerror(L, argn, "opts.tags must be a list of strings");
    n = (int)lua_rawlen(L, idx);
    if (n < 1 || n > HC_TAGS_MAX) luaL_argerror(L, argn, "opts.tags must hold 1 to 64 tags");
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, argn, lua_pushfstring(L, "opts.tags[%d] must be a string", i + 1));
        refs[i].s = lua_tolstring(L, -1, &refs[i].n); /* anchored by the table */
        lua_pop(L, 1);
        if (refs[i].n < 1 || refs[i].n > HC_TAG_MAX)
            luaL_argerror(L, argn, lua_pushfstring(L, "opts.tags[%d] must be 1 to 1024 bytes", i + 1));
    }
    qsort(refs, (size_t)n, sizeof refs[0], cmp_name);
    for (i = 0; i < n; i++) {
        if (out > 0 && cmp_name(&refs[i], &refs[out - 1]) == 0) continue;
        t->name[out] = refs[i].s;
        t->name_len[out] = refs[i].n;
        t->tok[out] = NULL;
        t->tok_len[out] = 0;
        out++;
    }
    t->n = out;
}

int hc_taglist_same_names(const hc_taglist *a, const hc_taglist *b)
{
    int i;
    if (a->n != b->n) return 0;
    for (i = 0; i < a->n; i++)
        if (a->name_len[i] != b->name_len[i] || memcmp(a->name[i], b->name[i], a->name_len[i]) != 0) return 0;
    return 1;
}

void hc_taglist_mget(hc_cmdb *b, const hc_taglist *t, const char *prefix, size_t pn)
{
    char key[HC_PREFIX_MAX + HC_TAG_MAX + 8];
    int i;
    hc_cmdb_str(b, "MGET");
    for (i = 0; i < t->n; i++) hc_cmdb_add(b, key, hc_name_tag(key, prefix, pn, t->name[i], t->name_len[i]));
    hc_cmdb_end(b);
}

int hc_taglist_current(const hc_taglist *t, const redisReply *r)
{
    int i;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)t->n) return 0;
    for (i = 0; i < t->n; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len != t->tok_len[i] || memcmp(e->str, t->tok[i], e->len) != 0)
            return 0;
    }
    return 1;
}

void hc_tokens_new(char *hex, int n)
{
    unsigned char raw[HC_TOKEN_LEN / 2];
    int i;
    for (i = 0; i < n; i++) {
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(hex + i * (HC_TOKEN_LEN + 1), HC_TOKEN_LEN + 1, raw, sizeof raw);
    }
}
