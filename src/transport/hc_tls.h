/*
 * hc_tls.h -- transport: TLS on OpenSSL. A context holds what every
 * connection of one pool shares (trusted CAs, the client certificate, the
 * verification mode); a session is one TLS connection over a descriptor
 * that hc_sock opened.
 *
 * Contract:
 *  - verification of the server's certificate chain and of its name (DNS
 *    name or IP address) is on unless the settings say verify = 0;
 *  - the handshake obeys the connect deadline (non-blocking, polled);
 *  - a session is freed without a close_notify and without shutdown(2):
 *    a forked child that drops its copy never writes to the parent's
 *    session;
 *  - messages are lower-case, start with "tls: " (or are "timeout",
 *    "connection closed", ...), and never contain key material.
 */
#ifndef HC_TLS_H
#define HC_TLS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct hc_tls_opts {
    const char *ca_file, *ca_path;    /* NULL, NULL: the system's default CAs */
    const char *cert_file, *key_file; /* client certificate (mutual TLS)      */
    const char *server_name;          /* name checked and sent as SNI          */
    int verify;                       /* 1: chain and name checked             */
} hc_tls_opts;

typedef struct hc_tls_ctx hc_tls_ctx;
typedef struct hc_tls hc_tls;

/* Loads CAs and the client certificate. NULL with err when a file cannot
 * be read or the key does not match the certificate. */
hc_tls_ctx *hc_tls_ctx_new(const hc_tls_opts *o, char *err, size_t errlen);
void hc_tls_ctx_free(hc_tls_ctx *x);

/* Runs the handshake on a non-blocking descriptor until the deadline.
 * name: the name to verify and send as SNI (a DNS name or an IP literal;
 * NULL: none). The session owns nothing of fd. NULL with err. */
hc_tls *hc_tls_connect(hc_tls_ctx *x, int fd, const char *name, double deadline,
                       char *err, size_t errlen);

/* Frees the session: no close_notify, nothing written. */
void hc_tls_free(hc_tls *t);

/* Blocking I/O on the session's descriptor (its SO_RCVTIMEO/SO_SNDTIMEO
 * bound each wait). n > 0 bytes, 0 on end of stream, -1 with err. */
ssize_t hc_tls_read(hc_tls *t, char *buf, size_t n, char *err, size_t errlen);
ssize_t hc_tls_write(hc_tls *t, const char *buf, size_t n, char *err, size_t errlen);

/* For an idle connection whose descriptor polled readable: consumes TLS
 * records that carry no application data (session tickets). 1 when the
 * session is still clean and open, 0 when data or end of stream waits. */
int hc_tls_idle_ok(hc_tls *t);

#endif
