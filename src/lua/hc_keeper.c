/*
 * hc_keeper.c -- keeps a key alive while its holder works: the get_or_set
 * lease while fn computes, and a lock taken with renew = true.
 *
 * One background thread per process (started on first use, and again in
 * a forked child) serves every registration: it sleeps until the earliest
 * is due (a third of its TTL after the last extension), then extends the
 * due keys of one pool in one pipelined round trip, on a connection
 * checked out of that pool, with "PEXPIRE if GET == our value" (the
 * EXTEND script). A key that no longer holds our value (revoked, expired,
 * taken over) is lost: the keeper stops extending it. Registering and
 * stopping cost a mutex and no I/O, so a fill shorter than a third of its
 * lease never causes a renewal.
 *
 * The thread lives as long as the process, so the module is pinned in
 * memory when it starts (RTLD_NODELETE): a Lua state that closes must not
 * unload the code the thread runs.
 *
 * The registry (a list under one mutex) is a process-wide global, like
 * the pool registry. Lock order: the keeper mutex is never held while a
 * pool function runs. pthread_atfork holds it across fork(2); a child
 * starts with an empty registry and its own thread; registrations it
 * inherited are freed without I/O when their owner stops them.
 */
#define _GNU_SOURCE /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_ops.h"
#include "hc_time.h"

#define WATCH_MT "hicache.watch"
#define BATCH 32

typedef struct keep {
    struct keep *prev, *next;
    hc_pool *pool;          /* a reference, dropped when the keep is freed */
    pid_t pid;              /* process that registered it                  */
    long long ttl_ms;
    double due;             /* next extension, on hc_now()                  */
    unsigned long renewals;
    int linked;             /* in the keeper's list                         */
    int busy;               /* the keeper is extending it right now         */
    int stopped;            /* its owner let go: the keeper frees it        */
    int lost;
    size_t klen, vlen;
    char key[HC_NAME_MAX];
    char val[128];
} keep;

/* The Lua-side handle. */
typedef struct watch {
    keep *k;                /* NULL after stop()                            */
    unsigned long renewals;
    int lost;
} watch;

static pthread_mutex_t keeper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t keeper_cv;
static pthread_once_t keeper_once = PTHREAD_ONCE_INIT;
static keep *keeper_list;
static pid_t keeper_pid;    /* the process whose thread serves the list, 0: none */
static double keeper_next;  /* when the thread wakes up next; 0: not before a signal */

static void keeper_prepare(void) { pthread_mutex_lock(&keeper_mu); }
static void keeper_parent(void) { pthread_mutex_unlock(&keeper_mu); }

static void init_cv(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&keeper_cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* In the child only this thread runs: the parent's keeper thread is gone,
 * so its list and condition variable start afresh. */
static void keeper_child(void)
{
    keeper_list = NULL;
    keeper_pid = 0;
    keeper_next = 0;
    init_cv();
    pthread_mutex_unlock(&keeper_mu);
}

static void keeper_init(void)
{
    Dl_info self;
    init_cv();
    if (dladdr((void *)&keeper_init, &self) != 0 && self.dli_fname != NULL)
        (void)dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE); /* never unloaded */
    pthread_atfork(keeper_prepare, keeper_parent, keeper_child);
}

static void unlink_keep(keep *k)
{
    if (!k->linked) return;
    if (k->prev) k->prev->next = k->next;
    else keeper_list = k->next;
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
    k->linked = 0;
}

static void free_keep(keep *k)
{
    hc_pool_release(k->pool);
    free(k);
}

/* Extends keys[0..n) (all of one pool) in one round trip: rc[i] = 1
 * extended, 0 lost, -1 not known (I/O error: retried sooner). */
static void extend(hc_pool *pool, keep **keys, int n, int *rc)
{
    const char *src = hc_script_source(HC_SCRIPT_EXTEND);
    char err[HC_ERRLEN];
    redisReply *r[BATCH];
    hc_cmdb b;
    hc_conn *c;
    int i;
    for (i = 0; i < n; i++) rc[i] = -1;
    hc_cmdb_init(&b);
    for (i = 0; i < n; i++) {
        hc_cmdb_str(&b, "EVAL");
        hc_cmdb_ref(&b, src, strlen(src));
        hc_cmdb_str(&b, "1");
        hc_cmdb_ref(&b, keys[i]->key, keys[i]->klen);
        hc_cmdb_ref(&b, keys[i]->val, keys[i]->vlen);
        hc_cmdb_int(&b, keys[i]->ttl_ms);
        hc_cmdb_str(&b, "1");
        hc_cmdb_end(&b);
    }
    if (hc_cmdb_finish(&b) == 0 && (c = hc_pool_checkout(pool, err, sizeof err)) != NULL) {
        if (hc_conn_exec(c, n, b.cmds, r, err, sizeof err) == 0) {
            for (i = 0; i < n; i++) {
                if (r[i]->type == REDIS_REPLY_INTEGER) rc[i] = r[i]->integer == 1;
                freeReplyObject(r[i]);
            }
        }
        hc_conn_settle(c);
        hc_pool_checkin(pool, c);
    }
    hc_cmdb_free(&b);
}

static void *keeper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&keeper_mu);
    for (;;) {
        keep *k, *first = NULL, *batch[BATCH], *dead[BATCH];
        int n = 0, ndead = 0, rc[BATCH], i;
        double now;
        for (k = keeper_list; k; k = k->next)
            if (!k->busy && (first == NULL || k->due < first->due)) first = k;
        if (first == NULL) {
            keeper_next = 0;
            pthread_cond_wait(&keeper_cv, &keeper_mu);
            continue;
        }
        now = hc_now();
        if (first->due > now) {
            struct timespec ts = hc_timespec(first->due);
            keeper_next = first->due;
            pthread_cond_timedwait(&keeper_cv, &keeper_mu, &ts);
            continue;
        }
        keeper_next = now;
        for (k = keeper_list; k && n < BATCH; k = k->next)
            if (!k->busy && k->pool == first->pool && k->due <= now) batch[n++] = k;
        for (i = 0; i < n; i++) batch[i]->busy = 1;
        pthread_mutex_unlock(&keeper_mu);
        extend(first->pool, batch, n, rc); /* the busy keeps stay allocated */
        pthread_mutex_lock(&keeper_mu);
        now = hc_now();
        for (i = 0; i < n; i++) {
            k = batch[i];
            k->busy = 0;
            if (k->stopped) {
                dead[ndead++] = k;
            } else if (rc[i] == 1) {
                k->renewals++;
                k->due = now + (double)k->ttl_ms / 3000.0;
            } else if (rc[i] == 0) {
                k->lost = 1;
                unlink_keep(k);
            } else {
                k->due = now + (double)k->ttl_ms / 12000.0; /* still valid for 2/3 of its ttl */
            }
        }
        if (ndead > 0) {
            pthread_mutex_unlock(&keeper_mu);
            for (i = 0; i < ndead; i++) free_keep(dead[i]);
            pthread_mutex_lock(&keeper_mu);
        }
    }
    return NULL;
}

/* Adds k to the list, starting this process's keeper thread if needed.
 * 0, or -1 when the thread cannot start. */
static int keeper_add(keep *k)
{
    int rc = 0;
    pthread_once(&keeper_once, keeper_init);
    pthread_mutex_lock(&keeper_mu);
    if (keeper_pid != hc_pool_self_pid()) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &at, keeper_main, NULL) == 0) keeper_pid = hc_pool_self_pid();
        else rc = -1;
        pthread_attr_destroy(&at);
    }
    if (rc == 0) {
        k->next = keeper_list;
        if (keeper_list) keeper_list->prev = k;
        keeper_list = k;
        k->linked = 1;
        /* wake the thread only when it would sleep past this one's due time */
        if (keeper_next == 0 || k->due < keeper_next) pthread_cond_signal(&keeper_cv);
    }
    pthread_mutex_unlock(&keeper_mu);
    return rc;
}

static void watch_stop(watch *w)
{
    keep *k = w->k;
    int free_now = 1;
    if (k == NULL) return;
    w->k = NULL;
    if (k->pid == hc_pool_self_pid()) {
        pthread_mutex_lock(&keeper_mu);
        unlink_keep(k);
        w->renewals = k->renewals;
        w->lost = k->lost;
        if (k->busy) {
            k->stopped = 1; /* the keeper frees it when its round trip is over */
            free_now = 0;
        }
        pthread_mutex_unlock(&keeper_mu);
    } else {
        w->renewals = k->renewals;
        w->lost = k->lost;
    }
    if (free_now) free_keep(k);
}

int hc_keeper_watch(lua_State *L, client *cl, const char *key, size_t klen, const char *val, size_t vlen,
                    long long ttl)
{
    watch *w;
    keep *k;
    char err[HC_ERRLEN];
    hc_pool *p = hc_client_pool_for(cl, key, klen, err); /* a cluster: the key's node */
    if (p == NULL) return hc_fail(L, err);
    w = (watch *)lua_newuserdata(L, sizeof *w);
    w->k = NULL;
    w->renewals = 0;
    w->lost = 0;
    luaL_getmetatable(L, WATCH_MT);
    lua_setmetatable(L, -2);
    k = (keep *)calloc(1, sizeof *k);
    if (k == NULL) return hc_fail(L, "out of memory");
    memcpy(k->key, key, klen);
    k->klen = klen;
    memcpy(k->val, val, vlen);
    k->vlen = vlen;
    k->ttl_ms = ttl;
    k->pid = hc_pool_self_pid();
    k->due = hc_now() + (double)ttl / 3000.0;
    hc_pool_ref(p);
    k->pool = p;
    if (keeper_add(k) != 0) {
        free_keep(k);
        return hc_fail(L, "cannot start the keeper thread");
    }
    w->k = k;
    return 1;
}

/* cache:_watch(key, value, ttl_ms) -> watch | nil, err
 * Keeps key (which must hold value) alive with a TTL of ttl_ms until
 * watch:stop(), garbage collection of the watch, or process exit. */
static int cache_watch(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t klen, vlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *val = luaL_checklstring(L, 3, &vlen);
    lua_Integer ttl = luaL_checkinteger(L, 4);
    if (klen >= HC_NAME_MAX) return luaL_argerror(L, 2, "key too long");
    if (vlen >= sizeof ((keep *)0)->val) return luaL_argerror(L, 3, "value too long");
    if (ttl < 30) return luaL_argerror(L, 4, "ttl must be at least 30 ms");
    if (ttl > 1000000000000000LL) return luaL_argerror(L, 4, "ttl out of range");
    return hc_keeper_watch(L, cl, key, klen, val, vlen, (long long)ttl);
}

static watch *check_watch(lua_State *L)
{
    return (watch *)luaL_checkudata(L, 1, WATCH_MT);
}

/* watch:stop() -> true; idempotent */
static int watch_stop_l(lua_State *L)
{
    watch_stop(check_watch(L));
    lua_pushboolean(L, 1);
    return 1;
}

/* watch:status() -> renewals, lost */
static int watch_status(lua_State *L)
{
    watch *w = check_watch(L);
    unsigned long n = w->renewals;
    int lost = w->lost;
    if (w->k && w->k->pid == hc_pool_self_pid()) {
        pthread_mutex_lock(&keeper_mu);
        n = w->k->renewals;
        lost = w->k->lost;
        pthread_mutex_unlock(&keeper_mu);
    }
    lua_pushinteger(L, (lua_Integer)n);
    lua_pushboolean(L, lost);
    return 2;
}

static int watch_gc(lua_State *L)
{
    watch_stop(check_watch(L));
    return 0;
}

void hc_keeper_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"stop", watch_stop_l}, {"status", watch_status}, {NULL, NULL}};
    lua_pushcfunction(L, cache_watch);
    lua_setfield(L, -2, "_watch");
    luaL_newmetatable(L, WATCH_MT);
    lua_pushcfunction(L, watch_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
