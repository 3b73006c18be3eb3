/*
 * hc_pool.h -- bounded connection pools, one per distinct hc_settings,
 * shared process-wide through a mutex-protected registry.
 *
 * Thread rules: every function here may be called from any thread; each
 * pool has its own mutex and condition variable, the registry has one
 * mutex, and no socket I/O happens while a mutex is held.
 *
 * Fork rules: a pool remembers the pid that owns its connections. After a
 * fork, the first call in the child starts a new generation: the parent's
 * idle connections are dropped (descriptor copy closed, nothing written),
 * and connections checked out before the fork are dropped on check-in.
 * pthread_atfork handlers hold every pool mutex across fork(2), so the child
 * never inherits a locked mutex.
 */
#ifndef HC_POOL_H
#define HC_POOL_H

#include "hc_conn.h"

typedef struct hc_pool hc_pool;
struct hc_l1;

/* Circuit breaker states (hc_settings.breaker_failures > 0):
 * CLOSED: normal; breaker_failures consecutive connect failures or
 * connections lost to an I/O error or a timeout open it.
 * OPEN: every checkout fails at once with "circuit open: <last error>"
 * (no caller waits for a connect timeout); a background prober tries one
 * connect + PING every breaker_probe seconds (+-20% jitter): that is the
 * half-open state, one probe per pool and process at a time. The first
 * probe answered closes the breaker (its connection is kept) and, with
 * an L1, makes every L1 entry stale (hc_l1_distrust). */
enum { HC_BREAKER_CLOSED = 0, HC_BREAKER_OPEN = 1 };

typedef struct hc_pool_stats {
    int size, in_use, idle, connecting, refs;
    unsigned long long created, closed, errors, waits, exhausted, health_checks;
    int breaker;
    unsigned long long breaker_opens, breaker_probes;
} hc_pool_stats;

/* A deep copy of settings (0, or -1 out of memory: nothing to free), and
 * its release (the password is wiped). */
int hc_settings_copy(hc_settings *dst, const hc_settings *src);
void hc_settings_free(hc_settings *s);

/* This process's pid, kept current across fork(2) without a syscall. */
pid_t hc_pool_self_pid(void);

/* Finds or creates the pool for these settings (copied) and takes a
 * reference. A new TLS pool loads its CA and client certificate files
 * here. NULL with err when out of memory or a TLS file cannot be used. */
hc_pool *hc_pool_acquire(const hc_settings *s, char *err, size_t errlen);

/* Takes one more reference on a pool already held. */
void hc_pool_ref(hc_pool *p);

/* Drops a reference; the last one closes the idle connections and frees. */
void hc_pool_release(hc_pool *p);

/* The settings the pool was created with (read-only, immutable). */
const hc_settings *hc_pool_settings(const hc_pool *p);

/* Borrows a connection: reuses an idle one (checked with hc_conn_usable
 * when idle for idle_poll seconds or more -- a connection used more
 * recently costs no syscall at checkout --, PINGed when idle longer than
 * idle_check, closed when older than
 * lifetime), or opens one while fewer than size exist, or waits up to
 * pool_wait for one to come back. NULL + err ("pool exhausted", "timeout",
 * "connection refused", ...) on failure. After connect failures, new
 * connects are not attempted before an exponential backoff delay
 * (backoff_base * 2^(failures-1), at most backoff_max): callers get the
 * last connect error at once instead. */
hc_conn *hc_pool_checkout(hc_pool *p, char *err, size_t errlen);

/* The same; poll_all = 1 checks every idle connection with poll(2)
 * whatever its idle time (used to retry a read on a connection that was
 * found closed: its neighbours were probably closed too). A connection
 * taken from the idle list has c->reused set until its first exec. */
hc_conn *hc_pool_checkout_ex(hc_pool *p, int poll_all, char *err, size_t errlen);

/* Returns a connection. A broken one, one still in MULTI/WATCH/DIRTY state
 * (call hc_conn_settle first), one past its lifetime, or one from another
 * process or pool generation is closed instead of kept. */
void hc_pool_checkin(hc_pool *p, hc_conn *c);

void hc_pool_get_stats(hc_pool *p, hc_pool_stats *st);
/* The pool's L1 near cache (hc_l1.h), or NULL. */
struct hc_l1 *hc_pool_l1(hc_pool *p);
/* For a pool used by a transport outside C (no checkout): after a fork,
 * starts the child's generation, and starts the L1 thread if needed. */
void hc_pool_l1_ready(hc_pool *p);
/* With an L1 not in BCAST mode, at most every 10 ms: polls the idle
 * tracked connections and closes the dead ones (Redis forgot what they
 * tracked: L1 copies become untrusted). Cheap when not due (no lock). */
void hc_pool_l1_sweep(hc_pool *p);
/* The breaker's state now and its change counter. */
unsigned hc_pool_breaker(hc_pool *p, int *state);

#endif
