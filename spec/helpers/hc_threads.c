/*
 * hc_threads.c -- N threads, each with its own Lua state, hammer one pool
 * shared through hicache's process-wide registry.
 *
 * usage: hc_threads THREADS ITERATIONS POOL_SIZE
 * Needs LUA_PATH/LUA_CPATH to find hicache, and HICACHE_TEST_HOST/PORT.
 * Prints "ok threads=T ops=N created=C size=S" and exits 0, or prints the
 * first failure and exits 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static const char *script =
    "local tid, iters, size = ...\n"
    "local hicache = require 'hicache'\n"
    "local c = hicache.new{host = os.getenv'HICACHE_TEST_HOST',\n"
    "  port = tonumber(os.getenv'HICACHE_TEST_PORT'), pool = {size = size, wait = 10}}\n"
    "local ops = 0\n"
    "for i = 1, iters do\n"
    "  local k = 'thr:' .. tid .. ':' .. i\n"
    "  local v = string.rep(string.char(65 + tid % 26), i % 50) .. i\n"
    "  assert(c:command('SET', k, v) == 'OK', 'set failed')\n"
    "  local got, err = c:command('GET', k)\n"
    "  if got ~= v then error(('thread %d: GET %s returned %s (%s)'):format(tid, k, tostring(got), tostring(err))) end\n"
    "  if i % 10 == 0 then\n"
    "    local r = assert(c:pipeline{{'INCR', 'thr:count'}, {'DEL', k}})\n"
    "    assert(type(r[1]) == 'number' and r[1] % 1 == 0 and r[2] == 1, 'pipeline replies')\n"
    "    local conn = assert(c:reserve())\n"
    "    assert(conn:command('MULTI') == 'OK')\n"
    "    assert(conn:command('SET', k, 'x') == 'QUEUED')\n"
    "    local ex = assert(conn:command('EXEC'))\n"
    "    assert(ex[1] == 'OK', 'exec')\n"
    "    conn:release()\n"
    "  end\n"
    "  ops = ops + 2\n"
    "end\n"
    "local st = c:pool_stats()\n"
    "assert(st.in_use <= st.size and st.created <= st.size, 'pool grew past its size')\n"
    "return ops\n";

typedef struct job {
    int tid, iters, size;
    long ops;
    char err[512];
} job;

static void *run(void *arg)
{
    job *j = (job *)arg;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(j->err, sizeof j->err, "no Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    if (luaL_loadstring(L, script) != LUA_OK) goto lua_fail;
    lua_pushinteger(L, j->tid);
    lua_pushinteger(L, j->iters);
    lua_pushinteger(L, j->size);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) goto lua_fail;
    j->ops = (long)lua_tointeger(L, -1);
    lua_close(L);
    return NULL;
lua_fail:
    snprintf(j->err, sizeof j->err, "%s", lua_tostring(L, -1));
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    int n, iters, size, i, failed = 0;
    long ops = 0;
    pthread_t *th;
    job *jobs;
    lua_State *L;
    long long created = -1;

    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS ITERATIONS POOL_SIZE\n", argv[0]);
        return 2;
    }
    n = atoi(argv[1]);
    iters = atoi(argv[2]);
    size = atoi(argv[3]);
    th = calloc((size_t)n, sizeof *th);
    jobs = calloc((size_t)n, sizeof *jobs);
    if (!th || !jobs) return 2;

    /* A main state holds the pool open across the threads and reads its
     * stats afterwards: every thread must have used this same pool. */
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushinteger(L, size);
    lua_setglobal(L, "SIZE");
    if (luaL_dostring(L,
            "local hicache = require 'hicache'\n"
            "main_cache = hicache.new{host = os.getenv'HICACHE_TEST_HOST',\n"
            "  port = tonumber(os.getenv'HICACHE_TEST_PORT'), pool = {size = SIZE, wait = 10}}") != LUA_OK) {
        fprintf(stderr, "main: %s\n", lua_tostring(L, -1));
        return 1;
    }
    for (i = 0; i < n; i++) {
        jobs[i].tid = i;
        jobs[i].iters = iters;
        jobs[i].size = size;
        if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) return 2;
    }
    for (i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].err[0]) {
            printf("thread %d failed: %s\n", i, jobs[i].err);
            failed = 1;
        }
        ops += jobs[i].ops;
    }
    if (luaL_dostring(L, "local s = main_cache:pool_stats()\n"
                         "return s.created + 0, s.in_use, s.caches") == LUA_OK) {
        created = (long long)lua_tointeger(L, -3);
        if (lua_tointeger(L, -2) != 0) {
            printf("in_use after all threads: %lld\n", (long long)lua_tointeger(L, -2));
            failed = 1;
        }
    } else {
        printf("stats: %s\n", lua_tostring(L, -1));
        failed = 1;
    }
    lua_close(L);
    free(th);
    free(jobs);
    if (failed) return 1;
    printf("ok threads=%d ops=%ld created=%lld size=%d\n", n, ops, created, size);
    return 0;
}
