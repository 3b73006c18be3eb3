/* hc_smaster.c -- the master of a Sentinel group (see hc_smaster.h). */
#include "hc_smaster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hc_node.h"
#include "hc_time.h"

#define RETRY_EVERY 0.1   /* s between discoveries after a failure */
#define WATCH_FOR 30.0    /* s after a failure during which ... */
#define WATCH_EVERY 1.0   /* ... the sentinels are asked again this often */
#define QUIET 1.0         /* s without a call: the master is asked for again first */

struct hc_smaster {
    hc_settings node;       /* the data nodes' settings (host/port: the master's) */
    hc_sentinel_cfg cfg;
    int first;              /* the sentinel to ask first */
    hc_pool *pool;
    char host[256];
    int port;
    double next;            /* no discovery before */
    double watch_until;     /* ask again every WATCH_EVERY until then */
    int due;                /* a discovery is asked for */
    int unconfirmed;        /* a call failed: nothing is sent before a discovery succeeds */
    char last_err[HC_ERRLEN]; /* why the last discovery failed */
    double last_ok;         /* the last call answered */
    unsigned long long switches, discoveries;
};

static void cfg_free(hc_sentinel_cfg *c)
{
    int i;
    for (i = 0; c->hosts && i < c->n; i++) free(c->hosts[i]);
    free(c->hosts);
    free(c->ports);
    free(c->master_name);
    free(c->username);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d;
    if (s == NULL) return NULL;
    d = strdup(s);
    if (d == NULL) *oom = 1;
    return d;
}

static int cfg_copy(hc_sentinel_cfg *d, const hc_sentinel_cfg *s)
{
    int i, oom = 0;
    memset(d, 0, sizeof *d);
    d->hosts = calloc((size_t)s->n, sizeof *d->hosts);
    d->ports = calloc((size_t)s->n, sizeof *d->ports);
    if (d->hosts == NULL || d->ports == NULL) oom = 1;
    else {
        d->n = s->n;
        for (i = 0; i < s->n; i++) {
            d->hosts[i] = dup_or_null(s->hosts[i], &oom);
            d->ports[i] = s->ports[i];
        }
    }
    d->master_name = dup_or_null(s->master_name, &oom);
    d->username = dup_or_null(s->username, &oom);
    d->password = dup_or_null(s->password, &oom);
    if (oom) cfg_free(d);
    return oom ? -1 : 0;
}

/* Asks the sentinels; moves the pool when the master changed. 0, or -1
 * with err (the pool stays where it was). */
static int discover(hc_smaster *m, char *err, size_t errlen)
{
    char host[256];
    int port;
    hc_settings s;
    hc_pool *p;
    m->discoveries++;
    m->next = hc_now() + RETRY_EVERY;
    if (hc_sentinel_discover(&m->cfg, &m->node, &m->first, host, sizeof host, &port, err, errlen) != 0) {
        snprintf(m->last_err, sizeof m->last_err, "%s", err);
        return -1;
    }
    m->due = 0;
    m->unconfirmed = 0;
    if (m->pool && port == m->port && strcmp(host, m->host) == 0) return 0;
    s = m->node;
    s.host = host;
    s.port = port;
    s.path = NULL;
    p = hc_pool_acquire(&s, err, errlen);
    if (p == NULL) return -1;
    if (m->pool) {
        hc_pool_release(m->pool);
        m->switches++;
    }
    m->pool = p;
    snprintf(m->host, sizeof m->host, "%s", host);
    m->port = port;
    return 0;
}

hc_smaster *hc_smaster_new(const hc_settings *node, const hc_sentinel_cfg *cfg, char *err, size_t errlen)
{
    hc_smaster *m = calloc(1, sizeof *m);
    if (m == NULL) goto oom;
    if (hc_settings_copy(&m->node, node) != 0) {
        free(m);
        goto oom;
    }
    if (cfg_copy(&m->cfg, cfg) != 0) {
        hc_settings_free(&m->node);
        free(m);
        goto oom;
    }
    if (discover(m, err, errlen) != 0) {
        hc_smaster_free(m);
        return NULL;
    }
    m->last_ok = hc_now();
    return m;
oom:
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void hc_smaster_free(hc_smaster *m)
{
    if (m == NULL) return;
    if (m->pool) hc_pool_release(m->pool);
    cfg_free(&m->cfg);
    hc_settings_free(&m->node);
    free(m);
}

hc_pool *hc_smaster_pool(hc_smaster *m)
{
    return m->pool;
}

void hc_smaster_check(hc_smaster *m)
{
    char err[HC_ERRLEN];
    double now = hc_now();
    if ((m->due || now < m->watch_until) && now >= m->next) {
        if (discover(m, err, sizeof err) == 0) m->next = now + WATCH_EVERY;
        else if (!m->unconfirmed) { /* a routine check failed, no call did: keep the master, ask later */
            m->due = 0;
            m->next = now + WATCH_EVERY;
        }
    }
}

static void failed(hc_smaster *m)
{
    double soon = hc_now() + RETRY_EVERY;
    m->due = 1;
    if (!m->unconfirmed) snprintf(m->last_err, sizeof m->last_err, "not asked yet");
    m->unconfirmed = 1;
    if (m->next > soon) m->next = soon; /* a failure is looked into within 100 ms */
    m->watch_until = hc_now() + WATCH_FOR;
}

static int readonly(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0;
}

int hc_smaster_exec(hc_smaster *m, const char *req, size_t len, int n, const hc_cmd *cmds,
                    redisReply **replies, char *err, double timeout)
{
    int i, ro = 0, others = 0;
    hc_pool *before;
    /* after a quiet second, the pool's connections may all have died with
     * a master that was replaced and restarted meanwhile: reconnecting to
     * its address would write to a node Sentinel is about to demote */
    if (hc_now() - m->last_ok >= QUIET) m->due = 1;
    hc_smaster_check(m);
    if (m->unconfirmed) { /* after a failure, an address is used again only once the sentinels
                             named it and its ROLE said master: a restarted old master would
                             take writes for seconds before Sentinel demotes it */
        snprintf(err, HC_ERRLEN, "no master confirmed by the sentinels: %.110s", m->last_err);
        return -1;
    }
    if (hc_node_exec(m->pool, req, len, n, cmds, replies, err, timeout) != 0) {
        failed(m);
        hc_smaster_check(m); /* the next call goes to the new master, if any */
        return -1;
    }
    m->last_ok = hc_now();
    for (i = 0; i < n; i++) {
        if (readonly(replies[i])) ro++;
        else if (!hc_cmd_idempotent(&cmds[i])) others++;
    }
    if (ro == 0) return 0;
    failed(m);
    before = m->pool;
    hc_smaster_check(m);
    if (m->pool == before || others > 0) return 0; /* nowhere else to go, or something ran */
    /* nothing was written on the demoted node: all of it again on the new master */
    for (i = 0; i < n; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    if (hc_node_exec(m->pool, req, len, n, cmds, replies, err, timeout) != 0) {
        failed(m);
        return -1;
    }
    return 0;
}

void hc_smaster_counters(hc_smaster *m, unsigned long long *switches, unsigned long long *discoveries)
{
    *switches = m->switches;
    *discoveries = m->discoveries;
}
