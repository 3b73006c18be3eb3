/*
 * hc_client.h -- the hicache.client userdata, shared by hc_core.c (the
 * connection-level methods) and hc_cache.c (the cache API).
 */
#ifndef HC_CLIENT_H
#define HC_CLIENT_H

#include "compat.h"
#include "hc_codec.h"
#include "hc_pool.h"
#include "hc_stats.h"

#define CLIENT_MT "hicache.client"

#define HC_PREFIX_MAX 256
#define HC_KEY_MAX 1024
/* prefix ":" version ":" key */
#define HC_FULLKEY_MAX (HC_PREFIX_MAX + 1 + 20 + 1 + HC_KEY_MAX)

/* The scripts the C side runs (hc_cache.c). */
enum { HC_SCRIPT_INCR, HC_SCRIPT_TAGGED_GET, HC_SCRIPT_TAGGED_SET, HC_SCRIPTS };

typedef struct client {
    hc_pool *pool;          /* NULL after close()                      */
    hc_codec codec;
    char prefix[HC_PREFIX_MAX + 1];
    size_t prefix_len;
    long long version;
    long long ttl_ms;       /* default TTL; 0 = never expires           */
    char sha[HC_SCRIPTS][41]; /* SHA1 of each C-side script once loaded */
    hc_stats *stats;        /* NULL when made with stats = false          */
    int hook;               /* registry ref of opts.on_event, or LUA_NOREF */
} client;

static inline client *hc_check_client(lua_State *L)
{
    return (client *)luaL_checkudata(L, 1, CLIENT_MT);
}

/* Records an operation in the stats and calls the on_event hook, if
 * any. key/kn: the full key (prefix:version:key) or NULL. Call it when no
 * C resource is held: the hook is Lua code and may raise. */
void hc_client_event(lua_State *L, client *cl, int op, unsigned events, const char *key, size_t kn,
                     size_t bytes_in, size_t bytes_out, double t0, const char *err);

/* nil, err; returns 2. */
int hc_fail(lua_State *L, const char *err);

/* Borrow a connection, run n commands, settle, return it. Never raises.
 * 0 with replies (caller frees), or -1 with err (HC_ERRLEN bytes). */
int hc_client_exec(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err);

/* The cache API methods (hc_cache.c), added to the client's methods. */
void hc_cache_register(lua_State *L);

/* Key builders and hashing (hc_keys.c): core.key_builder, core.hash. */
void hc_keys_register(lua_State *L);

/* The lock watchdog (hc_watch.c): adds cache:_watch and its class. */
void hc_watch_register(lua_State *L);

#endif
