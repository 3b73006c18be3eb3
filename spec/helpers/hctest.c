/*
 * hctest.c -- test-only Lua module for the specs (Debian ships no lua-posix
 * for Lua 5.4): fork, waitpid, _exit, getpid, kill, sleep, a monotonic
 * clock, and a loopback "black hole" listener whose accept queue is full,
 * so connects to it hang until the client's connect timeout.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "compat.h"

static int t_fork(lua_State *L)
{
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid < 0) return luaL_error(L, "fork: %s", strerror(errno));
    lua_pushinteger(L, pid);
    return 1;
}

/* waitpid(pid) -> exit code, or 128 + signal number */
static int t_waitpid(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return luaL_error(L, "waitpid: %s", strerror(errno));
    lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 1;
}

static int t_exit(lua_State *L)
{
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

static int t_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int t_kill(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int sig = (int)luaL_optinteger(L, 2, SIGKILL);
    lua_pushboolean(L, kill(pid, sig) == 0);
    return 1;
}

static int t_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return 0;
}

static int t_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* blackhole() -> port, {fds}: a listener with backlog 0 that never accepts,
 * its queue filled by our own connects, so further SYNs are dropped. */
static int t_blackhole(lua_State *L)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int lfd, i;

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) return luaL_error(L, "socket: %s", strerror(errno));
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 0) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        close(lfd);
        return luaL_error(L, "listen: %s", strerror(errno));
    }
    lua_pushinteger(L, ntohs(a.sin_port));
    lua_newtable(L);
    lua_pushinteger(L, lfd);
    lua_rawseti(L, -2, 1);
    for (i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) break;
        fcntl(fd, F_SETFL, O_NONBLOCK);
        connect(fd, (struct sockaddr *)&a, sizeof a); /* EINPROGRESS is fine */
        lua_pushinteger(L, fd);
        lua_rawseti(L, -2, i + 2);
    }
    return 2;
}

static int t_close(lua_State *L)
{
    close((int)luaL_checkinteger(L, 1));
    return 0;
}

/* with_alloc_limit(bytes, fn, ...) -> pcall(fn, ...) results, run while the
 * state may allocate at most `bytes` more than it had: makes any
 * allocation inside hicache's reply conversion fail on purpose. */
typedef struct limit {
    lua_Alloc f;
    void *ud;
    long long delta, budget;
} limit;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    limit *l = (limit *)ud;
    long long old = ptr ? (long long)osize : 0;
    void *p;
    if ((long long)nsize > old && l->delta + ((long long)nsize - old) > l->budget) return NULL;
    p = l->f(l->ud, ptr, osize, nsize);
    if (p != NULL || nsize == 0) l->delta += (long long)nsize - old;
    return p;
}

static int t_with_alloc_limit(lua_State *L)
{
    limit l;
    int n, status;
    l.budget = (long long)luaL_checkinteger(L, 1);
    l.delta = 0;
    luaL_checktype(L, 2, LUA_TFUNCTION);
    l.f = lua_getallocf(L, &l.ud);
    n = lua_gettop(L) - 2;
    lua_setallocf(L, limited_alloc, &l);
    status = lua_pcall(L, n, LUA_MULTRET, 0);
    lua_setallocf(L, l.f, l.ud);
    lua_pushboolean(L, status == 0);
    lua_replace(L, 1);
    return lua_gettop(L);
}

/* heap() -> bytes of malloc'd memory in use (glibc mallinfo2). */
static int t_heap(lua_State *L)
{
    struct mallinfo2 mi = mallinfo2();
    lua_pushinteger(L, (lua_Integer)mi.uordblks);
    return 1;
}

/* unsetenv(name): e.g. LD_PRELOAD, so shell tools the specs spawn under
 * `make test-asan` do not run with the ASan runtime (and its leak checks). */
static int t_unsetenv(lua_State *L)
{
    lua_pushboolean(L, unsetenv(luaL_checkstring(L, 1)) == 0);
    return 1;
}

/* hiredis_format(args...) -> hiredis's own redisFormatCommandArgv bytes,
 * to compare with hicache's formatter (spec/proto_spec.lua). */
static int t_hiredis_format(lua_State *L)
{
    int n = lua_gettop(L), i;
    const char *argv[64];
    size_t lens[64];
    char *out;
    int len;
    if (n < 1 || n > 64) return luaL_error(L, "1 to 64 arguments");
    for (i = 0; i < n; i++) argv[i] = luaL_checklstring(L, i + 1, &lens[i]);
    len = redisFormatCommandArgv(&out, n, argv, lens);
    if (len < 0) return luaL_error(L, "out of memory");
    lua_pushlstring(L, out, (size_t)len);
    redisFreeCommand(out);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"hiredis_format", t_hiredis_format},
    {"unsetenv", t_unsetenv},
    {"with_alloc_limit", t_with_alloc_limit}, {"heap", t_heap},
    {"fork", t_fork},   {"waitpid", t_waitpid}, {"_exit", t_exit},
    {"getpid", t_getpid}, {"kill", t_kill},     {"sleep", t_sleep},
    {"now", t_now},     {"blackhole", t_blackhole}, {"close", t_close},
    {NULL, NULL}};

int luaopen_hctest(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    return 1;
}
