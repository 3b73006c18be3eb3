/*
 * hc_core.c -- the Lua module hicache.core: clients (a handle on a shared
 * pool) and reserved connections. Argument errors raise; runtime failures
 * return nil, err. No Lua error can be raised while a connection is
 * borrowed and not owned by a userdata, and replies are converted by
 * hc_reply (which frees them on every path).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "hc_args.h"
#include "hc_client.h"
#include "hc_l1.h"
#include "hc_entry.h"
#include "hc_pool.h"
#include "hc_proto.h"
#include "hc_reply.h"
#include "hc_time.h"
#include "hc_cluster.h"
#include "hc_smaster.h"

#include <sodium.h>

#define CONN_MT "hicache.conn"

typedef struct reserved {
    hc_pool *pool;     /* holds a reference while conn is set */
    hc_conn *conn;     /* NULL after release()                */
    int timeout_set;   /* set_timeout() changed the timeout   */
} reserved;

/* ---- settings from the table built by lua/hicache/config.lua ---------- */

static const char *opt_string(lua_State *L, int t, const char *k)
{
    const char *s = NULL;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "setting '%s' must be a string", k);
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays referenced by the table */
    return s;
}

static double opt_number(lua_State *L, int t, const char *k, double lo, double hi)
{
    double v;
    lua_getfield(L, t, k);
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "setting '%s' must be a number", k);
    v = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) luaL_error(L, "setting '%s' is out of range", k);
    return v;
}

static int opt_int(lua_State *L, int t, const char *k, int lo, int hi)
{
    double v = opt_number(L, t, k, lo, hi);
    if (v != (double)(int)v) luaL_error(L, "setting '%s' must be an integer", k);
    return (int)v;
}

/* "host:port\nhost:port" (validated by config.lua) into hosts (pointers
 * into a Lua string left on the stack: GC-owned, so a raise leaks
 * nothing) and ports; the count. */
#define HC_TOPO_MAX 64
static int split_addrs(lua_State *L, const char *list, char **hosts, int *ports)
{
    char *copy = (char *)lua_newuserdata(L, strlen(list) + 1), *p;
    int n = 0;
    memcpy(copy, list, strlen(list) + 1);
    for (p = copy; *p && n < HC_TOPO_MAX;) {
        char *nl = strchr(p, '\n'), *colon;
        if (nl) *nl = '\0';
        colon = strrchr(p, ':');
        if (colon == NULL) luaL_error(L, "setting 'cluster_seeds' is invalid");
        *colon = '\0';
        ports[n] = atoi(colon + 1);
        hosts[n++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    if (n == 0) luaL_error(L, "no address");
    return n;
}

/* settings.encrypt_keys ({{id =, key =}, ...}, validated by config.lua)
 * into the client's keyring, and settings.encrypt_families (a list; nil:
 * every value is sealed). Raises (the client's __gc frees the ring) with
 * a message that never quotes a key. */
static void load_keyring(lua_State *L, client *cl)
{
    int i, n;
    char err[HC_SEAL_ERRLEN];
    lua_getfield(L, 1, "encrypt_keys");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    if ((cl->ring = hc_keyring_new()) == NULL) luaL_error(L, "out of memory");
    n = (int)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        size_t idn = 0, kn = 0;
        const char *id, *key;
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "id");
        lua_getfield(L, -2, "key");
        id = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &idn) : "";
        key = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &kn) : "";
        if (hc_keyring_add(cl->ring, id, idn, (const unsigned char *)key, kn, err, sizeof err) != 0)
            luaL_error(L, "setting 'encrypt_keys' is invalid: %s", err);
        lua_pop(L, 3);
    }
    lua_pop(L, 1);
    if (hc_keyring_count(cl->ring) == 0) luaL_error(L, "setting 'encrypt_keys' is empty");
    lua_getfield(L, 1, "encrypt_families");
    if (lua_isnil(L, -1)) {
        cl->seal_all = 1;
    } else {
        luaL_checktype(L, -1, LUA_TTABLE);
        n = (int)lua_rawlen(L, -1);
        if (n > HC_SEAL_CACHE_FAMILIES) luaL_error(L, "setting 'encrypt_families' is too long");
        for (i = 1; i <= n; i++) {
            size_t fn;
            const char *f;
            lua_rawgeti(L, -1, i);
            f = lua_tolstring(L, -1, &fn);
            if (f == NULL || fn == 0 || fn > HC_SEAL_FAMMAX || memchr(f, ':', fn))
                luaL_error(L, "setting 'encrypt_families' is invalid");
            memcpy(cl->seal_fam[cl->seal_nfam], f, fn);
            cl->seal_fam[cl->seal_nfam][fn] = '\0';
            cl->seal_fam_len[cl->seal_nfam++] = (unsigned char)fn;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* core.new(settings) -> client. settings are validated and complete. */
static int core_new(lua_State *L)
{
    hc_settings s;
    client *cl, cache;
    const double day = 86400.0;
    int want_stats;

    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&s, 0, sizeof s);
    lua_getfield(L, 1, "backend");
    s.memory = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "memory") == 0;
    lua_pop(L, 1);
    s.host = (char *)opt_string(L, 1, "host");
    s.path = (char *)opt_string(L, 1, "path");
    if (!s.memory && (s.host == NULL) == (s.path == NULL))
        return luaL_error(L, "exactly one of settings 'host' and 'path' is required");
    s.port = s.host ? opt_int(L, 1, "port", 1, 65535) : 0;
    s.db = s.memory ? 0 : opt_int(L, 1, "db", 0, 1000000);
    s.username = (char *)opt_string(L, 1, "username");
    s.password = (char *)opt_string(L, 1, "password");
    s.connect_timeout = opt_number(L, 1, "connect_timeout", 1e-3, day);
    s.timeout = opt_number(L, 1, "timeout", 1e-3, day);
    s.keepalive = opt_int(L, 1, "keepalive", 0, 86400);
    s.pool_size = opt_int(L, 1, "pool_size", 1, 100000);
    s.pool_wait = opt_number(L, 1, "pool_wait", 0, day);
    s.idle_check = opt_number(L, 1, "idle_check", 0, day);
    s.idle_poll = opt_number(L, 1, "idle_poll", 0, day);
    lua_getfield(L, 1, "tls");
    s.tls = lua_toboolean(L, -1);
    lua_getfield(L, 1, "tls_verify");
    s.tls_verify = lua_isnil(L, -1) || lua_toboolean(L, -1); /* on unless false */
    lua_pop(L, 2);
    s.tls_ca_file = (char *)opt_string(L, 1, "tls_ca_file");
    s.tls_ca_path = (char *)opt_string(L, 1, "tls_ca_path");
    s.tls_cert_file = (char *)opt_string(L, 1, "tls_cert_file");
    s.tls_key_file = (char *)opt_string(L, 1, "tls_key_file");
    s.tls_server_name = (char *)opt_string(L, 1, "tls_server_name");
    if ((s.tls_cert_file == NULL) != (s.tls_key_file == NULL))
        return luaL_error(L, "settings 'tls_cert_file' and 'tls_key_file' go together");
    s.lifetime = opt_number(L, 1, "lifetime", 0, day * 365);
    s.backoff_base = opt_number(L, 1, "backoff_base", 0, 60);
    s.backoff_max = opt_number(L, 1, "backoff_max", 0, 3600);
    lua_getfield(L, 1, "l1_max_bytes");
    if (!lua_isnil(L, -1) && lua_tonumber(L, -1) > 0) {
        s.l1_max_bytes = opt_number(L, 1, "l1_max_bytes", 1, 1e15);
        s.l1_max_items = opt_number(L, 1, "l1_max_items", 0, 1e15);
        s.l1_ttl = opt_number(L, 1, "l1_ttl", 0, 1e10);
        s.l1_stale = opt_number(L, 1, "l1_stale", 0, 1e10);
        lua_getfield(L, 1, "l1_bcast");
        s.l1_bcast = lua_toboolean(L, -1);
        lua_pop(L, 1);
        s.l1_prefixes = (char *)opt_string(L, 1, "l1_prefixes");
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "breaker_failures");
    if (!lua_isnil(L, -1)) {
        s.breaker_failures = opt_int(L, 1, "breaker_failures", 0, 1000000);
        s.breaker_probe = opt_number(L, 1, "breaker_probe", 1e-3, 3600);
    }
    lua_pop(L, 1);
    if (s.memory) { /* an in-process node (hc_mem.h): no socket, a connection costs nothing */
        s.host = s.path = s.username = s.password = NULL;
        s.port = s.db = s.keepalive = s.tls = 0;
        s.mem_name = (char *)opt_string(L, 1, "mem_name");
        if (s.mem_name == NULL) return luaL_error(L, "setting 'mem_name' is required");
        s.mem_max_bytes = opt_number(L, 1, "mem_max_bytes", 65536, 1e15);
        s.mem_max_items = opt_number(L, 1, "mem_max_items", 0, 1e15);
        s.pool_size = 100000; /* no thread ever waits for a connection */
        s.idle_check = s.idle_poll = 1e12;
        s.lifetime = s.backoff_base = s.backoff_max = 0;
        s.l1_max_bytes = 0;
        s.breaker_failures = 0;
    }
    {
        static const char *const sers[] = {"msgpack", "json", "raw", NULL};
        const char *prefix = opt_string(L, 1, "prefix");
        const char *ser = opt_string(L, 1, "serializer");
        int i;
        memset(&cache, 0, sizeof cache);
        for (i = 0; sers[i] && ser && strcmp(ser, sers[i]) != 0; i++) {}
        if (ser == NULL || sers[i] == NULL) return luaL_error(L, "setting 'serializer' is invalid");
        cache.codec.ser = (hc_serializer)i;
        cache.codec.compress_min = (size_t)opt_number(L, 1, "compress_min", 0, 1e9);
        cache.codec.compress_level = opt_int(L, 1, "compress_level", -7, 22);
        cache.codec.max_depth = opt_int(L, 1, "max_depth", 1, HC_DEPTH_LIMIT);
        cache.codec.max_elements = (size_t)opt_number(L, 1, "max_elements", 1, 1e9);
        cache.codec.max_bytes = (size_t)opt_number(L, 1, "max_bytes", 1, 1024.0 * 1024 * 1024);
        if (prefix == NULL || strlen(prefix) > HC_PREFIX_MAX) return luaL_error(L, "setting 'prefix' is invalid");
        memcpy(cache.prefix, prefix, strlen(prefix) + 1);
        cache.prefix_len = strlen(prefix);
        cache.version = (long long)opt_number(L, 1, "version", -1e15, 1e15);
        cache.ns_len = hc_name_namespace(cache.ns, cache.prefix, cache.prefix_len, cache.version);
        cache.ttl_ms = (long long)(opt_number(L, 1, "ttl_ms", 0, 1e15));
        cache.memo = LUA_NOREF;
        if (s.l1_max_bytes > 0) {
            const char *m = opt_string(L, 1, "l1_match");
            cache.l1_local_ttl = opt_number(L, 1, "l1_local_ttl", 0, day);
            while (m && *m && cache.l1_nmatch < 16) {
                const char *nl = strchr(m, '\n');
                size_t n = nl ? (size_t)(nl - m) : strlen(m);
                if (n == 0 || n >= sizeof cache.l1_match[0]) return luaL_error(L, "setting 'l1_match' is invalid");
                memcpy(cache.l1_match[cache.l1_nmatch], m, n);
                cache.l1_match_len[cache.l1_nmatch++] = n;
                m += n + (nl != NULL);
            }
        }
    }

    lua_getfield(L, 1, "stats");
    want_stats = lua_toboolean(L, -1);
    lua_pop(L, 1);
    cache.stats = NULL;
    cache.hook = LUA_NOREF;
    cache.pub_ref = LUA_NOREF;
    /* The userdata first, with its __gc: what is allocated after it is
     * owned by it, so nothing leaks when a Lua allocation raises. */
    cl = (client *)lua_newuserdata(L, sizeof *cl);
    *cl = cache;
    cl->pool = NULL;
    luaL_getmetatable(L, CLIENT_MT);
    lua_setmetatable(L, -2);
    if (want_stats && (cl->stats = hc_stats_new()) == NULL) return luaL_error(L, "out of memory");
    load_keyring(L, cl);
    lua_getfield(L, 1, "on_event");
    if (lua_isfunction(L, -1)) cl->hook = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
    lua_getfield(L, 1, "stats_publish"); /* stats_publish: the interval (s), and the publisher */
    if (!lua_isnil(L, -1)) cl->pub_interval = opt_number(L, 1, "stats_publish", 1, 3600);
    lua_getfield(L, 1, "stats_publisher");
    if (cl->pub_interval > 0 && lua_isfunction(L, -1)) cl->pub_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
    lua_pop(L, 1);
    {
        char err[HC_ERRLEN];
        const char *seeds = opt_string(L, 1, "cluster_seeds"), *sents = opt_string(L, 1, "sentinel_addrs");
        if (seeds || sents) { /* a router: the cluster's slots, or the master the sentinels name */
            char *hosts[HC_TOPO_MAX];
            int ports[HC_TOPO_MAX], n = split_addrs(L, seeds ? seeds : sents, hosts, ports);
            if (seeds) {
                cl->cluster = hc_cluster_new(&s, n, (const char *const *)hosts, ports, err, sizeof err);
                if (cl->cluster == NULL) return hc_fail(L, err);
                cl->pool = hc_pool_acquire(&s, err, sizeof err); /* the first seed's: the handle's own */
            } else {
                hc_sentinel_cfg sc;
                sc.n = n;
                sc.hosts = hosts;
                sc.ports = ports;
                sc.master_name = (char *)opt_string(L, 1, "master_name");
                sc.username = (char *)opt_string(L, 1, "sentinel_username");
                sc.password = (char *)opt_string(L, 1, "sentinel_password");
                if (sc.master_name == NULL) return luaL_error(L, "setting 'master_name' is required");
                cl->smaster = hc_smaster_new(&s, &sc, err, sizeof err);
                if (cl->smaster == NULL) return hc_fail(L, err);
                cl->pool = hc_smaster_pool(cl->smaster);
                hc_pool_ref(cl->pool);
            }
            lua_pop(L, 1); /* split_addrs' copy: the client stays on top */
        } else {
            cl->pool = hc_pool_acquire(&s, err, sizeof err); /* copies s; the __gc releases it */
        }
        if (cl->pool == NULL) return hc_fail(L, err);   /* out of memory, a TLS file */
    }
    cl->l1 = hc_pool_l1(cl->pool);
    cl->l1_pid = hc_pool_self_pid();
    cl->brk_seq = hc_pool_breaker(cl->pool, &want_stats);
    if (cl->l1) { /* L1 hits of tables: decoded once per Lua state (hc_read.c) */
        double items = s.l1_max_items > 0 ? s.l1_max_items : s.l1_max_bytes / 1024;
        lua_newtable(L);
        cl->memo = luaL_ref(L, LUA_REGISTRYINDEX);
        cl->memo_n = 0;
        cl->memo_max = items < 256 ? 256 : items > 65536 ? 65536 : (int)items;
    }
    return 1;
}

/* ---- running commands on a borrowed connection ------------------------- */

/* Runs n commands on a reserved connection: no retry (the caller owns it). */
static int exec_reserved(hc_conn *c, int n, const hc_cmd *cmds, redisReply **replies, char *err)
{
    if (c->pid != hc_pool_self_pid()) {
        snprintf(err, HC_ERRLEN, "connection belongs to parent process");
        return -1;
    }
    return hc_conn_exec(c, n, cmds, replies, err, HC_ERRLEN);
}

/* Replies buffer for a pipeline: GC-owned, so a raise cannot leak it. */
static redisReply **reply_slots(lua_State *L, int n)
{
    redisReply **r = (redisReply **)lua_newuserdata(L, (size_t)(n > 0 ? n : 1) * sizeof *r);
    memset(r, 0, (size_t)(n > 0 ? n : 1) * sizeof *r);
    return r;
}

/* ---- client methods ----------------------------------------------------- */

/* On a cluster, a command without a key (but SCRIPT, run on every master)
 * has no node to go to: an argument error at the caller's line. */
static void check_routable(lua_State *L, const hc_cmd *cmd, int arg)
{
    int first;
    if (cmd->argc < 1 || hc_cmd_keys(cmd, &first) != HC_KEYS_NONE) return;
    if (cmd->argvlen[0] == 6 && strncasecmp(cmd->argv[0], "SCRIPT", 6) == 0) return;
    lua_pushfstring(L, "'%s' has no key: on a cluster it is refused (use cache:node_command(node, ...) "
                       "with a node of cache:nodes())", cmd->argv[0]);
    luaL_argerror(L, arg, lua_tostring(L, -1));
}

/* cache:_is_cluster() -> boolean */
static int client_is_cluster(lua_State *L)
{
    lua_pushboolean(L, hc_check_client(L)->cluster != NULL);
    return 1;
}

/* cache:nodes() -> {"host:port", ...}: the masters (a cluster's, the
 * Sentinel group's current one, or the one server). */
static int client_nodes(lua_State *L)
{
    client *cl = hc_check_client(L);
    int i, n;
    if (cl->pool == NULL) return hc_fail(L, "closed");
    if (cl->cluster == NULL) {
        const hc_settings *st;
        if (cl->smaster) { /* where the next call goes */
            char err[HC_ERRLEN];
            if (hc_client_pool_for(cl, "", 0, err) == NULL) return hc_fail(L, err);
        }
        st = hc_pool_settings(cl->pool);
        lua_createtable(L, 1, 0);
        if (st->memory) lua_pushfstring(L, "memory:%s", st->mem_name);
        else if (st->path) lua_pushstring(L, st->path);
        else lua_pushfstring(L, "%s:%d", st->host, st->port);
        lua_rawseti(L, -2, 1);
        return 1;
    }
    n = hc_cluster_masters(cl->cluster);
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
        lua_pushstring(L, hc_cluster_master_addr(cl->cluster, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* cache:node_command(node, name, ...): a command on that master (one of
 * cache:nodes()), keys or not: SCAN, INFO, DBSIZE, ... */
static int client_node_command(lua_State *L)
{
    client *cl = hc_check_client(L);
    const char *argv[HC_ARGS_STACK];
    size_t lens[HC_ARGS_STACK];
    char err[HC_ERRLEN];
    const char *node = luaL_checkstring(L, 2);
    redisReply *r;
    hc_cmd cmd;
    int rc, pin = 0;

    hc_args_from_stack(L, 3, lua_gettop(L), &cmd, argv, lens);
    if (cl->pool == NULL) return hc_fail(L, "closed");
    if (cl->cluster) {
        int i, n = hc_cluster_masters(cl->cluster);
        for (i = 0; i < n && pin == 0; i++)
            if (strcmp(hc_cluster_master_addr(cl->cluster, i), node) == 0) pin = i + 1;
    } else {
        /* the arguments stay on the stack: cmd points into them */
        client_nodes(L);
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            pin = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), node) == 0;
        }
    }
    if (pin == 0) return hc_fail(L, "no such node");
    cl->pin1 = pin;
    rc = hc_client_exec(cl, 1, &cmd, &r, err);
    cl->pin1 = 0;
    hc_client_l1_drop_args(cl, 1, &cmd);
    if (rc != 0) return hc_fail(L, err);
    return hc_reply_push_one(L, r);
}

static int client_command(lua_State *L)
{
    client *cl = hc_check_client(L);
    const char *argv[HC_ARGS_STACK];
    size_t lens[HC_ARGS_STACK];
    char err[HC_ERRLEN];
    redisReply *r;
    hc_cmd cmd;
    int rc;

    hc_args_from_stack(L, 2, lua_gettop(L), &cmd, argv, lens);
    if (cl->cluster) check_routable(L, &cmd, 2);
    if (cl->pool == NULL) return hc_fail(L, "closed");
    rc = hc_client_exec(cl, 1, &cmd, &r, err);
    hc_client_l1_drop_args(cl, 1, &cmd);
    if (rc != 0) return hc_fail(L, err);
    return hc_reply_push_one(L, r);
}

static int client_pipeline(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    redisReply **r;
    hc_cmd *cmds;
    int n;

    cmds = hc_args_from_list(L, 2, &n);
    if (cl->cluster) {
        int i;
        for (i = 0; i < n; i++) check_routable(L, &cmds[i], 2);
    }
    r = reply_slots(L, n);
    if (cl->pool == NULL) return hc_fail(L, "closed");
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    {
        int rc = hc_client_exec(cl, n, cmds, r, err);
        hc_client_l1_drop_args(cl, n, cmds);
        if (rc != 0) return hc_fail(L, err);
    }
    return hc_reply_push_list(L, r, n);
}

static int client_reserve(lua_State *L)
{
    client *cl = hc_check_client(L);
    char err[HC_ERRLEN];
    reserved *rs;

    size_t kn = 0;
    const char *key = luaL_optlstring(L, 2, NULL, &kn);
    hc_pool *p;
    if (cl->cluster && key == NULL)
        return luaL_argerror(L, 2, "a key expected: on a cluster the connection goes to its node");
    if (cl->pool == NULL) return hc_fail(L, "closed");
    rs = (reserved *)lua_newuserdata(L, sizeof *rs); /* may raise: nothing held yet */
    rs->pool = NULL;
    rs->conn = NULL;
    rs->timeout_set = 0;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    p = hc_client_pool_for(cl, key ? key : "", kn, err);
    if (p == NULL) return hc_fail(L, err);
    rs->conn = hc_pool_checkout(p, err, sizeof err);
    if (rs->conn == NULL) return hc_fail(L, err);
    hc_pool_ref(p);
    rs->pool = p;
    return 1;
}

static void set_int(lua_State *L, const char *k, unsigned long long v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int client_pool_stats(lua_State *L)
{
    client *cl = hc_check_client(L);
    hc_pool_stats st;
    int nodes = 1;
    if (cl->pool == NULL) return hc_fail(L, "closed");
    if (cl->cluster) hc_cluster_stats(cl->cluster, &st, &nodes);
    else hc_pool_get_stats(cl->pool, &st);
    lua_createtable(L, 0, 11);
    set_int(L, "size", (unsigned long long)st.size);
    set_int(L, "in_use", (unsigned long long)st.in_use);
    set_int(L, "idle", (unsigned long long)st.idle);
    set_int(L, "connecting", (unsigned long long)st.connecting);
    set_int(L, "caches", (unsigned long long)st.refs);
    set_int(L, "created", st.created);
    set_int(L, "closed", st.closed);
    set_int(L, "errors", st.errors);
    set_int(L, "waits", st.waits);
    set_int(L, "exhausted", st.exhausted);
    set_int(L, "health_checks", st.health_checks);
    lua_pushstring(L, st.breaker == HC_BREAKER_OPEN ? "open" : "closed");
    lua_setfield(L, -2, "breaker");
    set_int(L, "breaker_opens", st.breaker_opens);
    set_int(L, "breaker_probes", st.breaker_probes);
    if (cl->cluster) {
        unsigned long long a, b, c, d;
        hc_cluster_counters(cl->cluster, &a, &b, &c, &d);
        lua_createtable(L, 0, 5);
        set_int(L, "nodes", (unsigned long long)nodes);
        set_int(L, "masters", (unsigned long long)hc_cluster_masters(cl->cluster));
        set_int(L, "map_loads", a);
        set_int(L, "moved", b);
        set_int(L, "ask", c);
        set_int(L, "retries", d);
        lua_setfield(L, -2, "cluster");
    }
    if (cl->smaster) {
        unsigned long long a, b;
        const hc_settings *ms = hc_pool_settings(hc_smaster_pool(cl->smaster));
        hc_smaster_counters(cl->smaster, &a, &b);
        lua_createtable(L, 0, 3);
        lua_pushfstring(L, "%s:%d", ms->host, ms->port);
        lua_setfield(L, -2, "master");
        set_int(L, "switches", a);
        set_int(L, "discoveries", b);
        lua_setfield(L, -2, "sentinel");
    }
    if (cl->l1) {
        hc_l1_stats ls;
        hc_l1_get_stats(cl->l1, &ls);
        lua_createtable(L, 0, 16);
        lua_pushboolean(L, ls.up);
        lua_setfield(L, -2, "tracking");
        set_int(L, "hits", ls.store.hits);
        set_int(L, "misses", ls.store.misses);
        set_int(L, "stale_hits", ls.store.stale_hits);
        set_int(L, "evictions", ls.store.evictions);
        set_int(L, "expired", ls.store.expired);
        set_int(L, "fills_cancelled", ls.store.fills_cancelled);
        set_int(L, "bytes", ls.store.bytes);
        set_int(L, "items", ls.store.items);
        set_int(L, "max_bytes", ls.store.max_bytes);
        set_int(L, "invalidations", ls.invalidations);
        set_int(L, "flushes", ls.flushes);
        set_int(L, "distrusts", ls.distrusts);
        set_int(L, "subscriptions", ls.reconnects);
        lua_setfield(L, -2, "l1");
    }
    return 1;
}

/* cache:_record(op, events, key, t0[, err[, bytes_out]]): an operation
 * done in Lua */
static const char *record_opt_string(lua_State *L, int idx, size_t *n)
{
    *n = 0;
    if (lua_isnoneornil(L, idx)) return NULL;
    if (lua_type(L, idx) != LUA_TSTRING) luaL_argerror(L, idx, "string or nil expected");
    return lua_tolstring(L, idx, n);
}

static int client_record(lua_State *L)
{
    client *cl = hc_check_client(L);
    /* strict types: no string-number coercion (which would also rewrite a
     * number key on the stack) */
    int op = lua_type(L, 2) == LUA_TSTRING ? hc_stats_op_index(lua_tostring(L, 2)) : -1;
    lua_Integer evi = lua_type(L, 3) == LUA_TNUMBER && hc_isinteger(L, 3) ? lua_tointeger(L, 3) : -1;
    size_t kn, errn;
    const char *key = record_opt_string(L, 4, &kn);
    double t0 = lua_type(L, 5) == LUA_TNUMBER ? (double)lua_tonumber(L, 5) : -1;
    const char *err = record_opt_string(L, 6, &errn);
    lua_Integer out = lua_isnoneornil(L, 7) ? 0
                    : lua_type(L, 7) == LUA_TNUMBER && hc_isinteger(L, 7) ? lua_tointeger(L, 7) : -1;
    unsigned ev;
    if (op < 0) return luaL_argerror(L, 2, "operation name expected (get, set, ..., expire)");
    if (evi < 0 || evi >= 2 * HC_EV_INVALIDATE) return luaL_argerror(L, 3, "event bits expected");
    /* finite, and not before boot nor in the future: the histogram never
     * sees a NaN or infinite latency (hc_stats clamps anyway) */
    if (!(t0 >= 0 && t0 <= hc_now())) return luaL_argerror(L, 5, "a start time from hicache.now() expected");
    if (kn > HC_FULLKEY_MAX) return luaL_argerror(L, 4, "key too long");
    if (out < 0) return luaL_argerror(L, 7, "a byte count expected");
    ev = (unsigned)evi;
    if (cl->stats || cl->hook != LUA_NOREF) hc_client_event(L, cl, op, ev, key, kn, 0, (size_t)out, t0, err);
    return 0;
}

/* cache:stats() -> table | nil, "stats are off" */
static int client_stats(lua_State *L)
{
    client *cl = hc_check_client(L);
    if (cl->stats == NULL) return hc_fail(L, "stats are off");
    hc_stats_push(L, cl->stats);
    return 1;
}

static int client_stats_reset(lua_State *L)
{
    client *cl = hc_check_client(L);
    if (cl->stats) hc_stats_reset(cl->stats);
    lua_pushboolean(L, 1);
    return 1;
}

/* Drops the pool and the router (close and __gc). */
static void client_drop(client *cl)
{
    if (cl->pool) {
        cl->l1 = NULL;
        hc_pool_release(cl->pool);
        cl->pool = NULL;
    }
    hc_cluster_free(cl->cluster);
    cl->cluster = NULL;
    hc_smaster_free(cl->smaster);
    cl->smaster = NULL;
}

static int client_gc(lua_State *L)
{
    client *cl = hc_check_client(L);
    client_drop(cl);
    hc_stats_free(cl->stats);
    cl->stats = NULL;
    hc_keyring_free(cl->ring); /* zeroes the keys */
    cl->ring = NULL;
    if (cl->hook != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, cl->hook);
    if (cl->memo != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, cl->memo);
    if (cl->pub_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, cl->pub_ref);
    cl->memo = LUA_NOREF;
    cl->hook = LUA_NOREF;
    cl->pub_ref = LUA_NOREF;
    return 0;
}

static int client_close(lua_State *L)
{
    client *cl = hc_check_client(L);
    if (cl->pub_ref != LUA_NOREF) { /* stats_publish: the publisher deletes its key (errors ignored) */
        if (cl->pool && cl->xio == NULL) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, cl->pub_ref);
            lua_pushvalue(L, 1);
            lua_pushliteral(L, "close");
            if (lua_pcall(L, 2, 0, 0) != 0) lua_pop(L, 1);
        }
        luaL_unref(L, LUA_REGISTRYINDEX, cl->pub_ref);
        cl->pub_ref = LUA_NOREF;
    }
    client_drop(cl);
    lua_pushboolean(L, 1);
    return 1;
}

/* cache:_publish_info() -> interval, prefix, host, pid for stats_publish
 * (lua/hicache/publish.lua); nil when it is off. */
static int client_publish_info(lua_State *L)
{
    client *cl = hc_check_client(L);
    char host[256];
    if (cl->pub_interval <= 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (lua_Number)cl->pub_interval);
    lua_pushlstring(L, cl->prefix, cl->prefix_len);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    lua_pushstring(L, host);
    lua_pushinteger(L, (lua_Integer)hc_pool_self_pid());
    return 4;
}

/* Describes the endpoint without the password. */
static void push_endpoint(lua_State *L, hc_pool *p)
{
    const hc_settings *s;
    if (p == NULL) {
        lua_pushliteral(L, "closed");
        return;
    }
    s = hc_pool_settings(p);
    if (s->memory)
        lua_pushfstring(L, "memory://%s", s->mem_name);
    else if (s->path)
        lua_pushfstring(L, "unix://%s%s%s?db=%d", s->username ? s->username : "",
                        s->username ? "@" : "", s->path, s->db);
    else
        lua_pushfstring(L, "%s://%s%s%s:%d/%d", s->tls ? "rediss" : "redis",
                        s->username ? s->username : "", s->username ? "@" : "", s->host, s->port, s->db);
}

static int client_tostring(lua_State *L)
{
    client *cl = hc_check_client(L);
    push_endpoint(L, cl->pool);
    lua_pushfstring(L, "hicache.client (%s): %p", lua_tostring(L, -1), (void *)cl);
    return 1;
}

/* ---- reserved connections ------------------------------------------------ */

static reserved *check_reserved(lua_State *L)
{
    return (reserved *)luaL_checkudata(L, 1, CONN_MT);
}

static int conn_command(lua_State *L)
{
    reserved *rs = check_reserved(L);
    const char *argv[HC_ARGS_STACK];
    size_t lens[HC_ARGS_STACK];
    char err[HC_ERRLEN];
    redisReply *r;
    hc_cmd cmd;

    hc_args_from_stack(L, 2, lua_gettop(L), &cmd, argv, lens);
    if (rs->conn == NULL) return hc_fail(L, "released");
    if (exec_reserved(rs->conn, 1, &cmd, &r, err) != 0) return hc_fail(L, err);
    return hc_reply_push_one(L, r);
}

static int conn_pipeline(lua_State *L)
{
    reserved *rs = check_reserved(L);
    char err[HC_ERRLEN];
    redisReply **r;
    hc_cmd *cmds;
    int n;

    cmds = hc_args_from_list(L, 2, &n);
    r = reply_slots(L, n);
    if (rs->conn == NULL) return hc_fail(L, "released");
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    if (exec_reserved(rs->conn, n, cmds, r, err) != 0) return hc_fail(L, err);
    return hc_reply_push_list(L, r, n);
}

static int conn_set_timeout(lua_State *L)
{
    reserved *rs = check_reserved(L);
    double t = (double)luaL_checknumber(L, 2);
    if (!(t > 0 && t <= 86400.0)) return luaL_argerror(L, 2, "timeout must be > 0 and <= 86400 seconds");
    if (rs->conn == NULL) return hc_fail(L, "released");
    if (hc_conn_set_timeout(rs->conn, t) != 0) return hc_fail(L, "cannot set timeout");
    rs->timeout_set = 1;
    lua_pushboolean(L, 1);
    return 1;
}

/* Returns the connection to the pool. io = 0 (from __gc): no I/O, so a
 * connection left in MULTI/WATCH is closed instead of reset. */
static void conn_return(reserved *rs, int io)
{
    hc_conn *c = rs->conn;
    if (c == NULL) return;
    rs->conn = NULL;
    if (c->pid == hc_pool_self_pid()) {
        if (rs->timeout_set && !c->broken &&
            hc_conn_set_timeout(c, hc_pool_settings(rs->pool)->timeout) != 0)
            c->broken = 1;
        if (io) hc_conn_settle(c);
        else if (c->state != 0) c->broken = 1;
    }
    hc_pool_checkin(rs->pool, c);
    hc_pool_release(rs->pool);
    rs->pool = NULL;
}

static int conn_release(lua_State *L)
{
    reserved *rs = check_reserved(L);
    conn_return(rs, 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int conn_gc(lua_State *L)
{
    conn_return(check_reserved(L), 0);
    return 0;
}

static int conn_tostring(lua_State *L)
{
    reserved *rs = check_reserved(L);
    push_endpoint(L, rs->pool);
    lua_pushfstring(L, "hicache.conn (%s): %p", lua_tostring(L, -1), (void *)rs);
    return 1;
}

/* ---- module --------------------------------------------------------------- */

static const luaL_Reg client_methods[] = {
    {"command", client_command},
    {"pipeline", client_pipeline},
    {"reserve", client_reserve},
    {"nodes", client_nodes},
    {"_is_cluster", client_is_cluster},
    {"node_command", client_node_command},
    {"pool_stats", client_pool_stats},
    {"close", client_close},
    {"_record", client_record},
    {"stats", client_stats},
    {"stats_reset", client_stats_reset},
    {"_publish_info", client_publish_info},
    {NULL, NULL}};

static const luaL_Reg conn_methods[] = {
    {"command", conn_command},
    {"pipeline", conn_pipeline},
    {"set_timeout", conn_set_timeout},
    {"release", conn_release},
    {NULL, NULL}};

/* core.now() -> seconds on the monotonic clock (for timing, never jumps) */
static int core_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)hc_now());
    return 1;
}

/* core.sleep(seconds): blocks this thread (lock retry backoff) */
static int core_sleep(lua_State *L)
{
    double s = (double)luaL_checknumber(L, 1);
    struct timespec ts;
    if (!(s >= 0 && s <= 3600)) return luaL_argerror(L, 1, "seconds must be from 0 to 3600");
    ts = hc_timespec(s);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return 0;
}

/* core.time_ms() -> Unix time in integer milliseconds (wall clock) */
static int core_time_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + (lua_Integer)(ts.tv_nsec / 1000000));
    return 1;
}

/* core.token() -> 32 hex characters: 128 random bits from libsodium */
static int core_token(lua_State *L)
{
    unsigned char raw[16];
    char hex[33];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    lua_pushlstring(L, hex, 32);
    return 1;
}

static const luaL_Reg core_functions[] = {
    {"new", core_new},
    {"now", core_now},
    {"time_ms", core_time_ms},
    {"sleep", core_sleep},
    {"token", core_token},
    {NULL, NULL}};

/* Creates metatable `name` with __index = a new methods table, which is
 * left on the stack (so the Lua layer can add methods to it). */
void hc_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                  lua_CFunction gc, lua_CFunction tostr)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, tostr);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_remove(L, -2);
}

int luaopen_hicache_core(lua_State *L)
{
    if (sodium_init() < 0) return luaL_error(L, "libsodium cannot be initialised");
    hc_reply_init(L);
    luaL_newlib(L, core_functions);
    hc_new_class(L, CLIENT_MT, client_methods, client_gc, client_tostring);
    hc_cache_register(L);
    hc_read_register(L);
    hc_write_register(L);
    hc_lease_register(L);
    hc_keeper_register(L);
    hc_seal_register(L, lua_gettop(L) - 1);
    lua_setfield(L, -2, "Client");
    hc_new_class(L, CONN_MT, conn_methods, conn_gc, conn_tostring);
    lua_setfield(L, -2, "Conn");
    hc_keys_register(L);
    hc_lproto_register(L);
    hc_lstore_register(L);
    hc_lsentinel_register(L);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_createtable(L, 0, 10); /* event bits for cache:_record */
    lua_pushinteger(L, HC_EV_HIT); lua_setfield(L, -2, "hit");
    lua_pushinteger(L, HC_EV_MISS); lua_setfield(L, -2, "miss");
    lua_pushinteger(L, HC_EV_SET); lua_setfield(L, -2, "set");
    lua_pushinteger(L, HC_EV_DELETE); lua_setfield(L, -2, "delete");
    lua_pushinteger(L, HC_EV_ERROR); lua_setfield(L, -2, "error");
    lua_pushinteger(L, HC_EV_STALE); lua_setfield(L, -2, "stale");
    lua_pushinteger(L, HC_EV_WAIT); lua_setfield(L, -2, "wait");
    lua_pushinteger(L, HC_EV_COMPUTE); lua_setfield(L, -2, "compute");
    lua_pushinteger(L, HC_EV_LOCK_WAIT); lua_setfield(L, -2, "lock_wait");
    lua_pushinteger(L, HC_EV_INVALIDATE); lua_setfield(L, -2, "invalidate");
    lua_setfield(L, -2, "EV");
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
