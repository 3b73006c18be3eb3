/*
 * hc_lua_threads.c -- runs one Lua file in N threads of this process, each
 * with its own Lua state, started together (a barrier), for specs of
 * what threads sharing hicache's process-wide state do at the same time
 * (spec/backends_spec.lua: get_or_set computes once, locks exclude).
 *
 * usage: hc_lua_threads N FILE
 * FILE is called as a chunk with (phase, i, n):
 *   "before", 0, n   in a main state, which stays open while the threads
 *                    run (it may hold caches, so their pools live on);
 *   "thread", i, n   in thread i (1..n), each its own state;
 *   "after", 0, n    in the main state again, once every thread ended.
 * Each call returns a string or nothing; the output is one line per call
 * that returned one ("before: ...", "thread I: ...", "after: ..."), in
 * that order. Exits 0, or prints each error and exits 1.
 * Needs LUA_PATH/LUA_CPATH to find hicache, like hc_threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct job {
    int i, n;
    const char *file;
    pthread_barrier_t *go;
    char *out;
    char err[1024];
} job;

/* Calls the chunk of file in L with (phase, i, n); its string result is
 * strdup'ed into *out. 0, or -1 with the message in err. */
static int call(lua_State *L, const char *file, const char *phase, int i, int n, char **out, char *err,
                size_t errlen)
{
    *out = NULL;
    if (luaL_loadfile(L, file) != LUA_OK) goto fail;
    lua_pushstring(L, phase);
    lua_pushinteger(L, i);
    lua_pushinteger(L, n);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) goto fail;
    if (lua_type(L, -1) == LUA_TSTRING) *out = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
fail:
    snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    lua_pop(L, 1);
    return -1;
}

static void *run(void *arg)
{
    job *j = (job *)arg;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        snprintf(j->err, sizeof j->err, "no Lua state");
        pthread_barrier_wait(j->go);
        return NULL;
    }
    luaL_openlibs(L);
    /* load hicache before the start, so the threads start their work together */
    if (luaL_dostring(L, "require 'hicache'") != LUA_OK) {
        snprintf(j->err, sizeof j->err, "%s", lua_tostring(L, -1));
        pthread_barrier_wait(j->go);
        lua_close(L);
        return NULL;
    }
    pthread_barrier_wait(j->go);
    call(L, j->file, "thread", j->i, j->n, &j->out, j->err, sizeof j->err);
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    int n, i, failed = 0;
    pthread_t *th;
    pthread_barrier_t go;
    job *jobs;
    lua_State *L;
    char *out, err[1024];

    if (argc != 3) {
        fprintf(stderr, "usage: %s N FILE\n", argv[0]);
        return 2;
    }
    n = atoi(argv[1]);
    if (n < 1) return 2;
    th = calloc((size_t)n, sizeof *th);
    jobs = calloc((size_t)n, sizeof *jobs);
    if (!th || !jobs) return 2;
    L = luaL_newstate();
    luaL_openlibs(L);
    if (call(L, argv[2], "before", 0, n, &out, err, sizeof err) != 0) {
        printf("before failed: %s\n", err);
        return 1;
    }
    if (out) printf("before: %s\n", out);
    free(out);
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (i = 0; i < n; i++) {
        jobs[i].i = i + 1;
        jobs[i].n = n;
        jobs[i].file = argv[2];
        jobs[i].go = &go;
        if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) return 2;
    }
    for (i = 0; i < n; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (i = 0; i < n; i++) {
        if (jobs[i].err[0]) {
            printf("thread %d failed: %s\n", i + 1, jobs[i].err);
            failed = 1;
        } else if (jobs[i].out) {
            printf("thread %d: %s\n", i + 1, jobs[i].out);
        }
        free(jobs[i].out);
    }
    if (call(L, argv[2], "after", 0, n, &out, err, sizeof err) != 0) {
        printf("after failed: %s\n", err);
        failed = 1;
    } else if (out) {
        printf("after: %s\n", out);
    }
    free(out);
    lua_close(L);
    free(th);
    free(jobs);
    return failed;
}
