/*
 * hc_entry.h -- what hicache stores at a value key (docs/FORMAT.md):
 *
 *  - a plain value: the codec's bytes (hc_encode), django-redis compatible;
 *  - an envelope: metadata, then the codec's bytes of the value:
 *
 *      c9 <n: u32 BE> 48 02 <flags: u8> <h: u32 BE> <header: h bytes> <value>
 *
 *    a MessagePack ext32 of type 0x48 ('H'), version 2; n counts the bytes
 *    after the type byte. flags bit 0: the header starts with the soft
 *    expiry (i64 BE, Unix ms) and the compute time (u32 BE, ms) of a
 *    get_or_set fill; bit 1: tags follow: <count: u8> and per tag
 *    <u16 BE length><name><u8 length><token>, names sorted bytewise and
 *    unique. The header is never compressed (the value may be), so its
 *    first 12 bytes tell whether an entry is tagged and how long the
 *    header is: the write script reads only those and the header.
 *
 * A tagged entry is visible while every token equals the current value of
 * its tag key (hc_names.h: P:tag:{name}); invalidate_tag deletes the tag
 * key, so a token never comes back and a lost tag key hides its entries.
 */
#ifndef HC_ENTRY_H
#define HC_ENTRY_H

#include <stddef.h>
#include <lua.h>
#include <hiredis/hiredis.h>

#include "hc_buf.h"
#include "hc_cmd.h"
#include "hc_codec.h"

#define HC_ENTRY_FIXED 12    /* c9 n(4) 48 02 flags h(4) */
#define HC_TAGS_MAX 64
#define HC_TOKEN_LEN 16      /* hex characters of a tag token */
#define HC_ENTRY_SOFT 1u
#define HC_ENTRY_TAGS 2u

/* A list of tags, canonical (sorted bytewise, no duplicates), each with
 * its token when known. The strings are borrowed. */
typedef struct hc_taglist {
    int n;
    const char *name[HC_TAGS_MAX];
    size_t name_len[HC_TAGS_MAX];
    const char *tok[HC_TAGS_MAX];
    size_t tok_len[HC_TAGS_MAX];
} hc_taglist;

typedef struct hc_entry {
    int envelope;          /* an hicache envelope (else a plain value)  */
    int has_soft;          /* soft_ms and delta_ms are set              */
    long long soft_ms, delta_ms;
    hc_taglist tags;       /* tags.n == 0: untagged                     */
    size_t header_end;     /* where the value bytes start               */
    const char *value;     /* the value bytes (NULL for a prefix)       */
    size_t value_len;
} hc_entry;

enum { HC_ENTRY_OK = 0, HC_ENTRY_SHORT = 1, HC_ENTRY_CORRUPT = -1 };

/* Parses what is stored at a value key: all of it (complete = 1) or its
 * first n bytes (complete = 0: a GETRANGE probe, e->value is then NULL).
 * HC_ENTRY_SHORT: the prefix is too short for the header, *need (if not
 * NULL) is the length that is. Pointers in *e point into p. */
int hc_entry_parse(const char *p, size_t n, int complete, hc_entry *e, size_t *need);

/* Wraps value bytes (as hc_encode writes them) in an envelope with the
 * given metadata, appended to out. -1 when out of memory or past out's
 * size limit. Never raises. */
int hc_entry_wrap(const char *value, size_t vn, int has_soft, long long soft_ms, long long delta_ms,
                  const hc_taglist *tags, hc_buf *out);

/* Reads the list of tags at idx (a Lua list of strings) into t,
 * canonical. Raises an argument error for argument argn on a bad list.
 * The names borrow the table's strings: keep it on the stack. */
void hc_taglist_from_lua(lua_State *L, int idx, int argn, hc_taglist *t);

/* 1 when a and b hold the same names. */
int hc_taglist_same_names(const hc_taglist *a, const hc_taglist *b);

/* Adds MGET of the tag keys of t (prefix: the cache's) to b. */
void hc_taglist_mget(hc_cmdb *b, const hc_taglist *t, const char *prefix, size_t pn);

/* 1 when r (the reply of that MGET) holds exactly t's tokens. */
int hc_taglist_current(const hc_taglist *t, const redisReply *r);

/* Fills `hex` (n * (HC_TOKEN_LEN + 1) bytes) with n fresh random tokens,
 * each NUL-terminated. */
void hc_tokens_new(char *hex, int n);

#endif
