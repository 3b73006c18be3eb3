/* hc_pool.c -- connection pools and their registry (see hc_pool.h). */
#include "hc_pool.h"
#include "hc_time.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hc_pool {
    hc_settings s;          /* deep copy, immutable after creation     */
    hc_tls_ctx *tls;        /* shared by its TLS connections, or NULL  */
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
           str_eq(a->tls_server_name, b->tls_server_name);
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
        dup_str(&dst->tls_server_name, src->tls_server_name)) {
        settings_free(dst);
        return -1;
    }
    return 0;
}

/* ---- registry ---------------------------------------------------------- */

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
            hc_conn_close(c);
            continue;
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
    int waited = 0;
    hc_conn *c;

    pthread_mutex_lock(&p->mu);
    check_fork(p);
    for (;;) {
        double now;
        if ((c = take_idle(p, poll_all)) != NULL) break;
        now = hc_now();
        if (p->n_in_use + p->n_connecting < p->s.pool_size) {
            if (now < p->retry_at) {
                snprintf(err, errlen, "%s", p->last_err);
                break;
            }
            p->n_connecting++;
            pthread_mutex_unlock(&p->mu);
            c = hc_conn_open(&p->s, p->tls, err, errlen);
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
    return c;
}

void hc_pool_checkin(hc_pool *p, hc_conn *c)
{
    int keep;
    pthread_mutex_lock(&p->mu);
    check_fork(p);
    if (c->gen != p->gen || c->pid != p->pid) {
        /* Borrowed before a fork: not counted in this generation. */
        pthread_mutex_unlock(&p->mu);
        hc_conn_close(c);
        return;
    }
    p->n_in_use--;
    keep = !c->broken && c->state == 0 && !expired(p, c, hc_now());
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
    if (!keep) hc_conn_close(c);
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
    pthread_mutex_unlock(&p->mu);
}
