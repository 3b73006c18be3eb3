/* hc_pool.c -- connection pools and their registry (see hc_pool.h). */
#include "hc_pool.h"
#include "hc_l1.h"
#include "hc_mem.h"
#include "hc_time.h"

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hc_pool {
    hc_settings s;          /* deep copy, immutable after creation     */
    hc_tls_ctx *tls;        /* shared by its TLS connections, or NULL  */
    hc_mnode *mem;          /* backend = "memory": the node its connections run
                               on, from the first connect (hc_mnode_current) */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when a slot or conn frees up  */
    int refs;               /* guarded by the registry mutex           */
    hc_pool *next;          /* registry link, guarded by registry mutex */
    /* everything below is guarded by mu */
    pid_t pid;
    unsigned long gen;
    hc_conn *idle;          /* LIFO: the most recently used first       */
    int n_idle, n_in_use, n_connecting;
    int failures;           /* consecutive connect failures            */
    double retry_at;        /* no connect attempt before this time     */
    char last_err[HC_ERRLEN];
    hc_l1 *l1;              /* the L1 near cache, or NULL (own mutex)   */
    /* the circuit breaker (hc_pool.h), guarded by mu */
    int brk_state;          /* HC_BREAKER_*                             */
    int brk_fails;          /* consecutive failures while closed        */
    double brk_probe_at;    /* next half-open probe                     */
    int brk_probing;        /* the prober thread runs                   */
    unsigned brk_seq;       /* moves on at every change of state        */
    unsigned long long brk_opens, brk_probes;
    long long l1_swept_ms;  /* last check of idle tracked connections (atomic) */
    unsigned long long created, closed, errors, waits, exhausted, health_checks;
};

/* The process-wide registry: the only mutable global, mutex-protected. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static hc_pool *registry;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* This process's pid, so the hot path needs no getpid(2) syscall (glibc no
 * longer caches it). Written only by register_atfork (under pthread_once)
 * and by the atfork child handler, when the child has a single thread. */
static pid_t self_pid;

static void untrack(hc_pool *p, const hc_conn *c);

/* ---- fork(2): hold every lock across it, release on both sides ------- */

static void atfork_prepare(void)
{
    hc_pool *p;
    pthread_mutex_lock(&registry_mu);
    for (p = registry; p; p = p->next) pthread_mutex_lock(&p->mu);
}

static void atfork_release(void)
{
    hc_pool *p;
    for (p = registry; p; p = p->next) pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&registry_mu);
}

static void atfork_child(void)
{
    self_pid = getpid();
    atfork_release();
}

static void register_atfork(void)
{
    self_pid = getpid();
    pthread_atfork(atfork_prepare, atfork_release, atfork_child);
}

pid_t hc_pool_self_pid(void)
{
    return self_pid;
}

/* ---- settings ---------------------------------------------------------- */

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) return a == b;
    return strcmp(a, b) == 0;
}

static int settings_eq(const hc_settings *a, const hc_settings *b)
{
    return str_eq(a->host, b->host) && a->port == b->port &&
           str_eq(a->path, b->path) && a->db == b->db &&
           str_eq(a->username, b->username) && str_eq(a->password, b->password) &&
           a->connect_timeout == b->connect_timeout && a->timeout == b->timeout &&
           a->keepalive == b->keepalive && a->pool_size == b->pool_size &&
           a->pool_wait == b->pool_wait && a->idle_check == b->idle_check &&
           a->idle_poll == b->idle_poll &&
           a->lifetime == b->lifetime && a->backoff_base == b->backoff_base &&
           a->backoff_max == b->backoff_max && a->tls == b->tls &&
           a->tls_verify == b->tls_verify && str_eq(a->tls_ca_file, b->tls_ca_file) &&
           str_eq(a->tls_ca_path, b->tls_ca_path) && str_eq(a->tls_cert_file, b->tls_cert_file) &&
           str_eq(a->tls_key_file, b->tls_key_file) &&
           str_eq(a->tls_server_name, b->tls_server_name) &&
           a->l1_max_bytes == b->l1_max_bytes && a->l1_max_items == b->l1_max_items &&
           a->l1_ttl == b->l1_ttl && a->l1_stale == b->l1_stale && a->l1_bcast == b->l1_bcast &&
           str_eq(a->l1_prefixes, b->l1_prefixes) && a->breaker_failures == b->breaker_failures &&
           a->breaker_probe == b->breaker_probe && a->memory == b->memory &&
           str_eq(a->mem_name, b->mem_name) && a->mem_max_bytes == b->mem_max_bytes &&
           a->mem_max_items == b->mem_max_items;
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL) return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static void free_secret(char *s)
{
    if (s == NULL) return;
    memset(s, 0, strlen(s));
    free(s);
}

static void settings_free(hc_settings *s)
{
    free(s->host);
    free(s->path);
    free(s->username);
    free_secret(s->password);
    free(s->tls_ca_file);
    free(s->tls_ca_path);
    free(s->tls_cert_file);
    free(s->tls_key_file);
    free(s->tls_server_name);
    free(s->l1_prefixes);
    free(s->mem_name);
}

static int settings_copy(hc_settings *dst, const hc_settings *src)
{
    *dst = *src;
    if (dup_str(&dst->host, src->host) | dup_str(&dst->path, src->path) |
        dup_str(&dst->username, src->username) |
        dup_str(&dst->password, src->password) | dup_str(&dst->tls_ca_file, src->tls_ca_file) |
        dup_str(&dst->tls_ca_path, src->tls_ca_path) |
        dup_str(&dst->tls_cert_file, src->tls_cert_file) |
        dup_str(&dst->tls_key_file, src->tls_key_file) |
        dup_str(&dst->tls_server_name, src->tls_server_name) |
        dup_str(&dst->l1_prefixes, src->l1_prefixes) | dup_str(&dst->mem_name, src->mem_name)) {
        settings_free(dst);
        return -1;
    }
    return 0;
}

int hc_settings_copy(hc_settings *dst, const hc_settings *src)
{
    return settings_copy(dst, src);
}

void hc_settings_free(hc_settings *s)
{
    settings_free(s);
}

/* ---- registry ---------------------------------------------------------- */

static void l1_tick(void *p)
{
    hc_pool_l1_sweep((hc_pool *)p);
}

static hc_pool *pool_new(const hc_settings *s, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    hc_pool *p = calloc(1, sizeof *p);
    if (p == NULL || settings_copy(&p->s, s) != 0) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (s->tls) {
        hc_tls_opts o;
        o.ca_file = s->tls_ca_file;
        o.ca_path = s->tls_ca_path;
        o.cert_file = s->tls_cert_file;
        o.key_file = s->tls_key_file;
        o.server_name = s->tls_server_name;
        o.verify = s->tls_verify;
        p->tls = hc_tls_ctx_new(&o, err, errlen);
        if (p->tls == NULL) {
            settings_free(&p->s);
            free(p);
            return NULL;
        }
    }
    if (s->l1_max_bytes > 0 && (p->l1 = hc_l1_new(&p->s, p->tls, err, errlen)) == NULL) {
        hc_tls_ctx_free(p->tls);
        settings_free(&p->s);
        free(p);
        return NULL;
    }
    if (p->l1) hc_l1_set_tick(p->l1, l1_tick, p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->pid = getpid();
    return p;
}

hc_pool *hc_pool_acquire(const hc_settings *s, char *err, size_t errlen)
{
    hc_pool *p;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&registry_mu);
    for (p = registry; p; p = p->next)
        if (settings_eq(&p->s, s)) break;
    if (p == NULL && (p = pool_new(s, err, errlen)) != NULL) {
        p->next = registry;
        registry = p;
        if (p->l1) hc_l1_start(p->l1); /* subscribes in the background */
    }
    if (p) p->refs++;
    pthread_mutex_unlock(&registry_mu);
    return p;
}

void hc_pool_ref(hc_pool *p)
{
    pthread_mutex_lock(&registry_mu);
    p->refs++;
    pthread_mutex_unlock(&registry_mu);
}

void hc_pool_release(hc_pool *p)
{
    hc_pool **pp;
    hc_conn *c;
    int last;

    pthread_mutex_lock(&registry_mu);
    last = --p->refs == 0;
    if (last)
        for (pp = &registry; *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
    pthread_mutex_unlock(&registry_mu);
    if (!last) return;
    /* No reference is left, so no other thread can reach p any more. */
    while ((c = p->idle) != NULL) {
        p->idle = c->next;
        hc_conn_close(c);
    }
    hc_l1_free(p->l1);
    hc_mnode_release(p->mem);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    hc_tls_ctx_free(p->tls);
    settings_free(&p->s);
    free(p);
}

const hc_settings *hc_pool_settings(const hc_pool *p)
{
    return &p->s;
}

/* ---- checkout / checkin (called with p->mu held) ------------------------ */

/* After fork(2) the child starts a new generation with no connections. */
static void check_fork(hc_pool *p)
{
    hc_conn *c;
    pid_t me = self_pid;
    if (p->pid == me) return;
    while ((c = p->idle) != NULL) {
        p->idle = c->next;
        hc_conn_close(c); /* closes the child's descriptor copy only */
    }
    p->pid = me;
    p->gen++;
    p->n_idle = p->n_in_use = p->n_connecting = 0;
    p->failures = 0;
    p->retry_at = 0;
    p->brk_state = HC_BREAKER_CLOSED;
    p->brk_fails = p->brk_probing = 0;
    p->brk_opens = p->brk_probes = 0;
    p->brk_seq++;
    if (p->l1) hc_l1_forked(p->l1);
    p->created = p->closed = p->errors = p->waits = p->exhausted = p->health_checks = 0;
}

static int expired(const hc_pool *p, const hc_conn *c, double now)
{
    return p->s.lifetime > 0 && now - c->created >= p->s.lifetime;
}

/* Pops idle connections until one passes the checks. A connection used
 * less than idle_poll seconds ago is taken without a syscall (poll_all
 * overrides that); an older one is polled for EOF; one idle longer than
 * idle_check is PINGed. Drops p->mu around the PING; the connection then
 * counts as in use. */
static hc_conn *take_idle(hc_pool *p, int poll_all)
{
    hc_conn *c;
    char err[HC_ERRLEN];
    while ((c = p->idle) != NULL) {
        double now = hc_now();
        int poll_it = poll_all || now - c->last_used >= p->s.idle_poll;
        p->idle = c->next;
        p->n_idle--;
        c->next = NULL;
        if (expired(p, c, now) || (poll_it && !hc_conn_usable(c))) {
            p->closed++;
            untrack(p, c);
            hc_conn_close(c);
            continue;
        }
        if (p->l1 && !p->s.l1_bcast) {
            unsigned g = hc_l1_sub_gen(p->l1);
            if (g != 0 && c->track_epoch != g) { /* tracked to a subscription that is gone */
                p->closed++;
                hc_conn_close(c);
                continue;
            }
        }
        p->n_in_use++;
        if (now - c->last_used > p->s.idle_check) {
            int ok;
            p->health_checks++;
            pthread_mutex_unlock(&p->mu);
            ok = hc_conn_ping(c, err, sizeof err) == 0;
            pthread_mutex_lock(&p->mu);
            if (!ok) {
                p->n_in_use--;
                p->closed++;
                p->errors++;
                untrack(p, c);
                hc_conn_close(c);
                pthread_cond_signal(&p->cv);
                continue;
            }
        }
        c->reused = 1;
        return c;
    }
    return NULL;
}

/* ---- L1 tracking and the circuit breaker --------------------------------- */

/* A tracked connection is going away: Redis forgets the keys it tracked,
 * so what was filled through it can no longer be trusted. */
static void untrack(hc_pool *p, const hc_conn *c)
{
    if (p->l1 && !p->s.l1_bcast && c->track_epoch != 0 && c->track_epoch == hc_l1_sub_gen(p->l1)) hc_l1_distrust(p->l1);
}

/* CLIENT TRACKING on a connection just opened (no mutex held): -1 with
 * err when the connection broke. */
static int track(hc_pool *p, hc_conn *c, char *err, size_t errlen)
{
    const char *argv[8 + 32];
    size_t lens[8 + 32];
    char idbuf[24];
    unsigned gen;
    redisReply *r;
    hc_cmd cmd;
    long long id;
    if (p->l1 == NULL || p->s.l1_bcast) return 0; /* BCAST: the L1 thread's own connection */
    id = hc_l1_redirect(p->l1, &gen);
    c->track_epoch = 0;
    if (id == 0) return 0; /* nothing fills L1 while the subscription is down */
    cmd.argc = hc_l1_tracking_argv(p->l1, id, idbuf, argv, lens, 8 + 32);
    cmd.argv = argv;
    cmd.argvlen = lens;
    if (hc_conn_exec(c, 1, &cmd, &r, err, errlen) != 0) return -1;
    if (r->type == REDIS_REPLY_ERROR) hc_l1_distrust(p->l1); /* the redirect is gone: the thread will see */
    else c->track_epoch = gen;
    freeReplyObject(r);
    c->state = 0; /* tracking is how the pool opens its connections, not a user's state */
    return 0;
}

static void *prober_main(void *arg);

/* A failure seen while closed (mu held): 1 when the breaker just opened
 * and the caller must start the prober (after unlocking). */
static int brk_failure(hc_pool *p)
{
    hc_conn *c;
    if (p->s.breaker_failures <= 0 || p->brk_state != HC_BREAKER_CLOSED) return 0;
    if (++p->brk_fails < p->s.breaker_failures) return 0;
    p->brk_state = HC_BREAKER_OPEN;
    p->brk_seq++;
    p->brk_opens++;
    p->brk_probe_at = hc_now() + p->s.breaker_probe;
    pthread_cond_broadcast(&p->cv); /* waiters for a connection fail fast too */
    while ((c = p->idle) != NULL) { /* they lead to the same dead server */
        p->idle = c->next;
        p->n_idle--;
        p->closed++;
        untrack(p, c);
        hc_conn_close(c);
    }
    if (p->brk_probing) return 0;
    p->brk_probing = 1;
    return 1;
}

static void start_prober(hc_pool *p)
{
    pthread_t th;
    pthread_attr_t at;
    sigset_t all, old;
    hc_pool_ref(p); /* the prober's, released when it ends */
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&th, &at, prober_main, p) != 0) {
        pthread_mutex_lock(&p->mu);
        p->brk_probing = 0; /* the next checkout tries to start one again */
        pthread_mutex_unlock(&p->mu);
        hc_pool_release(p);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
}

/* Whether the prober must end (the breaker closed, or no cache holds the
 * pool any more); when it must, it is marked as gone in the same critical
 * section, so a cache that acquires the pool afterwards sees no prober and
 * its checkout starts one (registry_mu before p->mu: the atfork order). */
static int prober_done(hc_pool *p)
{
    int done;
    pthread_mutex_lock(&registry_mu);
    pthread_mutex_lock(&p->mu);
    done = p->pid != self_pid || p->brk_state != HC_BREAKER_OPEN || p->refs <= 1;
    if (done) p->brk_probing = 0;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&registry_mu);
    return done;
}

/* The half-open probes of an open breaker: one connect + PING every
 * breaker_probe seconds (+-20% jitter, so processes do not reconnect in
 * step); the first that answers closes the breaker and its connection
 * joins the idle list. Ends when the breaker closes or no cache holds the
 * pool any more. */
static void *prober_main(void *arg)
{
    hc_pool *p = (hc_pool *)arg;
    unsigned seed = (unsigned)getpid() ^ (unsigned)(uintptr_t)p ^ (unsigned)(hc_now() * 1e6);
    char err[HC_ERRLEN];
    for (;;) {
        double wait;
        hc_conn *c;
        if (prober_done(p)) break;
        pthread_mutex_lock(&p->mu);
        wait = p->brk_probe_at - hc_now();
        pthread_mutex_unlock(&p->mu);
        if (wait > 0) {
            struct timespec ts;
            ts.tv_sec = (time_t)wait;
            ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
            nanosleep(&ts, NULL);
        }
        c = hc_conn_open(&p->s, p->tls, err, sizeof err);
        if (c && (hc_conn_ping(c, err, sizeof err) != 0 || track(p, c, err, sizeof err) != 0)) {
            hc_conn_close(c);
            c = NULL;
        }
        pthread_mutex_lock(&p->mu);
        p->brk_probes++;
        if (c && c->pid == p->pid) {
            p->brk_state = HC_BREAKER_CLOSED;
            p->brk_seq++;
            p->brk_fails = 0;
            p->failures = 0;
            p->retry_at = 0;
            c->gen = p->gen;
            c->last_used = hc_now();
            c->next = p->idle;
            p->idle = c;
            p->n_idle++;
            p->created++;
            c = NULL;
            if (p->l1) hc_l1_distrust(p->l1); /* back: nothing from before is fresh */
            pthread_cond_broadcast(&p->cv);
        } else {
            p->brk_probe_at = hc_now() + p->s.breaker_probe * (0.8 + 0.4 * (rand_r(&seed) / (double)RAND_MAX));
            snprintf(p->last_err, sizeof p->last_err, "%s", err);
        }
        pthread_mutex_unlock(&p->mu);
        if (c) hc_conn_close(c);
    }
    hc_pool_release(p);
    return NULL;
}

/* Redis drops what it tracked for a client that goes away (its idle
 * timeout, CLIENT KILL, a network drop), and an idle connection is only
 * looked at when it is taken: so every 10 ms (the L1 thread's tick, and
 * reads through L1 when it is due), the pool polls
 * every idle tracked connection and closes (and untracks: every L1 copy
 * becomes untrusted) the dead ones. mu held. Not for BCAST, whose
 * tracking is the L1 thread's own connection's. */
/* The time (ms) when a sweep is due now, or 0 (not due, or nothing to do). */
static long long sweep_due(hc_pool *p)
{
    long long now = (long long)(hc_now_coarse() * 1000);
    if (p->l1 == NULL || p->s.l1_bcast || now - __atomic_load_n(&p->l1_swept_ms, __ATOMIC_RELAXED) < 10) return 0;
    return now;
}

static void sweep_tracked(hc_pool *p)
{
    hc_conn **pc = &p->idle, *c;
    long long now = sweep_due(p);
    if (now == 0) return;
    __atomic_store_n(&p->l1_swept_ms, now, __ATOMIC_RELAXED);
    while ((c = *pc) != NULL) {
        if (c->track_epoch != 0 && !hc_conn_usable(c)) {
            *pc = c->next;
            p->n_idle--;
            p->closed++;
            untrack(p, c);
            hc_conn_close(c);
            continue;
        }
        pc = &c->next;
    }
}

static double backoff(const hc_pool *p)
{
    double d = p->s.backoff_base * ldexp(1.0, p->failures > 30 ? 30 : p->failures - 1);
    return d < p->s.backoff_max ? d : p->s.backoff_max;
}

hc_conn *hc_pool_checkout(hc_pool *p, char *err, size_t errlen)
{
    return hc_pool_checkout_ex(p, 0, err, errlen);
}

hc_conn *hc_pool_checkout_ex(hc_pool *p, int poll_all, char *err, size_t errlen)
{
    double deadline = hc_now() + p->s.pool_wait;
    int waited = 0, probe = 0;
    hc_conn *c;

    pthread_mutex_lock(&p->mu);
    check_fork(p);
    if (p->l1) {
        hc_l1_start(p->l1);
        sweep_tracked(p);
    }
    for (;;) {
        double now;
        if (p->brk_state == HC_BREAKER_OPEN) {
            /* fail fast; nobody waits for a connect timeout */
            if (!p->brk_probing) { /* its prober could not start, or ended as this cache came */
                p->brk_probing = 1;
                probe = 1;
            }
            c = NULL;
            snprintf(err, errlen, "circuit open: %s", p->last_err);
            break;
        }
        if ((c = take_idle(p, poll_all)) != NULL) break;
        now = hc_now();
        if (p->n_in_use + p->n_connecting < p->s.pool_size) {
            if (now < p->retry_at) {
                snprintf(err, errlen, "%s", p->last_err);
                break;
            }
            p->n_connecting++;
            pthread_mutex_unlock(&p->mu);
            c = p->s.memory ? hc_conn_open_mem(&p->mem, &p->s, err, errlen)
                            : hc_conn_open(&p->s, p->tls, err, errlen);
            if (c && track(p, c, err, errlen) != 0) {
                hc_conn_close(c);
                c = NULL;
            }
            pthread_mutex_lock(&p->mu);
            p->n_connecting--;
            if (c) {
                c->gen = p->gen;
                p->created++;
                p->n_in_use++;
                p->failures = 0;
                p->retry_at = 0;
            } else {
                p->errors++;
                p->failures++;
                p->retry_at = hc_now() + backoff(p);
                snprintf(p->last_err, sizeof p->last_err, "%s", err);
                probe = brk_failure(p);
                pthread_cond_signal(&p->cv);
            }
            break;
        }
        if (now >= deadline) {
            p->exhausted++;
            snprintf(err, errlen, "pool exhausted");
            break;
        }
        if (!waited) {
            waited = 1;
            p->waits++;
        }
        {
            struct timespec ts = hc_timespec(deadline);
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (probe) start_prober(p);
    return c;
}

void hc_pool_checkin(hc_pool *p, hc_conn *c)
{
    int keep, probe = 0;
    pthread_mutex_lock(&p->mu);
    check_fork(p);
    if (c->gen != p->gen || c->pid != p->pid) {
        /* Borrowed before a fork: not counted in this generation. */
        pthread_mutex_unlock(&p->mu);
        hc_conn_close(c);
        return;
    }
    p->n_in_use--;
    if (c->io_error && !c->closed_unused) {
        snprintf(p->last_err, sizeof p->last_err, "%s", c->io_err);
        probe = brk_failure(p);
    }
    else if (!c->broken) p->brk_fails = 0;
    keep = !c->broken && c->state == 0 && !expired(p, c, hc_now()) && p->brk_state == HC_BREAKER_CLOSED;
    if (keep) {
        c->last_used = hc_now();
        c->next = p->idle;
        p->idle = c;
        p->n_idle++;
    } else {
        p->closed++;
        if (c->broken) p->errors++;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!keep) {
        untrack(p, c);
        hc_conn_close(c);
    }
    if (probe) start_prober(p);
}

void hc_pool_l1_sweep(hc_pool *p)
{
    if (sweep_due(p) == 0) return; /* the hot path: no lock */
    pthread_mutex_lock(&p->mu);
    check_fork(p);
    sweep_tracked(p);
    pthread_mutex_unlock(&p->mu);
}

void hc_pool_l1_ready(hc_pool *p)
{
    if (p->l1 == NULL) return;
    pthread_mutex_lock(&p->mu);
    check_fork(p);
    hc_l1_start(p->l1);
    pthread_mutex_unlock(&p->mu);
}

hc_l1 *hc_pool_l1(hc_pool *p)
{
    return p->l1;
}

unsigned hc_pool_breaker(hc_pool *p, int *state)
{
    unsigned seq;
    pthread_mutex_lock(&p->mu);
    *state = p->brk_state;
    seq = p->brk_seq;
    pthread_mutex_unlock(&p->mu);
    return seq;
}

void hc_pool_get_stats(hc_pool *p, hc_pool_stats *st)
{
    pthread_mutex_lock(&registry_mu);
    st->refs = p->refs;
    pthread_mutex_unlock(&registry_mu);
    pthread_mutex_lock(&p->mu);
    check_fork(p);
    st->size = p->s.pool_size;
    st->in_use = p->n_in_use;
    st->idle = p->n_idle;
    st->connecting = p->n_connecting;
    st->created = p->created;
    st->closed = p->closed;
    st->errors = p->errors;
    st->waits = p->waits;
    st->exhausted = p->exhausted;
    st->health_checks = p->health_checks;
    st->breaker = p->brk_state;
    st->breaker_opens = p->brk_opens;
    st->breaker_probes = p->brk_probes;
    pthread_mutex_unlock(&p->mu);
}
