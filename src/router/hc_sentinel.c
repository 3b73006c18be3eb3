/* hc_sentinel.c -- router: the master named by Redis Sentinel (see hc_sentinel.h). */
#include "hc_sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs one command given as NUL-terminated strings. 0 with *r (the caller
 * frees it), or -1 with err (the connection is broken). */
static int run(hc_conn *c, int argc, const char **argv, redisReply **r, char *err, size_t errlen)
{
    size_t lens[4];
    hc_cmd cmd;
    int i;
    for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    cmd.argc = argc;
    cmd.argv = argv;
    cmd.argvlen = lens;
    return hc_conn_exec(c, 1, &cmd, r, err, errlen);
}

/* A port in a reply string: 1..65535, or -1. */
static int parse_port(const redisReply *e)
{
    char *end;
    long v;
    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 5) return -1;
    v = strtol(e->str, &end, 10);
    if (end != e->str + e->len || v < 1 || v > 65535) return -1;
    return (int)v;
}

enum { ASK_ERROR = -1, ASK_UNKNOWN = 0, ASK_FOUND = 1 };

/* Asks one sentinel. ASK_FOUND with host/port, ASK_UNKNOWN (nil), or
 * ASK_ERROR with why (without the sentinel's address). */
static int ask(const hc_sentinel_cfg *cfg, int i, const hc_settings *node, hc_tls_ctx *tls,
               char *host, size_t hostlen, int *port, char *why, size_t whylen)
{
    hc_settings s = *node;
    hc_conn *c;
    redisReply *r = NULL;
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", NULL};
    int res = ASK_ERROR;

    s.host = cfg->hosts[i];
    s.port = cfg->ports[i];
    s.path = NULL;
    s.db = 0;
    s.username = cfg->username;
    s.password = cfg->password;
    s.memory = 0;
    if ((c = hc_conn_open(&s, tls, why, whylen)) == NULL) return ASK_ERROR;
    argv[2] = cfg->master_name;
    if (run(c, 3, argv, &r, why, whylen) != 0) {
        hc_conn_close(c);
        return ASK_ERROR;
    }
    hc_conn_close(c);
    if (r->type == REDIS_REPLY_NIL) {
        res = ASK_UNKNOWN;
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s", r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
               (*port = parse_port(r->element[1])) < 0) {
        snprintf(why, whylen, "unexpected reply to sentinel get-master-addr-by-name");
    } else if (r->element[0]->len >= hostlen || memchr(r->element[0]->str, '\0', r->element[0]->len)) {
        snprintf(why, whylen, "master host name too long");
    } else {
        memcpy(host, r->element[0]->str, r->element[0]->len);
        host[r->element[0]->len] = '\0';
        res = ASK_FOUND;
    }
    freeReplyObject(r);
    return res;
}

/* Connects to the master named by the sentinels and checks its ROLE. */
static int check_master(const hc_settings *node, hc_tls_ctx *tls, char *host, int port,
                        char *err, size_t errlen)
{
    hc_settings s = *node;
    hc_conn *c;
    redisReply *r = NULL;
    const char *argv[1] = {"ROLE"};
    char why[HC_ERRLEN];
    int ok = -1;

    s.host = host;
    s.port = port;
    s.path = NULL;
    s.memory = 0;
    if ((c = hc_conn_open(&s, tls, why, sizeof why)) == NULL) {
        snprintf(err, errlen, "master %s:%d: %s", host, port, why);
        return -1;
    }
    if (run(c, 1, argv, &r, why, sizeof why) != 0) {
        hc_conn_close(c);
        snprintf(err, errlen, "master %s:%d: %s", host, port, why);
        return -1;
    }
    hc_conn_close(c);
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "master %s:%d: role failed: %s", host, port, r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
               (r->element[0]->type != REDIS_REPLY_STRING && r->element[0]->type != REDIS_REPLY_STATUS)) {
        snprintf(err, errlen, "master %s:%d: unexpected reply to role", host, port);
    } else if (strcmp(r->element[0]->str, "master") != 0) {
        snprintf(err, errlen, "master %s:%d reported by the sentinels is not a master (role %.*s)",
                 host, port, (int)(r->element[0]->len > 32 ? 32 : r->element[0]->len),
                 r->element[0]->str);
    } else {
        ok = 0;
    }
    freeReplyObject(r);
    return ok;
}

int hc_sentinel_discover(const hc_sentinel_cfg *cfg, const hc_settings *node, int *first,
                         char *host, size_t hostlen, int *port, char *err, size_t errlen)
{
    hc_tls_ctx *tls = NULL;
    char why[HC_ERRLEN], last[HC_ERRLEN + 320];
    int k, start = 0, unknown = 0, found = -1, rc;

    if (cfg->n < 1 || cfg->master_name == NULL || hostlen < 2) {
        snprintf(err, errlen, "no sentinel answered: no sentinels");
        return -1;
    }
    if (first && *first > 0 && *first < cfg->n) start = *first;
    if (node->tls) {
        hc_tls_opts o;
        o.ca_file = node->tls_ca_file;
        o.ca_path = node->tls_ca_path;
        o.cert_file = node->tls_cert_file;
        o.key_file = node->tls_key_file;
        o.server_name = node->tls_server_name;
        o.verify = node->tls_verify;
        if ((tls = hc_tls_ctx_new(&o, err, errlen)) == NULL) return -1;
    }
    snprintf(last, sizeof last, "no reply");
    for (k = 0; k < cfg->n && found < 0; k++) {
        int i = (start + k) % cfg->n;
        why[0] = '\0';
        switch (ask(cfg, i, node, tls, host, hostlen, port, why, sizeof why)) {
        case ASK_FOUND: found = i; break;
        case ASK_UNKNOWN: unknown = 1; break;
        default:
            snprintf(last, sizeof last, strchr(cfg->hosts[i], ':') ? "sentinel [%s]:%d: %s" : "sentinel %s:%d: %s",
                     cfg->hosts[i], cfg->ports[i], why);
        }
    }
    if (found < 0) {
        if (unknown)
            snprintf(err, errlen, "sentinels do not know master '%s'", cfg->master_name);
        else
            snprintf(err, errlen, "no sentinel answered: %s", last);
        hc_tls_ctx_free(tls);
        return -1;
    }
    if (first) *first = found;
    rc = check_master(node, tls, host, *port, err, errlen);
    hc_tls_ctx_free(tls);
    return rc;
}
