/* hc_cluster.c -- the Redis Cluster router (see hc_cluster.h). */
#include "hc_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hc_node.h"
#include "hc_proto.h"
#include "hc_slot.h"
#include "hc_time.h"

#define NO_NODE 0xffff
#define MAX_REDIRECTS 16
#define RELOAD_EVERY 0.1 /* s: at most one map load per 100 ms after errors */

typedef struct cnode {
    char *host;
    int port;
    hc_pool *pool; /* NULL: not in the map any more */
    int master;
    char addr[300];
} cnode;

struct hc_cluster {
    hc_settings base;
    int nseeds;
    char **seed_host;
    int *seed_port;
    cnode *nodes;
    int nnodes, capnodes;
    unsigned short map[HC_SLOTS];
    int *masters, nmasters;
    int reload;          /* load the map again before the next call */
    double loaded_at;    /* when it was last loaded */
    unsigned long long refreshes, moved, ask, retries;
};

/* ---- nodes ---------------------------------------------------------------- */

static int node_find(hc_cluster *c, const char *host, int port)
{
    int i;
    for (i = 0; i < c->nnodes; i++)
        if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0) return i;
    return -1;
}

/* The node's index, added (with its pool) if new or dropped; -1 + err. */
static int node_get(hc_cluster *c, const char *host, int port, char *err)
{
    int i = node_find(c, host, port);
    hc_settings s;
    cnode *nd;
    if (i >= 0 && c->nodes[i].pool) return i;
    if (i < 0) {
        if (c->nnodes == c->capnodes) {
            int cap = c->capnodes ? c->capnodes * 2 : 8;
            cnode *nn = realloc(c->nodes, (size_t)cap * sizeof *nn);
            if (nn == NULL) goto oom;
            c->nodes = nn;
            c->capnodes = cap;
        }
        if (c->nnodes >= NO_NODE) goto oom;
        nd = &c->nodes[c->nnodes];
        memset(nd, 0, sizeof *nd);
        nd->host = strdup(host);
        if (nd->host == NULL) goto oom;
        nd->port = port;
        snprintf(nd->addr, sizeof nd->addr, "%s:%d", host, port);
        i = c->nnodes++;
    }
    nd = &c->nodes[i];
    s = c->base;
    s.host = nd->host;
    s.port = port;
    s.path = NULL;
    nd->pool = hc_pool_acquire(&s, err, HC_ERRLEN);
    return nd->pool ? i : -1;
oom:
    snprintf(err, HC_ERRLEN, "out of memory");
    return -1;
}

/* ---- the slot map ----------------------------------------------------------- */

static int is_int(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_INTEGER;
}

/* One CLUSTER SLOTS reply into the map; asked_host: the node asked (a
 * node that does not know its own address answers ""). 0, or -1 + err. */
static int apply_slots(hc_cluster *c, const redisReply *r, const char *asked_host, char *err)
{
    unsigned short map[HC_SLOTS];
    char *seen = NULL;
    size_t i;
    int j, nm = 0, *masters;
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, HC_ERRLEN, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "bad CLUSTER SLOTS reply");
        return -1;
    }
    for (j = 0; j < HC_SLOTS; j++) map[j] = NO_NODE;
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        char host[256];
        int idx;
        long long a, b, s;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !is_int(e->element[0]) ||
            !is_int(e->element[1]) || e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 || !is_int(e->element[2]->element[1]) ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING)
            continue;
        m = e->element[2];
        a = e->element[0]->integer;
        b = e->element[1]->integer;
        if (a < 0 || b >= HC_SLOTS || a > b) continue;
        snprintf(host, sizeof host, "%s", m->element[0]->len ? m->element[0]->str : asked_host);
        idx = node_get(c, host, (int)m->element[1]->integer, err);
        if (idx < 0) return -1;
        for (s = a; s <= b; s++) map[s] = (unsigned short)idx;
    }
    seen = calloc((size_t)c->nnodes + 1, 1);
    masters = malloc(((size_t)c->nnodes + 1) * sizeof *masters);
    if (seen == NULL || masters == NULL) {
        free(seen);
        free(masters);
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    for (j = 0; j < HC_SLOTS; j++)
        if (map[j] != NO_NODE && !seen[map[j]]) {
            seen[map[j]] = 1;
            masters[nm++] = map[j];
        }
    if (nm == 0) {
        free(seen);
        free(masters);
        snprintf(err, HC_ERRLEN, "the cluster serves no slot");
        return -1;
    }
    for (j = 0; j < c->nnodes; j++) { /* nodes out of the map lose their pool */
        c->nodes[j].master = seen[j];
        if (!seen[j] && c->nodes[j].pool) {
            hc_pool_release(c->nodes[j].pool);
            c->nodes[j].pool = NULL;
        }
    }
    free(seen);
    free(c->masters);
    c->masters = masters;
    c->nmasters = nm;
    memcpy(c->map, map, sizeof map);
    return 0;
}

static int ask_slots(hc_cluster *c, const char *host, int port, char *err)
{
    static const char *argv[2] = {"CLUSTER", "SLOTS"};
    static const size_t lens[2] = {7, 5};
    hc_cmd cmd;
    redisReply *r;
    char *req;
    long len;
    int rc, idx = node_get(c, host, port, err);
    if (idx < 0) return -1;
    cmd.argc = 2;
    cmd.argv = argv;
    cmd.argvlen = lens;
    len = hc_proto_format(1, &cmd, &req);
    if (len < 0) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    rc = hc_node_exec(c->nodes[idx].pool, req, (size_t)len, 1, &cmd, &r, err, 0);
    hc_proto_free(req);
    if (rc != 0) return -1;
    rc = apply_slots(c, r, host, err);
    freeReplyObject(r);
    return rc;
}

/* Loads the map from a master, another known node, or a seed: the first
 * that answers. 0, or -1 + err (the map is left as it was). */
static int load_map(hc_cluster *c, char *err)
{
    int i, pass;
    char host[256];
    c->loaded_at = hc_now();
    c->refreshes++;
    for (pass = 0; pass < 3; pass++) {
        int n = pass == 0 ? c->nmasters : pass == 1 ? c->nnodes : c->nseeds;
        for (i = 0; i < n; i++) {
            int port;
            if (pass == 0) {
                snprintf(host, sizeof host, "%s", c->nodes[c->masters[i]].host);
                port = c->nodes[c->masters[i]].port;
            } else if (pass == 1) {
                if (c->nodes[i].master) continue;
                snprintf(host, sizeof host, "%s", c->nodes[i].host);
                port = c->nodes[i].port;
            } else {
                snprintf(host, sizeof host, "%s", c->seed_host[i]);
                port = c->seed_port[i];
            }
            if (ask_slots(c, host, port, err) == 0) {
                c->reload = 0;
                return 0;
            }
        }
    }
    c->reload = 1;
    return -1;
}

static void maybe_reload(hc_cluster *c)
{
    char err[HC_ERRLEN];
    if (c->reload && hc_now() - c->loaded_at >= RELOAD_EVERY) (void)load_map(c, err);
}

/* ---- life ------------------------------------------------------------------- */

hc_cluster *hc_cluster_new(const hc_settings *base, int nseeds, const char *const *hosts, const int *ports,
                           char *err, size_t errlen)
{
    hc_cluster *c = calloc(1, sizeof *c);
    char e[HC_ERRLEN];
    int i;
    if (c == NULL || hc_settings_copy(&c->base, base) != 0) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->seed_host = calloc((size_t)nseeds, sizeof *c->seed_host);
    c->seed_port = calloc((size_t)nseeds, sizeof *c->seed_port);
    if (c->seed_host == NULL || c->seed_port == NULL) goto oom;
    c->nseeds = nseeds;
    for (i = 0; i < nseeds; i++) {
        c->seed_host[i] = strdup(hosts[i]);
        if (c->seed_host[i] == NULL) goto oom;
        c->seed_port[i] = ports[i];
    }
    for (i = 0; i < HC_SLOTS; i++) c->map[i] = NO_NODE;
    if (load_map(c, e) != 0) {
        snprintf(err, errlen, "no cluster seed answered: %s", e);
        hc_cluster_free(c);
        return NULL;
    }
    return c;
oom:
    hc_cluster_free(c);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void hc_cluster_free(hc_cluster *c)
{
    int i;
    if (c == NULL) return;
    for (i = 0; i < c->nnodes; i++) {
        if (c->nodes[i].pool) hc_pool_release(c->nodes[i].pool);
        free(c->nodes[i].host);
    }
    free(c->nodes);
    for (i = 0; i < c->nseeds && c->seed_host; i++) free(c->seed_host[i]);
    free(c->seed_host);
    free(c->seed_port);
    free(c->masters);
    hc_settings_free(&c->base);
    free(c);
}

/* ---- routing ------------------------------------------------------------------ */

/* The node of a slot, the map loaded once more if nobody serves it; -1. */
static int slot_node_ex(hc_cluster *c, int slot, int may_load, char *err)
{
    if (c->map[slot] == NO_NODE || c->nodes[c->map[slot]].pool == NULL) {
        char e[HC_ERRLEN];
        /* not while a call's parts are built: a load may drop the pool of a
         * node a part already holds */
        if (may_load && hc_now() - c->loaded_at >= RELOAD_EVERY) (void)load_map(c, e);
        if (c->map[slot] == NO_NODE || c->nodes[c->map[slot]].pool == NULL) {
            snprintf(err, HC_ERRLEN, "CLUSTERDOWN hash slot %d is not served", slot);
            c->reload = 1;
            return -1;
        }
    }
    return c->map[slot];
}

static int slot_node(hc_cluster *c, int slot, char *err)
{
    return slot_node_ex(c, slot, 1, err);
}

/* A part of one caller's command, sent to one node. */
typedef struct part {
    hc_cmd cmd;
    int orig;     /* the caller's command */
    int node;
    int slot;     /* -1: not redirectable (pinned, any node, every master) */
    int *pos;     /* EACH split: each key's index among the command's keys */
    int nkeys;
    const char **argv; /* owned when split */
    size_t *lens;
    redisReply *reply;
} part;

enum { R_ONE, R_EACH, R_BCAST };

static void sleep_for(double s)
{
    struct timespec ts = hc_timespec(s);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Runs one part alone on node (with ASKING first when asking). */
static int run_alone(hc_cluster *c, part *pt, int node, int asking, double timeout, char *err)
{
    static const char *askv[1] = {"ASKING"};
    static const size_t askl[1] = {6};
    hc_cmd cmds[2];
    redisReply *r[2] = {NULL, NULL};
    char *req;
    long len;
    int n = 0, rc;
    if (asking) {
        cmds[n].argc = 1;
        cmds[n].argv = askv;
        cmds[n].argvlen = askl;
        n++;
    }
    cmds[n++] = pt->cmd;
    len = hc_proto_format(n, cmds, &req);
    if (len < 0) {
        snprintf(err, HC_ERRLEN, "out of memory");
        return -1;
    }
    rc = hc_node_exec(c->nodes[node].pool, req, (size_t)len, n, cmds, r, err, timeout);
    hc_proto_free(req);
    if (rc != 0) {
        c->reload = 1;
        return -1;
    }
    if (asking) freeReplyObject(r[0]);
    pt->reply = r[n - 1];
    pt->node = node;
    return 0;
}

/* "MOVED 3999 127.0.0.1:6381": slot, host, port; 0 or -1. */
static int parse_redirect(const char *s, int *slot, char *host, size_t hostlen, int *port)
{
    const char *sp = strchr(s, ' '), *addr, *colon;
    size_t hl;
    if (sp == NULL) return -1;
    *slot = atoi(sp + 1);
    addr = strchr(sp + 1, ' ');
    if (addr == NULL) return -1;
    addr++;
    colon = strrchr(addr, ':');
    if (colon == NULL || *slot < 0 || *slot >= HC_SLOTS) return -1;
    hl = (size_t)(colon - addr);
    if (hl >= hostlen) return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    *port = atoi(colon + 1);
    return 0;
}

static int starts(const redisReply *r, const char *word)
{
    size_t n = strlen(word);
    return r->type == REDIS_REPLY_ERROR && r->len >= n && strncmp(r->str, word, n) == 0 &&
           (r->len == n || r->str[n] == ' ');
}

/* Follows MOVED / ASK / TRYAGAIN / CLUSTERDOWN for a part whose reply
 * says so, until an answer, the redirection bound or the deadline. */
static int follow(hc_cluster *c, part *pt, double deadline, double timeout, char *err)
{
    double backoff = 0.002;
    int hops = 0; /* MOVED and ASK; TRYAGAIN and CLUSTERDOWN are bounded by the deadline */
    while (pt->slot >= 0) {
        redisReply *r = pt->reply;
        char host[256];
        int slot, port, node, asking = 0;
        if (r == NULL || r->type != REDIS_REPLY_ERROR) return 0;
        if (starts(r, "MOVED") || starts(r, "ASK")) {
            if (++hops > MAX_REDIRECTS) return 0; /* a loop: the caller gets the redirection */
            asking = starts(r, "ASK");
            if (parse_redirect(r->str, &slot, host, sizeof host, &port) != 0) return 0;
            node = node_get(c, host, port, err);
            if (node < 0) return -1;
            if (asking) c->ask++;
            else {
                c->moved++;
                c->map[slot] = (unsigned short)node;
                c->reload = 1; /* one slot moved: others probably did too */
            }
        } else if (starts(r, "TRYAGAIN") || starts(r, "CLUSTERDOWN")) {
            if (hc_now() + backoff > deadline) return 0; /* the caller gets the error reply */
            sleep_for(backoff);
            backoff = backoff * 2 > 0.1 ? 0.1 : backoff * 2;
            hops = 0; /* ASK, TRYAGAIN, ASK, ...: a migration in progress, bounded by the deadline */
            c->retries++;
            if (starts(r, "CLUSTERDOWN")) (void)load_map(c, err);
            node = slot_node(c, pt->slot, err);
            if (node < 0) return -1;
        } else {
            return 0; /* the caller's error */
        }
        freeReplyObject(r);
        pt->reply = NULL;
        if (run_alone(c, pt, node, asking, timeout, err) != 0) return -1;
    }
    return 0;
}

/* ---- merging ------------------------------------------------------------------ */

/* The reply of a split command from its parts' replies (the parts' are
 * consumed): an error of a part, else an MGET's values in key order or
 * the integers added. NULL when out of memory. */
static redisReply *merge_each(const hc_cmd *cmd, part *parts, int np, int nkeys)
{
    int i, j, mget = cmd->argvlen[0] == 4 && (cmd->argv[0][0] == 'M' || cmd->argv[0][0] == 'm');
    redisReply *out;
    for (i = 0; i < np; i++) /* an error (or an unexpected shape) is the reply */
        if (parts[i].reply->type == REDIS_REPLY_ERROR ||
            (mget ? parts[i].reply->type != REDIS_REPLY_ARRAY || (int)parts[i].reply->elements != parts[i].nkeys
                  : parts[i].reply->type != REDIS_REPLY_INTEGER)) {
            out = parts[i].reply;
            parts[i].reply = NULL;
            return out;
        }
    if (!mget) {
        out = parts[0].reply;
        parts[0].reply = NULL;
        for (i = 1; i < np; i++) out->integer += parts[i].reply->integer;
        return out;
    }
    out = calloc(1, sizeof *out);
    if (out == NULL) return NULL;
    out->type = REDIS_REPLY_ARRAY;
    out->element = calloc((size_t)nkeys, sizeof *out->element);
    if (out->element == NULL) {
        free(out);
        return NULL;
    }
    out->elements = (size_t)nkeys;
    for (i = 0; i < np; i++) {
        redisReply *r = parts[i].reply;
        for (j = 0; j < parts[i].nkeys; j++) {
            out->element[parts[i].pos[j]] = r->element[j];
            r->element[j] = NULL;
        }
        r->elements = 0; /* its elements moved: free only the shell */
    }
    return out;
}

/* ---- exec --------------------------------------------------------------------- */

static void free_parts(part *parts, int np)
{
    int i;
    for (i = 0; i < np; i++) {
        if (parts[i].reply) freeReplyObject(parts[i].reply);
        free(parts[i].argv);
        free(parts[i].lens);
        free(parts[i].pos);
    }
    free(parts);
}

/* Splits an EACH command into one part per slot, appended at parts[*np]. */
static int split_each(hc_cluster *c, const hc_cmd *cmd, int orig, int first, part *parts, int *np, int *slot_part,
                      char *err)
{
    int nkeys = cmd->argc - first, k, start = *np, i;
    for (k = 0; k < nkeys; k++) { /* count the keys of each slot */
        int slot = hc_slot(cmd->argv[first + k], cmd->argvlen[first + k]);
        if (slot_part[slot] < 0) {
            int node = slot_node_ex(c, slot, 0, err);
            if (node < 0) goto undo;
            slot_part[slot] = *np;
            memset(&parts[*np], 0, sizeof parts[*np]);
            parts[*np].orig = orig;
            parts[*np].node = node;
            parts[*np].slot = slot;
            (*np)++;
        }
        parts[slot_part[slot]].nkeys++;
    }
    for (i = start; i < *np; i++) {
        part *pt = &parts[i];
        pt->argv = malloc(((size_t)pt->nkeys + (size_t)first) * sizeof *pt->argv);
        pt->lens = malloc(((size_t)pt->nkeys + (size_t)first) * sizeof *pt->lens);
        pt->pos = malloc((size_t)pt->nkeys * sizeof *pt->pos);
        if (pt->argv == NULL || pt->lens == NULL || pt->pos == NULL) {
            snprintf(err, HC_ERRLEN, "out of memory");
            goto undo;
        }
        memcpy(pt->argv, cmd->argv, (size_t)first * sizeof *pt->argv);
        memcpy(pt->lens, cmd->argvlen, (size_t)first * sizeof *pt->lens);
        pt->cmd.argc = first;
        pt->cmd.argv = pt->argv;
        pt->cmd.argvlen = pt->lens;
        pt->nkeys = 0;
    }
    for (k = 0; k < nkeys; k++) {
        int slot = hc_slot(cmd->argv[first + k], cmd->argvlen[first + k]);
        part *pt = &parts[slot_part[slot]];
        pt->argv[pt->cmd.argc] = cmd->argv[first + k];
        pt->lens[pt->cmd.argc] = cmd->argvlen[first + k];
        pt->cmd.argc++;
        pt->pos[pt->nkeys++] = k;
    }
    for (k = 0; k < nkeys; k++) slot_part[hc_slot(cmd->argv[first + k], cmd->argvlen[first + k])] = -1;
    return 0;
undo:
    for (k = 0; k < nkeys; k++) slot_part[hc_slot(cmd->argv[first + k], cmd->argvlen[first + k])] = -1;
    return -1;
}

static int is_script(const hc_cmd *cmd)
{
    return cmd->argvlen[0] == 6 && strncasecmp(cmd->argv[0], "SCRIPT", 6) == 0;
}

/* Sends every part, grouped by node, one request per node, all written
 * before any is read. 0, or -1 with the first node's error. */
static int send_all(hc_cluster *c, part *parts, int np, double timeout, char *err)
{
    hc_flight *fl = calloc((size_t)np, sizeof *fl);
    hc_cmd *cmds = malloc((size_t)np * sizeof *cmds);
    int *order = malloc((size_t)np * sizeof *order);
    char **reqs = calloc((size_t)np, sizeof *reqs);
    redisReply **rep = calloc((size_t)np, sizeof *rep);
    int nf = 0, i, j, k = 0, rc = 0, *flight_of = NULL;
    if (fl == NULL || cmds == NULL || order == NULL || reqs == NULL || rep == NULL) {
        snprintf(err, HC_ERRLEN, "out of memory");
        rc = -1;
        goto done;
    }
    /* parts grouped by node, in order: one flight per node; flights in
     * node order, so two threads borrow from the pools in the same order */
    flight_of = malloc((size_t)c->nnodes * sizeof *flight_of);
    if (flight_of == NULL) {
        snprintf(err, HC_ERRLEN, "out of memory");
        rc = -1;
        goto done;
    }
    for (j = 0; j < c->nnodes; j++) flight_of[j] = 0;
    for (i = 0; i < np; i++) flight_of[parts[i].node]++; /* parts per node */
    for (j = 0; j < c->nnodes; j++) {
        int cnt = flight_of[j];
        flight_of[j] = -1;
        if (cnt == 0) continue;
        fl[nf].p = c->nodes[j].pool;
        fl[nf].cmds = &cmds[k];
        fl[nf].timeout = timeout;
        fl[nf].n = 0;
        flight_of[j] = k; /* where its commands start */
        k += cnt;
        nf++;
    }
    for (i = 0; i < np; i++) {
        int at = flight_of[parts[i].node]++;
        order[at] = i;
        cmds[at] = parts[i].cmd;
    }
    for (i = 0; i < nf; i++) fl[i].n = (int)((i + 1 < nf ? fl[i + 1].cmds : cmds + k) - fl[i].cmds);
    for (i = 0; i < nf; i++)
        if (fl[i].p == NULL) { /* cannot happen: parts are built without loading the map */
            snprintf(err, HC_ERRLEN, "cluster node without a pool");
            rc = -1;
            goto done;
        }
    for (i = 0; i < nf; i++) {
        long len = hc_proto_format(fl[i].n, fl[i].cmds, &reqs[i]);
        if (len < 0) {
            snprintf(err, HC_ERRLEN, "out of memory");
            rc = -1;
            goto done;
        }
        fl[i].req = reqs[i];
        fl[i].len = (size_t)len;
    }
    for (i = 0; i < nf; i++) hc_node_send(&fl[i]);
    for (i = 0, k = 0; i < nf; k += fl[i].n, i++) {
        hc_node_recv(&fl[i], &rep[k]);
        if (fl[i].rc != 0) {
            if (rc == 0) snprintf(err, HC_ERRLEN, "%s", fl[i].err);
            rc = -1;
            c->reload = 1; /* a failed node: who serves its slots may have changed */
            continue;
        }
        for (j = 0; j < fl[i].n; j++) {
            parts[order[k + j]].reply = rep[k + j];
            rep[k + j] = NULL;
        }
    }
done:
    for (i = 0; reqs && i < nf; i++)
        if (reqs[i]) hc_proto_free(reqs[i]);
    free(fl);
    free(cmds);
    free(order);
    free(reqs);
    free(rep);
    free(flight_of);
    return rc;
}

/* One command to one slot: the common case, without allocation. */
static int exec_one(hc_cluster *c, const hc_cmd *cmd, int slot, redisReply **reply, char *err, double timeout)
{
    part pt;
    double deadline = hc_now() + (timeout > 0 ? timeout : c->base.timeout);
    int node = slot_node(c, slot, err);
    if (node < 0) return -1;
    memset(&pt, 0, sizeof pt);
    pt.cmd = *cmd;
    pt.slot = slot;
    if (run_alone(c, &pt, node, 0, timeout, err) != 0) return -1;
    if (pt.reply->type == REDIS_REPLY_ERROR && follow(c, &pt, deadline, timeout, err) != 0) {
        if (pt.reply) freeReplyObject(pt.reply);
        return -1;
    }
    *reply = pt.reply;
    return 0;
}

int hc_cluster_exec(hc_cluster *c, int n, const hc_cmd *cmds, int pin, redisReply **replies, char *err,
                    double timeout)
{
    double deadline = hc_now() + (timeout > 0 ? timeout : c->base.timeout);
    part *parts = NULL;
    int *slot_part = NULL, *kind = NULL;
    int i, np = 0, cap = 0, rc = -1;

    maybe_reload(c);
    if (pin >= c->nmasters) {
        snprintf(err, HC_ERRLEN, "no such node");
        return -1;
    }
    if (n == 1 && pin < 0) { /* the hot path */
        int first, k = hc_cmd_keys(&cmds[0], &first);
        if (k == HC_KEYS_ONE || (k == HC_KEYS_EACH && cmds[0].argc == first + 1))
            return exec_one(c, &cmds[0], hc_slot(cmds[0].argv[first], cmds[0].argvlen[first]), replies, err,
                            timeout);
    }
    kind = malloc((size_t)n * sizeof *kind);
    if (kind == NULL) goto oom;
    for (i = 0; i < n; i++) { /* how many parts at most */
        int first, k = pin >= 0 ? HC_KEYS_ONE : hc_cmd_keys(&cmds[i], &first);
        if (pin < 0 && is_script(&cmds[i])) {
            kind[i] = R_BCAST;
            cap += c->nmasters;
        } else if (k == HC_KEYS_NONE) {
            snprintf(err, HC_ERRLEN, "%.*s has no key: on a cluster it would run on an arbitrary node",
                     (int)(cmds[i].argvlen[0] > 40 ? 40 : cmds[i].argvlen[0]), cmds[i].argv[0]);
            goto out;
        } else if (k == HC_KEYS_EACH) {
            kind[i] = R_EACH;
            cap += cmds[i].argc - first;
        } else {
            kind[i] = R_ONE;
            cap += 1;
        }
    }
    parts = calloc((size_t)cap, sizeof *parts);
    slot_part = malloc(HC_SLOTS * sizeof *slot_part);
    if (parts == NULL || slot_part == NULL) goto oom;
    for (i = 0; i < HC_SLOTS; i++) slot_part[i] = -1;
    for (i = 0; i < n; i++) {
        int first, k, j;
        if (kind[i] == R_BCAST) {
            for (j = 0; j < c->nmasters; j++, np++) {
                parts[np].cmd = cmds[i];
                parts[np].orig = i;
                parts[np].node = c->masters[j];
                parts[np].slot = -1;
            }
            continue;
        }
        k = pin >= 0 ? HC_KEYS_ONE : hc_cmd_keys(&cmds[i], &first);
        if (kind[i] == R_EACH) {
            if (split_each(c, &cmds[i], i, first, parts, &np, slot_part, err) != 0) goto out;
            continue;
        }
        parts[np].cmd = cmds[i];
        parts[np].orig = i;
        if (pin >= 0) {
            parts[np].node = c->masters[pin];
            parts[np].slot = -1;
        } else if (k == HC_KEYS_ANY) {
            parts[np].node = c->masters[0];
            parts[np].slot = -1;
        } else {
            parts[np].slot = hc_slot(cmds[i].argv[first], cmds[i].argvlen[first]);
            parts[np].node = slot_node_ex(c, parts[np].slot, 0, err);
            if (parts[np].node < 0) goto out;
        }
        np++;
    }
    if (send_all(c, parts, np, timeout, err) != 0) goto out;
    for (i = 0; i < np; i++)
        if (parts[i].reply->type == REDIS_REPLY_ERROR && follow(c, &parts[i], deadline, timeout, err) != 0)
            goto out;
    /* merge, in the caller's order */
    for (i = 0; i < n; i++) replies[i] = NULL;
    for (i = 0; i < np;) {
        int o = parts[i].orig, j = i;
        while (j < np && parts[j].orig == o) j++;
        if (kind[o] == R_ONE) {
            replies[o] = parts[i].reply;
            parts[i].reply = NULL;
        } else if (kind[o] == R_BCAST) { /* the first error, else the first reply */
            int pick = i, m;
            for (m = i; m < j; m++)
                if (parts[m].reply->type == REDIS_REPLY_ERROR) {
                    pick = m;
                    break;
                }
            replies[o] = parts[pick].reply;
            parts[pick].reply = NULL;
        } else {
            int first;
            hc_cmd_keys(&cmds[o], &first);
            replies[o] = merge_each(&cmds[o], &parts[i], j - i, cmds[o].argc - first);
            if (replies[o] == NULL) {
                int m;
                for (m = 0; m < o; m++) freeReplyObject(replies[m]);
                goto oom;
            }
        }
        i = j;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, HC_ERRLEN, "out of memory");
out:
    free_parts(parts, np);
    free(slot_part);
    free(kind);
    return rc;
}

/* ---- for the client ------------------------------------------------------------- */

int hc_cluster_masters(hc_cluster *c)
{
    maybe_reload(c);
    return c->nmasters;
}

const char *hc_cluster_master_addr(hc_cluster *c, int i)
{
    return i >= 0 && i < c->nmasters ? c->nodes[c->masters[i]].addr : NULL;
}

hc_pool *hc_cluster_pool_for(hc_cluster *c, const char *key, size_t len, char *err)
{
    int node;
    maybe_reload(c);
    node = slot_node(c, hc_slot(key, len), err);
    return node < 0 ? NULL : c->nodes[node].pool;
}

void hc_cluster_stats(hc_cluster *c, hc_pool_stats *st, int *nodes)
{
    int i;
    memset(st, 0, sizeof *st);
    *nodes = 0;
    for (i = 0; i < c->nnodes; i++) {
        hc_pool_stats s;
        if (c->nodes[i].pool == NULL) continue;
        hc_pool_get_stats(c->nodes[i].pool, &s);
        (*nodes)++;
        st->size += s.size;
        st->in_use += s.in_use;
        st->idle += s.idle;
        st->connecting += s.connecting;
        st->refs += s.refs;
        st->created += s.created;
        st->closed += s.closed;
        st->errors += s.errors;
        st->waits += s.waits;
        st->exhausted += s.exhausted;
        st->health_checks += s.health_checks;
        if (s.breaker == HC_BREAKER_OPEN) st->breaker = HC_BREAKER_OPEN;
        st->breaker_opens += s.breaker_opens;
        st->breaker_probes += s.breaker_probes;
    }
}

void hc_cluster_counters(hc_cluster *c, unsigned long long *refreshes, unsigned long long *moved,
                         unsigned long long *ask, unsigned long long *retries)
{
    *refreshes = c->refreshes;
    *moved = c->moved;
    *ask = c->ask;
    *retries = c->retries;
}
