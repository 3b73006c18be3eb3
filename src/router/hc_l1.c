/* hc_l1.c -- the L1 near cache of a pool and its invalidation thread
 * (see hc_l1.h, docs/DESIGN.md "L1"). */
#include "hc_l1.h"
#include "hc_time.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHANNEL "__redis__:invalidate"
#define MAX_PREFIXES 16
#define TICK 0.01 /* the thread wakes this often (the pool's tick, quiet time) */

struct hc_l1 {
    const hc_settings *s;   /* the pool's, immutable */
    hc_tls_ctx *tls;
    hc_store *store;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the thread's reconnect wait on stop */
    /* guarded by mu */
    long long id;           /* the invalidation connection's client id, 0: down */
    unsigned sub_gen;       /* which subscription connections are tracked to */
    uint32_t epoch;         /* entries of another epoch are not fresh */
    uint32_t trusted;       /* epoch while subscribed, else 0 (atomic reads) */
    uint64_t fast_hits;     /* hits served by hc_l1_unchanged (atomic) */
    void (*tick)(void *);   /* called by the thread every TICK (the pool's sweep) */
    void *tick_ctx;
    hc_conn *sub;           /* the thread's connection (shut down to stop it) */
    int stop, running;
    pid_t pid;              /* process the thread runs in */
    pthread_t th;
    unsigned long long invalidations, flushes, distrusts, reconnects;
    /* BCAST prefixes (immutable) */
    int nprefix;
    const char *prefix[MAX_PREFIXES];
    size_t prefix_len[MAX_PREFIXES];
};

static hc_store *new_store(const hc_settings *s)
{
    hc_store_opts o;
    o.max_bytes = (size_t)s->l1_max_bytes;
    o.max_items = (size_t)s->l1_max_items;
    o.policy = HC_STORE_S3FIFO;
    return hc_store_new(&o);
}

hc_l1 *hc_l1_new(const hc_settings *s, hc_tls_ctx *tls, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    hc_l1 *l1 = calloc(1, sizeof *l1);
    if (l1 == NULL || (l1->store = new_store(s)) == NULL) {
        free(l1);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l1->s = s;
    l1->tls = tls;
    l1->epoch = 1;
    l1->sub_gen = 1;
    if (s->l1_prefixes) {
        const char *p = s->l1_prefixes;
        while (*p && l1->nprefix < MAX_PREFIXES) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            l1->prefix[l1->nprefix] = p;
            l1->prefix_len[l1->nprefix++] = n;
            p += n + (nl != NULL);
        }
    }
    pthread_mutex_init(&l1->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l1->cv, &ca);
    pthread_condattr_destroy(&ca);
    return l1;
}

void hc_l1_free(hc_l1 *l1)
{
    int join;
    if (l1 == NULL) return;
    if (l1->running && l1->pid != getpid()) {
        /* a forked child that never used it: the parent's thread may hold
         * its lock or wait on its condition; touch nothing, leak it */
        return;
    }
    pthread_mutex_lock(&l1->mu);
    l1->stop = 1;
    join = l1->running && l1->pid == getpid();
    if (join && l1->sub) shutdown(l1->sub->fd, SHUT_RDWR); /* wakes its read */
    pthread_cond_broadcast(&l1->cv);
    pthread_mutex_unlock(&l1->mu);
    if (join) pthread_join(l1->th, NULL);
    hc_store_free(l1->store);
    pthread_cond_destroy(&l1->cv);
    pthread_mutex_destroy(&l1->mu);
    free(l1);
}

void hc_l1_set_tick(hc_l1 *l1, void (*fn)(void *), void *ctx)
{
    l1->tick = fn;
    l1->tick_ctx = ctx;
}

void hc_l1_forked(hc_l1 *l1)
{
    /* single-threaded child: the parent's thread is not here */
    pthread_condattr_t ca;
    pthread_mutex_init(&l1->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l1->cv, &ca);
    pthread_condattr_destroy(&ca);
    l1->stop = 0;
    l1->running = 0;
    l1->sub = NULL;
    l1->id = 0;
    l1->epoch = (l1->epoch + 1) & 0xffffff;
    if (l1->epoch == 0) l1->epoch = 1;
    l1->sub_gen++;
    l1->trusted = 0;
    l1->store = new_store(l1->s); /* the inherited one is leaked on purpose */
    if (l1->store == NULL) abort();
}

/* ---- trust ------------------------------------------------------------- */

long long hc_l1_redirect(hc_l1 *l1, uint32_t *gen)
{
    long long id;
    pthread_mutex_lock(&l1->mu);
    id = l1->id;
    *gen = l1->sub_gen;
    pthread_mutex_unlock(&l1->mu);
    return id;
}

uint32_t hc_l1_epoch(hc_l1 *l1)
{
    /* the hot path: no lock (written under mu, read atomically) */
    return __atomic_load_n(&l1->trusted, __ATOMIC_ACQUIRE);
}

/* mu held: publishes the epoch a reader trusts (0: none). */
static void publish(hc_l1 *l1)
{
    __atomic_store_n(&l1->trusted, l1->id ? l1->epoch : 0, __ATOMIC_RELEASE);
}

unsigned hc_l1_sub_gen(hc_l1 *l1)
{
    unsigned g;
    pthread_mutex_lock(&l1->mu);
    g = l1->id ? l1->sub_gen : 0;
    pthread_mutex_unlock(&l1->mu);
    return g;
}

void hc_l1_distrust(hc_l1 *l1)
{
    pthread_mutex_lock(&l1->mu);
    l1->epoch = (l1->epoch + 1) & 0xffffff;
    if (l1->epoch == 0) { /* wrapped: no old entry may look current again */
        l1->epoch = 1;
        hc_store_flush(l1->store);
    }
    l1->distrusts++;
    publish(l1);
    pthread_mutex_unlock(&l1->mu);
}

int hc_l1_tracking_argv(hc_l1 *l1, long long id, char *idbuf, const char **argv, size_t *lens, int max)
{
    int n = 0, i;
    argv[n++] = "CLIENT";
    argv[n++] = "TRACKING";
    argv[n++] = "ON";
    argv[n++] = "REDIRECT";
    snprintf(idbuf, 24, "%lld", id);
    argv[n++] = idbuf;
    if (l1->s->l1_bcast) {
        argv[n++] = "BCAST";
        for (i = 0; i < l1->nprefix && n + 2 <= max; i++) {
            argv[n++] = "PREFIX";
            argv[n++] = l1->prefix[i];
        }
    }
    for (i = 0; i < n; i++) lens[i] = strlen(argv[i]);
    for (i = 0; l1->s->l1_bcast && i < l1->nprefix && 7 + 2 * i < n; i++)
        lens[7 + 2 * i] = l1->prefix_len[i];
    return n;
}

/* ---- entries ------------------------------------------------------------ */

#define EPOCH_OF(flags) ((flags) >> 8)

int hc_l1_get(hc_l1 *l1, const char *key, size_t kn, int allow_stale, uint64_t have_stamp,
              hc_store_val *out)
{
    uint32_t cur = hc_l1_epoch(l1);
    int r = hc_store_get(l1->store, key, kn, hc_now_coarse(), allow_stale, have_stamp, out);
    if (r == HC_STORE_HIT && (cur == 0 || EPOCH_OF(out->flags) != cur || (out->flags & HC_L1_LOCAL))) {
        /* untrusted: a stale copy, for stale_if_error only (LOCAL copies
         * are never HIT: kept already expired, see hc_l1_keep_local) */
        if (allow_stale && l1->s->l1_stale > 0) return HC_STORE_STALE;
        free(out->data);
        out->data = NULL;
        return HC_STORE_MISS;
    }
    if (r < 0) r = HC_STORE_MISS;
    return r;
}

int hc_l1_unchanged(hc_l1 *l1, unsigned shard, uint64_t seq, uint32_t epoch, double expires)
{
    if (epoch != 0 && epoch == hc_l1_epoch(l1) && hc_store_seq(l1->store, shard) == seq &&
        (expires == 0 || hc_now_coarse() < expires)) {
        __atomic_add_fetch(&l1->fast_hits, 1, __ATOMIC_RELAXED); /* counted with the store's hits */
        return 1;
    }
    return 0;
}

uint64_t hc_l1_fill_begin(hc_l1 *l1, const char *key, size_t kn, uint32_t *epoch)
{
    /* with ttl 0 (stale copies only) no tracking is needed: any epoch */
    *epoch = l1->s->l1_ttl > 0 ? hc_l1_epoch(l1) : 0;
    if (l1->s->l1_ttl > 0 && *epoch == 0) return 0;
    return hc_store_fill_begin(l1->store, key, kn, hc_now());
}

void hc_l1_fill_end(hc_l1 *l1, const char *key, size_t kn, uint64_t ticket, uint32_t epoch,
                    const char *val, size_t vn, uint32_t flags, long long pttl_ms, double sent)
{
    double now = hc_now(), fresh = l1->s->l1_ttl, expires;
    if (ticket == 0) return;
    if (pttl_ms == 0 || pttl_ms < -1) { /* gone already */
        hc_store_fill_abort(l1->store, key, kn, ticket);
        return;
    }
    /* reads check expiry on the coarse clock (a tick late at most) */
    if (pttl_ms > 0 && pttl_ms / 1000.0 - 0.01 < fresh) fresh = pttl_ms / 1000.0 - 0.01;
    expires = sent + fresh; /* from when the GET was sent: the PTTL is older than now */
    if (fresh <= 0 || expires < now) expires = now; /* stale copy only */
    hc_store_fill_end(l1->store, key, kn, ticket, val, vn, (flags & 0xffu) | (epoch << 8), expires,
                      expires + l1->s->l1_stale, now);
}

void hc_l1_fill_abort(hc_l1 *l1, const char *key, size_t kn, uint64_t ticket)
{
    if (ticket) hc_store_fill_abort(l1->store, key, kn, ticket);
}

void hc_l1_keep_local(hc_l1 *l1, const char *key, size_t kn, const char *val, size_t vn, double ttl)
{
    double now = hc_now();
    hc_store_set(l1->store, key, kn, val, vn, HC_L1_LOCAL, now, now + ttl, HC_STORE_ALWAYS, now);
}

void hc_l1_drop(hc_l1 *l1, const char *key, size_t kn)
{
    hc_store_del(l1->store, key, kn, hc_now());
}

void hc_l1_flush(hc_l1 *l1)
{
    hc_store_flush(l1->store);
    pthread_mutex_lock(&l1->mu);
    l1->flushes++;
    pthread_mutex_unlock(&l1->mu);
}

void hc_l1_get_stats(hc_l1 *l1, hc_l1_stats *st)
{
    hc_store_get_stats(l1->store, &st->store);
    st->store.hits += __atomic_load_n(&l1->fast_hits, __ATOMIC_RELAXED);
    pthread_mutex_lock(&l1->mu);
    st->up = l1->id != 0;
    st->invalidations = l1->invalidations;
    st->flushes = l1->flushes;
    st->distrusts = l1->distrusts;
    st->reconnects = l1->reconnects;
    st->epoch = l1->epoch;
    pthread_mutex_unlock(&l1->mu);
}

/* ---- the invalidation thread --------------------------------------------- */

static int stopping(hc_l1 *l1)
{
    int s;
    pthread_mutex_lock(&l1->mu);
    s = l1->stop;
    pthread_mutex_unlock(&l1->mu);
    return s;
}

/* Waits seconds or until stopped. */
static void pause_for(hc_l1 *l1, double seconds)
{
    struct timespec ts = hc_timespec(hc_now() + seconds);
    pthread_mutex_lock(&l1->mu);
    if (!l1->stop) pthread_cond_timedwait(&l1->cv, &l1->mu, &ts);
    pthread_mutex_unlock(&l1->mu);
}

static int run1(hc_conn *c, int argc, const char **argv, redisReply **r, char *err)
{
    size_t lens[4];
    hc_cmd cmd;
    int i;
    for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    cmd.argc = argc;
    cmd.argv = argv;
    cmd.argvlen = lens;
    return hc_conn_exec(c, 1, &cmd, r, err, HC_ERRLEN);
}

/* One message of the subscription: drops keys; 1 for a pong. */
static int apply(hc_l1 *l1, const redisReply *r)
{
    const redisReply *p;
    size_t i;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) return 0;
    if (r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "pong") == 0) return 1;
    if (r->elements != 3 || strcmp(r->element[0]->str, "message") != 0) return 0;
    p = r->element[2];
    if (p->type == REDIS_REPLY_NIL) { /* FLUSHDB / FLUSHALL */
        hc_l1_flush(l1);
        return 0;
    }
    if (p->type != REDIS_REPLY_ARRAY) return 0;
    for (i = 0; i < p->elements; i++)
        if (p->element[i]->type == REDIS_REPLY_STRING)
            hc_store_del(l1->store, p->element[i]->str, p->element[i]->len, hc_now());
    pthread_mutex_lock(&l1->mu);
    l1->invalidations += p->elements;
    pthread_mutex_unlock(&l1->mu);
    return 0;
}

/* Connects, subscribes, publishes the id, and reads until the connection
 * breaks or the L1 is stopped. */
static void subscribe_once(hc_l1 *l1)
{
    char err[HC_ERRLEN];
    const char *id_argv[2] = {"CLIENT", "ID"};
    const char *sub_argv[2] = {"SUBSCRIBE", CHANNEL};
    const char *ping_argv[1] = {"PING"};
    redisReply *r;
    long long id;
    int pinged = 0;
    double quiet = 0;
    hc_conn *anchor = NULL;
    hc_conn *c = hc_conn_open(l1->s, l1->tls, err, sizeof err);
    if (c == NULL) return;
    if (run1(c, 2, id_argv, &r, err) != 0) goto out;
    id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    if (id <= 0 || run1(c, 2, sub_argv, &r, err) != 0) goto out;
    freeReplyObject(r);
    if (l1->s->l1_bcast) {
        /* BCAST: one connection of the thread's own registers the
         * prefixes for the subscription (pool connections need no
         * tracking, and their closing loses nothing); it must live as long */
        const char *argv[8 + 32];
        size_t lens[8 + 32];
        char idbuf[24];
        hc_cmd cmd;
        anchor = hc_conn_open(l1->s, l1->tls, err, sizeof err);
        if (anchor == NULL) goto out;
        cmd.argc = hc_l1_tracking_argv(l1, id, idbuf, argv, lens, 8 + 32);
        cmd.argv = argv;
        cmd.argvlen = lens;
        if (hc_conn_exec(anchor, 1, &cmd, &r, err, sizeof err) != 0) goto out;
        if (r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            goto out;
        }
        freeReplyObject(r);
    }
    pthread_mutex_lock(&l1->mu);
    if (l1->stop) {
        pthread_mutex_unlock(&l1->mu);
        goto out;
    }
    l1->sub = c;
    l1->id = id;
    l1->sub_gen++;
    l1->epoch = (l1->epoch + 1) & 0xffffff; /* what was filled before is not trusted */
    if (l1->epoch == 0) l1->epoch = 1;
    l1->reconnects++;
    publish(l1);
    pthread_mutex_unlock(&l1->mu);
    if (hc_conn_set_timeout(c, TICK) != 0) goto lost;
    for (;;) {
        int rc = hc_conn_read_reply(c, &r, err, sizeof err);
        if (stopping(l1)) {
            if (rc == 0) freeReplyObject(r);
            break;
        }
        if (l1->tick) l1->tick(l1->tick_ctx);
        if (rc == 1) { /* quiet for a timeout: is the server still there? */
            hc_cmd cmd;
            size_t len = 4;
            if ((quiet += TICK) < l1->s->timeout) continue;
            quiet = 0;
            if (pinged) break;
            cmd.argc = 1;
            cmd.argv = ping_argv;
            cmd.argvlen = &len;
            if (hc_conn_send(c, 1, &cmd, err, sizeof err) != 0) break;
            if (anchor && hc_conn_ping(anchor, err, sizeof err) != 0) break; /* BCAST lost */
            pinged = 1;
            continue;
        }
        if (rc < 0) break;
        quiet = 0;
        if (apply(l1, r)) pinged = 0;
        freeReplyObject(r);
    }
lost:
    pthread_mutex_lock(&l1->mu);
    l1->sub = NULL;
    l1->id = 0;
    l1->epoch = (l1->epoch + 1) & 0xffffff; /* invalidations may have been lost */
    if (l1->epoch == 0) l1->epoch = 1;
    publish(l1);
    pthread_mutex_unlock(&l1->mu);
out:
    hc_conn_close(anchor);
    hc_conn_close(c);
}

static void *thread_main(void *arg)
{
    hc_l1 *l1 = (hc_l1 *)arg;
    double wait = l1->s->breaker_probe > 0 ? l1->s->breaker_probe : 0.25;
    while (!stopping(l1)) {
        subscribe_once(l1);
        if (!stopping(l1)) pause_for(l1, wait);
    }
    return NULL;
}

void hc_l1_start(hc_l1 *l1)
{
    if (l1->s->l1_ttl <= 0) return; /* stale copies only: nothing to track */
    pthread_mutex_lock(&l1->mu);
    if (!l1->running && !l1->stop) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old); /* signals go to the application's threads */
        if (pthread_create(&l1->th, NULL, thread_main, l1) == 0) {
            l1->running = 1;
            l1->pid = getpid();
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_mutex_unlock(&l1->mu);
}
