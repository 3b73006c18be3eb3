/* hc_mem.c -- the in-process node: registry, fork, locks, the exec loop
 * and BLPOP (see hc_mem.h). The commands are in hc_mem_cmd.c, the scripts
 * in hc_mem_script.c. */
#include "hc_mem_int.h"
#include "hc_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The process-wide registry of nodes: the only mutable globals of the
 * node, under registry_mu. self_pid is written by the first acquire
 * (under pthread_once) and by the fork child handler, when the child has
 * a single thread. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static hc_mnode *registry;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pid_t self_pid;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&registry_mu);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&registry_mu);
}

/* The child keeps none of the parent's nodes: another thread of the
 * parent may have held their locks at the fork. They are leaked. */
static void atfork_child(void)
{
    self_pid = getpid();
    registry = NULL;
    pthread_mutex_unlock(&registry_mu);
}

static void init_once(void)
{
    self_pid = getpid();
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int mine(const hc_mnode *n)
{
    return n->pid == self_pid;
}

static void node_free(hc_mnode *n)
{
    hc_store_free(n->store);
    pthread_rwlock_destroy(&n->rw);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n->name);
    free(n);
}

/* A new node (registry mutex held). */
static hc_mnode *node_new(const char *name, double max_bytes, double max_items)
{
    hc_store_opts o;
    pthread_condattr_t ca;
    hc_mnode *n = calloc(1, sizeof *n);
    if (n == NULL) return NULL;
    n->name = strdup(name);
    o.max_bytes = (size_t)max_bytes;
    o.max_items = (size_t)max_items;
    o.policy = HC_STORE_S3FIFO;
    n->store = n->name ? hc_store_new(&o) : NULL;
    if (n->store == NULL) {
        free(n->name);
        free(n);
        return NULL;
    }
    pthread_rwlock_init(&n->rw, NULL);
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    hc_mscript_init(n);
    n->max_bytes = max_bytes;
    n->max_items = max_items;
    n->pid = self_pid;
    return n;
}

/* This process's node of that name and limits, one more reference
 * (registry mutex held). */
static hc_mnode *lookup(const char *name, double max_bytes, double max_items)
{
    hc_mnode *n;
    for (n = registry; n; n = n->next)
        if (n->pid == self_pid && n->max_bytes == max_bytes && n->max_items == max_items &&
            strcmp(n->name, name) == 0)
            break;
    if (n == NULL && (n = node_new(name, max_bytes, max_items)) != NULL) {
        n->next = registry;
        registry = n;
    }
    if (n) n->refs++;
    return n;
}

void hc_mnode_release(hc_mnode *n)
{
    hc_mnode **pp;
    int last = 0;
    if (n == NULL) return;
    pthread_mutex_lock(&registry_mu);
    if (n->pid == self_pid && --n->refs == 0) {
        last = 1;
        for (pp = &registry; *pp; pp = &(*pp)->next)
            if (*pp == n) {
                *pp = n->next;
                break;
            }
    }
    pthread_mutex_unlock(&registry_mu);
    if (last) node_free(n); /* no reference is left: no other thread reaches it */
}

hc_mnode *hc_mnode_current(hc_mnode **slot, const char *name, double max_bytes, double max_items,
                           char *err, size_t errlen)
{
    hc_mnode *n;
    pthread_once(&once, init_once);
    pthread_mutex_lock(&registry_mu);
    n = *slot;
    if (n == NULL || n->pid != self_pid) {
        /* first use, or a forked child: the parent's copy stays as it is (leaked) */
        n = lookup(name, max_bytes, max_items);
        if (n) *slot = n;
    }
    pthread_mutex_unlock(&registry_mu);
    if (n == NULL) snprintf(err, errlen, "out of memory");
    return n;
}

/* ---- BLPOP: waits on the condition variable, no lock held ---------------- */

void hc_mem_pushed(hc_mnode *n)
{
    pthread_mutex_lock(&n->mu);
    n->pushes++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* BLPOP key [key ...] timeout: the first element of the first non-empty
 * list, waiting up to timeout seconds (0: for ever) -- and at most the
 * connection's command timeout, after which the command fails with
 * "timeout", as on a socket. */
redisReply *hc_mem_blpop(mcall *c)
{
    hc_mnode *n = c->n;
    const char *t = c->argv[c->argc - 1];
    char buf[64], *end;
    double secs, deadline, limit, start = hc_now();
    int i;
    if (c->len[c->argc - 1] >= sizeof buf) return mr_err("ERR timeout is not a float or out of range");
    memcpy(buf, t, c->len[c->argc - 1]);
    buf[c->len[c->argc - 1]] = '\0';
    secs = strtod(buf, &end);
    if (end == buf || *end != '\0' || secs != secs || secs > 1e15)
        return mr_err("ERR timeout is not a float or out of range");
    if (secs < 0) return mr_err("ERR timeout is negative");
    deadline = secs > 0 ? start + secs : 0;
    limit = start + c->timeout;
    for (;;) {
        unsigned long long seen;
        double now, until;
        pthread_rwlock_wrlock(&n->rw);
        c->now = hc_now();
        for (i = 1; i < c->argc - 1; i++) {
            char *v;
            size_t vn;
            int rc = hc_mv_lpop(c, c->argv[i], c->len[i], &v, &vn);
            if (rc == 0) continue;
            pthread_rwlock_unlock(&n->rw);
            if (rc < 0) return hc_mval_error(rc);
            {
                redisReply *r = mr_arr(2);
                if (r == NULL) {
                    free(v);
                    return NULL;
                }
                r->element[0] = mr_str(c->argv[i], c->len[i]);
                r->element[1] = mr_take(v, vn);
                return mr_done(r);
            }
        }
        seen = n->pushes;
        pthread_rwlock_unlock(&n->rw);
        now = hc_now();
        if (deadline > 0 && now >= deadline) return mr_nil();
        if (now >= limit) {
            c->timed_out = 1;
            return NULL;
        }
        until = deadline > 0 && deadline < limit ? deadline : limit;
        pthread_mutex_lock(&n->mu);
        while (n->pushes == seen && hc_now() < until) {
            struct timespec ts = hc_timespec(until);
            pthread_cond_timedwait(&n->cv, &n->mu, &ts);
        }
        pthread_mutex_unlock(&n->mu);
    }
}

/* ---- exec ------------------------------------------------------------------ */

static int upper_name(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i;
    if (n == 0 || n >= outlen) return -1;
    for (i = 0; i < n; i++) out[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    out[n] = '\0';
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* One command: its reply, or NULL with *timed_out or out of memory. */
static redisReply *run_one(hc_mnode *n, const hc_cmd *cmd, double timeout, int *timed_out)
{
    char name[32], text[80];
    const mcmd *m;
    mcall c;
    redisReply *r;
    if (cmd->argc < 1) return mr_err("ERR empty command");
    m = upper_name(cmd->argv[0], cmd->argvlen[0], name, sizeof name) == 0
            ? hc_mcmd_find(name, cmd->argvlen[0]) : NULL;
    if (m == NULL) {
        mr_arg_text(cmd->argv[0], cmd->argvlen[0], text, sizeof text);
        return mr_err("ERR unknown command '%s' (not supported by the memory backend)", text);
    }
    if ((m->arity > 0 && cmd->argc != m->arity) || (m->arity < 0 && cmd->argc < -m->arity)) {
        snprintf(text, sizeof text, "%s", m->name);
        lower(text);
        return mr_err("ERR wrong number of arguments for '%s' command", text);
    }
    c.n = n;
    c.argc = cmd->argc;
    c.argv = cmd->argv;
    c.len = cmd->argvlen;
    c.timeout = timeout;
    c.timed_out = 0;
    if (m->lock == M_READ) pthread_rwlock_rdlock(&n->rw);
    else if (m->lock == M_WRITE) pthread_rwlock_wrlock(&n->rw);
    c.now = hc_now();
    r = m->fn(&c);
    if (m->lock == M_READ || m->lock == M_WRITE) pthread_rwlock_unlock(&n->rw);
    *timed_out = c.timed_out;
    return r;
}

int hc_mnode_exec(hc_mnode *node, int n, const hc_cmd *cmds, redisReply **replies, char *err,
                  size_t errlen, double timeout)
{
    int i, j;
    if (!mine(node)) {
        snprintf(err, errlen, "connection belongs to parent process");
        return -1;
    }
    for (i = 0; i < n; i++) {
        int timed_out = 0;
        replies[i] = run_one(node, &cmds[i], timeout, &timed_out);
        if (replies[i] == NULL) {
            snprintf(err, errlen, "%s", timed_out ? "timeout" : "out of memory");
            for (j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            return -1;
        }
    }
    return 0;
}
