/* hc_tls.c -- transport: TLS on OpenSSL (see hc_tls.h). */
#include "hc_tls.h"
#include "hc_sock.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct hc_tls_ctx {
    SSL_CTX *ctx;
    BIO_METHOD *bio;
    int verify;
};

struct hc_tls {
    SSL *ssl;
    int fd;
};

/* ---- a socket BIO that never raises SIGPIPE -------------------------------
 * OpenSSL's own socket BIO writes with write(2): a peer that closed the
 * connection would kill the process with SIGPIPE, and a library must not
 * change the process's signal disposition. This one sends with
 * MSG_NOSIGNAL. Each context owns its method table (freed with it, after
 * every session of its pool), so nothing outlives the module. */

static int bio_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int nosig_write(BIO *b, const char *buf, int n)
{
    ssize_t rc;
    BIO_clear_retry_flags(b);
    do rc = send(bio_fd(b), buf, (size_t)n, MSG_NOSIGNAL);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)rc;
}

static int nosig_read(BIO *b, char *buf, int n)
{
    ssize_t rc;
    BIO_clear_retry_flags(b);
    do rc = recv(bio_fd(b), buf, (size_t)n, 0);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return (int)rc;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b; (void)num; (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *nosig_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "hicache socket");
    if (m == NULL) return NULL;
    BIO_meth_set_write(m, nosig_write);
    BIO_meth_set_read(m, nosig_read);
    BIO_meth_set_ctrl(m, nosig_ctrl);
    BIO_meth_set_create(m, nosig_create);
    return m;
}

static BIO *nosig_bio(BIO_METHOD *m, int fd)
{
    BIO *b = BIO_new(m);
    if (b == NULL) return NULL;
    BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

static void lower(char *s)
{
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

/* "tls: <what>: <openssl's reason>", from the error queue (then cleared). */
static void ssl_err(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (reason) snprintf(err, errlen, "tls: %s: %s", what, reason);
    else snprintf(err, errlen, "tls: %s", what);
    lower(err);
    ERR_clear_error();
}

/* A file option that cannot be read: say which and why (paths are not
 * secrets; the contents never appear). 1 when it reported. */
static int unreadable(const char *what, const char *path, char *err, size_t errlen)
{
    char why[96];
    if (path == NULL || access(path, R_OK) == 0) return 0;
    snprintf(why, sizeof why, "%s", strerror(errno));
    lower(why); /* the reason, not the path: a path keeps its case */
    snprintf(err, errlen, "tls: cannot read %s %s: %s", what, path, why);
    ERR_clear_error();
    return 1;
}

hc_tls_ctx *hc_tls_ctx_new(const hc_tls_opts *o, char *err, size_t errlen)
{
    hc_tls_ctx *x = calloc(1, sizeof *x);
    if (x == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ERR_clear_error();
    x->ctx = SSL_CTX_new(TLS_client_method());
    if (x->ctx == NULL) {
        ssl_err("cannot create a context", err, errlen);
        free(x);
        return NULL;
    }
    x->verify = o->verify;
    if ((x->bio = nosig_method_new()) == NULL) {
        ssl_err("cannot create a context", err, errlen);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
    /* One read(2) per record batch instead of header and body apart. */
    SSL_CTX_set_read_ahead(x->ctx, 1);
    SSL_CTX_set_mode(x->ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_verify(x->ctx, o->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (o->ca_file || o->ca_path) {
        if (SSL_CTX_load_verify_locations(x->ctx, o->ca_file, o->ca_path) != 1) {
            if (unreadable("ca_file", o->ca_file, err, errlen) || unreadable("ca_path", o->ca_path, err, errlen))
                goto fail;
            ssl_err(o->ca_file ? "cannot load ca_file" : "cannot load ca_path", err, errlen);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(x->ctx) != 1) {
        ssl_err("cannot load the system's CA certificates", err, errlen);
        goto fail;
    }
    if (o->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(x->ctx, o->cert_file) != 1) {
            if (unreadable("cert_file", o->cert_file, err, errlen)) goto fail;
            ssl_err("cannot load cert_file", err, errlen);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(x->ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
            if (unreadable("key_file", o->key_file, err, errlen)) goto fail;
            ssl_err("cannot load key_file", err, errlen);
            goto fail;
        }
        if (SSL_CTX_check_private_key(x->ctx) != 1) {
            ssl_err("key_file does not match cert_file", err, errlen);
            goto fail;
        }
    }
    return x;
fail:
    SSL_CTX_free(x->ctx);
    if (x->bio) BIO_meth_free(x->bio);
    free(x);
    return NULL;
}

void hc_tls_ctx_free(hc_tls_ctx *x)
{
    if (x == NULL) return;
    SSL_CTX_free(x->ctx);
    BIO_meth_free(x->bio); /* every session of the pool is gone by now */
    free(x);
}

static int is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Why the handshake failed, in the words users search for. */
static void handshake_err(hc_tls *t, int rc, char *err, size_t errlen)
{
    long v = SSL_get_verify_result(t->ssl);
    int e = SSL_get_error(t->ssl, rc);
    if (v != X509_V_OK) {
        snprintf(err, errlen, "tls: certificate verify failed (%s)", X509_verify_cert_error_string(v));
        lower(err);
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(err, errlen, "tls: handshake failed: %s",
                 errno && hc_sock_errmsg(errno) ? hc_sock_errmsg(errno) : "connection closed");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(err, errlen, "tls: handshake failed: connection closed");
    } else {
        ssl_err("handshake failed", err, errlen);
    }
}

hc_tls *hc_tls_connect(hc_tls_ctx *x, int fd, const char *name, double deadline,
                       char *err, size_t errlen)
{
    hc_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ERR_clear_error();
    t->fd = fd;
    t->ssl = SSL_new(x->ctx);
    if (t->ssl == NULL) {
        ssl_err("cannot create a session", err, errlen);
        goto fail;
    }
    {
        BIO *b = nosig_bio(x->bio, fd);
        if (b == NULL) {
            ssl_err("cannot create a session", err, errlen);
            goto fail;
        }
        SSL_set_bio(t->ssl, b, b); /* the session owns the BIO */
    }
    if (name && name[0]) {
        int ip = is_ip(name);
        if (!ip && SSL_set_tlsext_host_name(t->ssl, name) != 1) {
            ssl_err("invalid server_name", err, errlen);
            goto fail;
        }
        if (x->verify) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
            int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : SSL_set1_host(t->ssl, name);
            if (ok != 1) {
                ssl_err("invalid server_name", err, errlen);
                goto fail;
            }
        }
    }
    for (;;) {
        int rc, e, w;
        errno = 0;
        rc = SSL_connect(t->ssl);
        if (rc == 1) break;
        e = SSL_get_error(t->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            w = hc_sock_wait(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (w == 1) continue;
            snprintf(err, errlen, "%s", w == 0 ? "timeout" : "connection closed");
            ERR_clear_error();
            goto fail;
        }
        handshake_err(t, rc, err, errlen);
        goto fail;
    }
    return t;
fail:
    hc_tls_free(t);
    return NULL;
}

void hc_tls_free(hc_tls *t)
{
    if (t == NULL) return;
    if (t->ssl) SSL_free(t->ssl); /* no SSL_shutdown: nothing is sent */
    free(t);
}

/* Maps a failed SSL_read/SSL_write to a stable message; 0 = end of stream. */
static ssize_t io_err(hc_tls *t, int rc, char *err, size_t errlen)
{
    int e = SSL_get_error(t->ssl, rc);
    switch (e) {
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* SO_RCVTIMEO/SO_SNDTIMEO ran out */
        snprintf(err, errlen, "timeout");
        ERR_clear_error();
        return -1;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (errno == 0) return 0; /* EOF without close_notify */
            snprintf(err, errlen, "%s", hc_sock_errmsg(errno) ? hc_sock_errmsg(errno) : "connection error");
            return -1;
        }
        /* fall through */
    default:
        ssl_err("i/o failed", err, errlen);
        return -1;
    }
}

ssize_t hc_tls_read(hc_tls *t, char *buf, size_t n, char *err, size_t errlen)
{
    int rc;
    errno = 0;
    rc = SSL_read(t->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
    if (rc > 0) return rc;
    return io_err(t, rc, err, errlen);
}

ssize_t hc_tls_write(hc_tls *t, const char *buf, size_t n, char *err, size_t errlen)
{
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        int rc;
        errno = 0;
        rc = SSL_write(t->ssl, buf + done, (int)chunk);
        if (rc <= 0) {
            ssize_t r = io_err(t, rc, err, errlen);
            if (r == 0) snprintf(err, errlen, "connection closed");
            return -1;
        }
        done += (size_t)rc;
    }
    return (ssize_t)done;
}

int hc_tls_idle_ok(hc_tls *t)
{
    char b;
    int rc, e, ok;
    if (SSL_has_pending(t->ssl)) return 0;
    if (hc_sock_set_nonblock(t->fd, 1) != 0) return 0;
    rc = SSL_peek(t->ssl, &b, 1);
    e = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, rc);
    ok = rc <= 0 && e == SSL_ERROR_WANT_READ; /* only records without data */
    ERR_clear_error();
    if (hc_sock_set_nonblock(t->fd, 0) != 0) return 0;
    return ok;
}
