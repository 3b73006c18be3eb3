/* bench/floor_get.c -- the floor of a get hit: a minimal C loop doing the
 * same GET through hiredis's blocking API (redisConnect + redisCommand), on
 * one connection, with nothing else around it: no pool, no decoding, no Lua.
 *
 *   floor_get HOST PORT KEY N [WARMUP]
 *
 * Connects, runs WARMUP untimed GETs (default 100), then N timed GETs of KEY
 * (bench.lua stores it through hicache first: the same bytes a hicache get
 * reads) and prints one line:
 *
 *   ops=<ops/s> us=<wall µs/op> cpu_us=<client CPU µs/op> bytes=<reply size>
 *
 * client CPU = getrusage(RUSAGE_SELF) user + system over the timed loop.
 * N = 0 runs only the connect and the warm-up (the baseline that
 * `make bench` subtracts when counting syscalls under strace).
 * Exits 1 if KEY is missing or a reply is not a string. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* One GET; returns the reply's length, or -1 (and says why). */
static long get(redisContext *c, const char *key, size_t klen) {
    redisReply *r = redisCommand(c, "GET %b", key, klen);
    long len;
    if (r == NULL) {
        fprintf(stderr, "floor_get: %s\n", c->errstr);
        return -1;
    }
    if (r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "floor_get: GET %s: %s\n", key,
                r->type == REDIS_REPLY_NIL ? "missing key" : "not a string reply");
        freeReplyObject(r);
        return -1;
    }
    len = (long)r->len;
    freeReplyObject(r);
    return len;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: floor_get HOST PORT KEY N [WARMUP]\n");
        return 2;
    }
    const char *host = argv[1], *key = argv[3];
    int port = atoi(argv[2]);
    long n = atol(argv[4]), warm = argc > 5 ? atol(argv[5]) : 100;
    size_t klen = strlen(key);

    redisContext *c = redisConnect(host, port);
    if (c == NULL || c->err) {
        fprintf(stderr, "floor_get: connect %s:%d: %s\n", host, port, c ? c->errstr : "out of memory");
        return 1;
    }
    long bytes = 0;
    for (long i = 0; i < warm; i++)
        if ((bytes = get(c, key, klen)) < 0) return 1;

    double c0 = cpu(), t0 = now();
    for (long i = 0; i < n; i++)
        if ((bytes = get(c, key, klen)) < 0) return 1;
    double wall = now() - t0, used = cpu() - c0;

    if (n > 0)
        printf("ops=%.1f us=%.3f cpu_us=%.3f bytes=%ld\n", (double)n / wall, wall / (double)n * 1e6,
               used / (double)n * 1e6, bytes);
    else
        printf("ops=0 us=0 cpu_us=0 bytes=%ld\n", bytes);
    redisFree(c);
    return 0;
}
