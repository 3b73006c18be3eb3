/*
 * hc_client.h -- the hicache.client userdata, shared by hc_core.c (the
 * connection-level methods) and hc_cache.c (the cache API).
 */
#ifndef HC_CLIENT_H
#define HC_CLIENT_H

#include "compat.h"
#include "hc_codec.h"
#include "hc_names.h"
#include "hc_pool.h"
#include "hc_scripts.h"
#include "hc_stats.h"
#include "hc_time.h"
#include "hc_xio.h"

#define CLIENT_MT "hicache.client"
#define HC_SEAL_CACHE_FAMILIES 32

typedef struct client {
    hc_pool *pool;          /* NULL after close()                      */
    hc_codec codec;
    char prefix[HC_PREFIX_MAX + 1];
    size_t prefix_len;
    long long version;
    char ns[HC_PREFIX_MAX + 24]; /* "prefix:version:"                   */
    size_t ns_len;
    long long ttl_ms;       /* default TTL; 0 = never expires           */
    char sha[HC_SCRIPTS][41]; /* SHA1 of each C-side script once loaded */
    hc_stats *stats;        /* NULL when made with stats = false          */
    int hook;               /* registry ref of opts.on_event, or LUA_NOREF */
    int pub_ref;            /* registry ref of the stats publisher (lua/hicache/publish.lua), or LUA_NOREF */
    double pub_interval;    /* stats_publish: seconds between publishes; 0: off */
    double pub_next;        /* hc_now() at which the next publish is due */
    struct hc_l1 *l1;       /* the pool's L1 near cache, or NULL          */
    int l1_nmatch;          /* 0: every key; else the user-key prefixes: */
    char l1_match[16][64];
    size_t l1_match_len[16];
    double l1_local_ttl;    /* a value computed while Redis is down lives so long */
    int memo;               /* registry ref: L1 hits' decoded tables, or LUA_NOREF */
    int memo_n, memo_max;   /* keys in the memo, and its bound              */
    pid_t l1_pid;           /* the process whose L1 this cache last used     */
    unsigned brk_seq;       /* the breaker change last reported by on_event */
    struct hc_cluster *cluster; /* a Redis Cluster (hc_cluster.h): routes every command; or NULL */
    struct hc_smaster *smaster; /* a Sentinel group's master (hc_smaster.h): pool follows it; or NULL */
    int pin1;               /* cluster: 1 + the master every command goes to (0: routed by key) */
    hc_keyring *ring;       /* encryption keys (hc_seal.h), or NULL: nothing sealed, sealed values miss */
    int seal_all;           /* every value is sealed (encrypt without families) */
    int seal_nfam;          /* else the families sealed (encrypt.families, memoize's encrypt) */
    char seal_fam[HC_SEAL_CACHE_FAMILIES][HC_SEAL_FAMMAX + 1];
    unsigned char seal_fam_len[HC_SEAL_CACHE_FAMILIES];
    hc_xio *xio;            /* set while core.step runs an operation over an
                               outside transport; NULL: the pool's sockets */
} client;

/* When the operation being run started (for its latency). */
static inline double hc_client_t0(const client *cl)
{
    return cl->xio ? hc_xio_t0(cl->xio) : hc_now();
}

/* 1 while a run over an outside transport stopped at a round that has no
 * reply yet: what the operation does then is not its result, so it is
 * neither recorded nor reported. */
static inline int hc_client_pending(const client *cl)
{
    return cl->xio != NULL && hc_xio_pending(cl->xio);
}

/* n fresh random tokens (hc_tokens_new), the same on every run of an
 * operation driven from outside. */
void hc_client_tokens(client *cl, char *hex, int n);

static inline client *hc_check_client(lua_State *L)
{
    return (client *)luaL_checkudata(L, 1, CLIENT_MT);
}

/* Records an operation in the stats and calls the on_event hook, if
 * any; then, with stats_publish, the publisher once its interval has
 * passed (protected: see hc_client.c). key/kn: the full key
 * (prefix:version:key) or NULL. Call it when no C resource is held: the
 * hook is Lua code and may raise. */
void hc_client_event(lua_State *L, client *cl, int op, unsigned events, const char *key, size_t kn,
                     size_t bytes_in, size_t bytes_out, double t0, const char *err);

/* Counts bytes of a value read for an operation the Lua layer records
 * (get_or_set reads through _read): stats only, no event. */
void hc_client_bytes_in(client *cl, const char *key, size_t kn, size_t bytes_in);

/* L1 (hc_l1.h): drops every argument of the commands (but their names)
 * from the pool's L1, after raw commands that may have written them. */
void hc_client_l1_drop_args(client *cl, int n, const hc_cmd *cmds);
/* 1 when this cache keeps the full key in L1 (its families/prefixes). */
int hc_client_l1_covers(client *cl, const char *key, size_t kn);

/* The pool serving key now: the cluster node of its slot, else the pool.
 * Borrowed; NULL + err. */
hc_pool *hc_client_pool_for(client *cl, const char *key, size_t kn, char *err);

/* nil, err; returns 2. */
int hc_fail(lua_State *L, const char *err);

/* Borrow a connection, run n commands, settle, return it. Never raises.
 * 0 with replies (caller frees), or -1 with err (HC_ERRLEN bytes). */
int hc_client_exec(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err);

/* The same with a command timeout of its own for this borrow (BLPOP). */
int hc_client_exec_timeout(client *cl, int n, const hc_cmd *cmds, redisReply **replies, char *err,
                           double timeout);

/* Runs the commands built in b in one round trip. script[i] >= 0 marks
 * command i as an EVALSHA of that script whose SHA argument references
 * cl->sha[script[i]]: missing scripts are loaded first, and a command
 * that finds NOSCRIPT is run again after loading. NULL: no scripts.
 * Finishes b (see hc_cmdb_finish); the caller still frees it. Never
 * raises. 0 with b->ncmds replies, or -1 with err. */
int hc_client_run(client *cl, hc_cmdb *b, const int *script, redisReply **replies, char *err);

/* Starts an EVALSHA of script id in b (the caller adds numkeys, keys,
 * arguments, then hc_cmdb_end). */
static inline void hc_client_script(client *cl, hc_cmdb *b, int id)
{
    hc_script_begin(b, cl->sha[id]);
}

/* Creates metatable `name` (locked, with __gc and __tostring) whose
 * __index is a new table of methods, left on the stack (hc_core.c). */
void hc_new_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                  lua_CFunction tostr);

/* The cache API methods (hc_cache.c), added to the client's methods. */
void hc_cache_register(lua_State *L);

/* Key builders and hashing (hc_keys.c): core.key_builder, core.hash. */
void hc_keys_register(lua_State *L);

/* The keeper (hc_keeper.c): adds cache:_watch and its class. */
void hc_keeper_register(lua_State *L);

/* Value reads with tag checks (hc_read.c), writes (hc_write.c) and the
 * get_or_set primitives (hc_lease.c): methods added to the client. */
void hc_read_register(lua_State *L);
void hc_write_register(lua_State *L);
void hc_lease_register(lua_State *L);

/* The protocol core for transports written in Lua (hc_lproto.c):
 * core.format, core.reader, core.xio, core.step, core.PENDING. */
void hc_lproto_register(lua_State *L);

/* The in-process store for specs and benchmarks (hc_lstore.c): core.store. */
void hc_lstore_register(lua_State *L);

/* Sentinel master discovery for specs and operators (hc_lsentinel.c):
 * core.sentinel_master. */
void hc_lsentinel_register(lua_State *L);

/* Encrypted values (hc_lseal.c): cache:_seal_family, cache:_decode_at
 * into the methods table on top; core.seal_family, core.entry_info into
 * the core table at core_idx. */
void hc_seal_register(lua_State *L, int core_idx);

#endif
