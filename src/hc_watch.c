/*
 * hc_watch.c -- the lock watchdog (lock opts.renew = true): a background
 * thread with its own connection that extends one lock every ttl/3 while
 * its holder lives. It stops on release (watch:stop), on garbage
 * collection of the watch, when the lock turns out lost, and with the
 * process. A watch inherited by a forked child does nothing and is freed
 * without joining (the thread exists only in the parent).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hc_client.h"
#include "hc_time.h"

#define WATCH_MT "hicache.watch"

typedef struct watch {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;            /* a thread was started (and not joined)   */
    int stop;               /* asked to stop                           */
    int lost;               /* the lock was no longer ours             */
    unsigned long renewals;
    pid_t pid;              /* process that started the thread         */
    hc_pool *pool;          /* reference held: settings of the conn    */
    long long ttl_ms;
    size_t klen;
    char key[HC_FULLKEY_MAX + 64];
    char token[65];
} watch;

static const char extend_src[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return 0\n";

/* 1 extended, 0 not ours any more, -1 I/O error (connection closed). */
static int extend_once(watch *w, hc_conn **conn)
{
    char err[HC_ERRLEN], ms[32];
    const char *argv[6];
    size_t lens[6];
    redisReply *r;
    hc_cmd cmd;
    int rc;
    if (*conn == NULL) {
        *conn = hc_conn_open(hc_pool_settings(w->pool), err, sizeof err);
        if (*conn == NULL) return -1;
    }
    snprintf(ms, sizeof ms, "%lld", w->ttl_ms);
    argv[0] = "EVAL";      lens[0] = 4;
    argv[1] = extend_src;  lens[1] = sizeof extend_src - 1;
    argv[2] = "1";         lens[2] = 1;
    argv[3] = w->key;      lens[3] = w->klen;
    argv[4] = w->token;    lens[4] = strlen(w->token);
    argv[5] = ms;          lens[5] = strlen(ms);
    cmd.argc = 6;
    cmd.argv = argv;
    cmd.argvlen = lens;
    if (hc_conn_exec(*conn, 1, &cmd, &r, err, sizeof err) != 0) {
        hc_conn_close(*conn);
        *conn = NULL;
        return -1;
    }
    rc = (r->type == REDIS_REPLY_INTEGER && r->integer == 1) ? 1 : r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

static void *watch_main(void *arg)
{
    watch *w = (watch *)arg;
    hc_conn *conn = NULL;
    double period = (double)w->ttl_ms / 3000.0;
    double next = hc_now() + period;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec ts = hc_timespec(next);
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0 || w->stop) continue;
        if (hc_now() < next) continue;
        pthread_mutex_unlock(&w->mu);
        {
            int rc = extend_once(w, &conn);
            pthread_mutex_lock(&w->mu);
            if (rc == 0) {
                w->lost = 1;
                break;
            }
            if (rc == 1) w->renewals++;
            /* on an I/O error, retry sooner: the lock is still valid for 2/3 ttl */
            next = hc_now() + (rc == 1 ? period : period / 4);
        }
    }
    pthread_mutex_unlock(&w->mu);
    hc_conn_close(conn);
    return NULL;
}

static void watch_stop(watch *w)
{
    if (!w->running) return;
    w->running = 0;
    if (w->pid == hc_pool_self_pid()) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    hc_pool_release(w->pool);
    w->pool = NULL;
}

/* cache:_watch(lock_key, token, ttl_ms) -> watch (userdata) | nil, err */
static int cache_watch(lua_State *L)
{
    client *cl = hc_check_client(L);
    size_t klen, tlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *token = luaL_checklstring(L, 3, &tlen);
    lua_Integer ttl = luaL_checkinteger(L, 4);
    watch *w;
    pthread_condattr_t ca;
    if (klen >= sizeof w->key) return luaL_argerror(L, 2, "key too long");
    if (tlen >= sizeof w->token) return luaL_argerror(L, 3, "token too long");
    if (ttl < 30) return luaL_argerror(L, 4, "ttl must be at least 30 ms");
    if (cl->pool == NULL) return hc_fail(L, "closed");
    w = (watch *)lua_newuserdata(L, sizeof *w);
    memset(w, 0, sizeof *w);
    luaL_getmetatable(L, WATCH_MT);
    lua_setmetatable(L, -2);
    memcpy(w->key, key, klen);
    w->klen = klen;
    memcpy(w->token, token, tlen);
    w->ttl_ms = (long long)ttl;
    w->pid = hc_pool_self_pid();
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    hc_pool_ref(cl->pool);
    w->pool = cl->pool;
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        hc_pool_release(w->pool);
        w->pool = NULL;
        return hc_fail(L, "cannot start the watchdog thread");
    }
    w->running = 1;
    return 1;
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
    unsigned long n = 0;
    int lost = 0;
    if (w->running) {
        pthread_mutex_lock(&w->mu);
        n = w->renewals;
        lost = w->lost;
        pthread_mutex_unlock(&w->mu);
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

void hc_watch_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"stop", watch_stop_l}, {"status", watch_status}, {NULL, NULL}};
    /* client method */
    lua_pushcfunction(L, cache_watch);
    lua_setfield(L, -2, "_watch");
    /* the watch class */
    luaL_newmetatable(L, WATCH_MT);
    lua_pushcfunction(L, watch_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
