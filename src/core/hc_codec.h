/*
 * hc_codec.h -- Lua values <-> bytes stored in Redis (docs/FORMAT.md).
 *
 *  - A Lua integer at the top level is stored as decimal text ("42"), as
 *    django-redis stores ints, so INCRBY works on it; bytes that are
 *    exactly /-?[0-9]+/ decode as an integer.
 *  - Everything else is MessagePack (default) or JSON; "raw" stores
 *    strings byte-exact and nothing else.
 *  - Optional zstd compression above compress_min bytes; a zstd frame is
 *    recognised by its magic number on read, whatever the settings.
 *
 * Encoding never raises: errors come back as "value.items[3].cb: cannot
 * cache a function". Decoding may raise only when Lua runs out of memory,
 * so run it through hc_pcall and free the hc_decoding afterwards.
 */
#ifndef HC_CODEC_H
#define HC_CODEC_H

#include <stddef.h>
#include <lua.h>

#include "hc_buf.h"
#include "hc_seal.h"

typedef enum { HC_SER_MSGPACK = 0, HC_SER_JSON = 1, HC_SER_RAW = 2 } hc_serializer;

typedef struct hc_codec {
    hc_serializer ser;
    size_t compress_min;   /* compress values of at least this size; 0 = never */
    int compress_level;    /* zstd level                                      */
    int max_depth;         /* nesting limit, encode and decode                */
    size_t max_elements;   /* decode: total array/map elements                */
    size_t max_bytes;      /* encoded and decompressed size limit             */
} hc_codec;

#define HC_CODEC_ERRLEN 256

/* Encodes the value at stack index idx into out (initialised by the
 * caller, who frees it on every path). 0, or -1 with err. Never raises. */
int hc_encode(lua_State *L, int idx, const hc_codec *c, hc_buf *out, char *err, size_t errlen);

typedef struct hc_decoding {
    const hc_codec *c;
    const char *data;      /* bytes to decode (borrowed)          */
    size_t len;
    char *owned;           /* decompressed copy, freed by _done   */
    void *json;            /* jansson tree, freed by _done        */
    int enveloped;         /* the value came in an envelope with  */
    long long soft_ms;     /*   a soft expiry (Unix ms)           */
    long long delta_ms;    /*   and a compute time (hc_entry.h)   */
    const hc_keyring *ring; /* opens sealed values (hc_seal.h), or NULL */
    const char *key;       /* the full Redis key they were stored under */
    size_t key_len;        /*   (NULL: a sealed value cannot be opened) */
    int must_seal;         /* a plain value is refused (not encrypted)  */
    int seal_failed;       /* the error is about sealing: a miss        */
    char *opened;          /* the opened plaintext, wiped and freed by _done */
    size_t opened_len;
    char err[HC_CODEC_ERRLEN];
} hc_decoding;

void hc_decoding_init(hc_decoding *d, const hc_codec *c, const char *data, size_t len);

/* Sets what opens sealed values: the keyring (may be NULL), the full
 * Redis key (may be NULL) and whether a plain value is refused. A value
 * that is sealed but does not open, or plain when must_seal, fails with
 * d->seal_failed set (callers treat it as a miss plus an error event). */
void hc_decoding_seal(hc_decoding *d, const hc_keyring *ring, const char *key, size_t kn, int must_seal);

/* Pushes the decoded value, or returns -1 with d->err set (nothing
 * pushed). Raises only on Lua memory errors: call inside hc_pcall. */
int hc_decode_push(lua_State *L, hc_decoding *d);

/* Frees what decoding allocated in C. Safe to call more than once. */
void hc_decoding_done(hc_decoding *d);

/* Path-aware encoders and decoders of each format (hc_msgpack.c, hc_json.c). */
int hc_msgpack_encode(lua_State *L, int idx, const hc_codec *c, hc_buf *out, char *err, size_t errlen);
int hc_msgpack_decode(lua_State *L, const hc_codec *c, const char *p, size_t n, char *err, size_t errlen);
int hc_json_encode(lua_State *L, int idx, const hc_codec *c, hc_buf *out, char *err, size_t errlen);
int hc_json_decode(lua_State *L, hc_decoding *d, const char *p, size_t n);

/* Shared by the encoders: the tables on the current path (for cycle
 * detection) and the keys leading to the value being encoded (for the
 * error message "value.items[3].cb: cannot cache a function"). */
#define HC_DEPTH_LIMIT 128
typedef struct hc_path {
    int depth;
    const void *tables[HC_DEPTH_LIMIT + 1];
    int key_idx[HC_DEPTH_LIMIT + 1];       /* stack index of a map key, or 0   */
    long long index[HC_DEPTH_LIMIT + 1];   /* array index when key_idx is 0   */
} hc_path;

/* Formats "<path>: <why>" into err. Reads keys without converting them. */
void hc_path_error(lua_State *L, const hc_path *p, const char *why, char *err, size_t errlen);

/* Enters table at idx: cycle and depth checks. 0, or -1 with err set. */
int hc_path_enter(lua_State *L, hc_path *p, int idx, int max_depth, char *err, size_t errlen);

/* 1 when the table at idx has exactly the keys 1..n (n > 0): an array.
 * *count is its number of keys either way. Never raises. */
int hc_table_is_array(lua_State *L, int idx, size_t *count);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int hc_utf8_valid(const unsigned char *s, size_t n);

#endif
