/*
 * hc_store_threads.c -- runs a Lua spec script in N threads at once, each
 * thread with its own Lua state, in one process: what spec/store_spec.lua
 * uses to share a named store (core.store{name = ...}) between states and
 * to hammer it from several threads.
 *
 * usage: hc_store_threads SCRIPT THREADS ITERATIONS
 * SCRIPT returns a table M with:
 *   M.setup(threads, iters)            run first, in the main state (optional)
 *   M.thread(tid, threads, iters)      run by every thread (tid 1..N), all
 *                                      started together; returns a string
 *   M.check(results, threads, iters)   run last, in the main state, with
 *                                      the threads' strings; returns a string
 * Prints "ok <what check returned>" and exits 0, or the first error and
 * exits 1. Needs LUA_CPATH to find hicache.core. The main state lives
 * across the threads (what setup opened stays open).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct job {
    const char *script;
    int tid, n, iters;
    pthread_barrier_t *go;
    char *result;
    char err[1024];
} job;

/* Runs the script: its table at index 1. 0 (and an error in err) on
 * failure. */
static int load(lua_State *L, const char *script, char *err, size_t errlen)
{
    if (luaL_dofile(L, script) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        return 0;
    }
    if (!lua_istable(L, -1) || lua_gettop(L) != 1) {
        snprintf(err, errlen, "%s does not return a table", script);
        return 0;
    }
    return 1;
}

/* Pushes the function `name` of the script's table: 1, or 0 (nothing
 * pushed) when it has none. */
static int method(lua_State *L, const char *name)
{
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static void *run(void *arg)
{
    job *j = (job *)arg;
    lua_State *L = luaL_newstate();
    int ok = 0;
    if (L == NULL) {
        snprintf(j->err, sizeof j->err, "no Lua state");
        pthread_barrier_wait(j->go);
        return NULL;
    }
    luaL_openlibs(L);
    ok = load(L, j->script, j->err, sizeof j->err);
    if (ok && !method(L, "thread")) {
        snprintf(j->err, sizeof j->err, "the script has no thread function");
        ok = 0;
    }
    pthread_barrier_wait(j->go); /* every thread ready: go */
    if (ok) {
        lua_pushinteger(L, j->tid);
        lua_pushinteger(L, j->n);
        lua_pushinteger(L, j->iters);
        if (lua_pcall(L, 3, 1, 0) != 0)
            snprintf(j->err, sizeof j->err, "%s", lua_tostring(L, -1));
        else if ((j->result = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "")) == NULL)
            snprintf(j->err, sizeof j->err, "out of memory");
    }
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    int n, iters, i, failed = 0;
    pthread_t *th;
    pthread_barrier_t go;
    job *jobs;
    lua_State *L;
    char err[1024];

    if (argc != 4) {
        fprintf(stderr, "usage: %s SCRIPT THREADS ITERATIONS\n", argv[0]);
        return 2;
    }
    n = atoi(argv[2]);
    iters = atoi(argv[3]);
    if (n < 1) return 2;
    th = calloc((size_t)n, sizeof *th);
    jobs = calloc((size_t)n, sizeof *jobs);
    L = luaL_newstate();
    if (!th || !jobs || !L) return 2;
    luaL_openlibs(L);
    if (!load(L, argv[1], err, sizeof err)) {
        printf("setup: %s\n", err);
        return 1;
    }
    if (method(L, "setup")) {
        lua_pushinteger(L, n);
        lua_pushinteger(L, iters);
        if (lua_pcall(L, 2, 0, 0) != 0) {
            printf("setup: %s\n", lua_tostring(L, -1));
            return 1;
        }
    }
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (i = 0; i < n; i++) {
        jobs[i].script = argv[1];
        jobs[i].tid = i + 1;
        jobs[i].n = n;
        jobs[i].iters = iters;
        jobs[i].go = &go;
        if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) return 2;
    }
    for (i = 0; i < n; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (i = 0; i < n; i++) {
        if (jobs[i].err[0]) {
            printf("thread %d failed: %s\n", i + 1, jobs[i].err);
            failed = 1;
        }
    }
    if (!failed) {
        if (method(L, "check")) {
            lua_createtable(L, n, 0);
            for (i = 0; i < n; i++) {
                lua_pushstring(L, jobs[i].result);
                lua_rawseti(L, -2, i + 1);
            }
            lua_pushinteger(L, n);
            lua_pushinteger(L, iters);
            if (lua_pcall(L, 3, 1, 0) != 0) {
                printf("check: %s\n", lua_tostring(L, -1));
                failed = 1;
            } else {
                printf("ok %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
            }
        } else {
            printf("ok\n");
        }
    }
    for (i = 0; i < n; i++) free(jobs[i].result);
    lua_close(L);
    free(th);
    free(jobs);
    return failed;
}
