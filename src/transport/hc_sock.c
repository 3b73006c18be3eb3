/* hc_sock.c -- transport: the plain socket (see hc_sock.h). */
#include "hc_sock.h"
#include "hc_time.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
}

const char *hc_sock_errmsg(int e)
{
    switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ETIMEDOUT:
    case EINPROGRESS: return "timeout";
    case ECONNREFUSED: return "connection refused";
    case ENOENT: return "no such socket";
    case ECONNRESET: return "connection reset";
    case EPIPE: return "connection closed";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case EACCES: return "permission denied";
    case EADDRNOTAVAIL: return "address not available";
    case ENOMEM: case ENOBUFS: return "out of memory";
    default: return NULL;
    }
}

static void errno_err(int e, char *err, size_t errlen)
{
    const char *m = hc_sock_errmsg(e);
    size_t i;
    if (m) {
        set_err(err, errlen, m);
        return;
    }
    snprintf(err, errlen, "%s", strerror(e));
    for (i = 0; err[i]; i++) err[i] = (char)tolower((unsigned char)err[i]);
}

int hc_sock_wait(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p;
        double left = deadline - hc_now();
        int ms, rc;
        if (left <= 0) return 0;
        ms = (int)(left * 1000.0) + 1;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        rc = poll(&p, 1, ms);
        if (rc > 0) return 1;
        if (rc == 0) {
            if (hc_now() >= deadline) return 0;
            continue;
        }
        if (errno != EINTR) return -1;
    }
}

int hc_sock_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? -1 : 0;
}

int hc_sock_set_timeout(int fd, double seconds)
{
    struct timeval tv = hc_timeval(seconds);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return -1;
    return 0;
}

static void tune_tcp(int fd, int keepalive)
{
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (keepalive > 0) {
        int idle = keepalive, intvl = keepalive / 3 > 0 ? keepalive / 3 : 1, cnt = 3;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
#ifdef TCP_KEEPIDLE
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#else
        (void)idle; (void)intvl; (void)cnt;
#endif
    }
}

/* One non-blocking connect to addr, bounded by the deadline. Returns the
 * descriptor (non-blocking) or -1 with *e = errno (ETIMEDOUT on timeout). */
static int connect_one(int family, const struct sockaddr *addr, socklen_t alen, double deadline, int *e)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc, soerr = 0;
    socklen_t sl = sizeof soerr;
    if (fd < 0) {
        *e = errno;
        return -1;
    }
    do rc = connect(fd, addr, alen);
    while (rc != 0 && errno == EINTR);
    if (rc == 0) return fd;
    if (errno != EINPROGRESS) {
        *e = errno;
        close(fd);
        return -1;
    }
    rc = hc_sock_wait(fd, POLLOUT, deadline);
    if (rc <= 0) {
        *e = rc == 0 ? ETIMEDOUT : errno;
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
    if (soerr != 0) {
        *e = soerr;
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- name resolution bounded by the deadline ----------------------------
 * getaddrinfo(3) cannot be given a timeout, so a name that is not a
 * numeric address is resolved by a detached thread; the caller waits for
 * it until the deadline and then walks away. The job is shared by the two
 * and freed by whichever lets go last. */
typedef struct resolve_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs, done, rc;
    char *host;
    char port[16];
    struct addrinfo *res;
} resolve_job;

static void job_unref(resolve_job *j)
{
    int last;
    pthread_mutex_lock(&j->mu);
    last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    if (j->res) freeaddrinfo(j->res);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->host);
    free(j);
}

static void *resolve_thread(void *arg)
{
    resolve_job *j = (resolve_job *)arg;
    struct addrinfo hints, *res = NULL;
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    rc = getaddrinfo(j->host, j->port, &hints, &res);
    pthread_mutex_lock(&j->mu);
    j->rc = rc;
    j->res = rc == 0 ? res : NULL;
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return NULL;
}

static int resolve(const char *host, int port, double deadline, struct addrinfo **out,
                   char *err, size_t errlen)
{
    struct addrinfo hints;
    char portstr[16];
    resolve_job *j;
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t th;
    int rc, timed_out = 0;

    snprintf(portstr, sizeof portstr, "%d", port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, portstr, &hints, out) == 0) return 0; /* a literal: no lookup */

    j = calloc(1, sizeof *j);
    if (j == NULL || (j->host = strdup(host)) == NULL) {
        free(j);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    memcpy(j->port, portstr, sizeof portstr);
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->refs = 2;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &ta, resolve_thread, j);
    pthread_attr_destroy(&ta);
    if (rc != 0) {
        j->refs = 1;
        job_unref(j);
        set_err(err, errlen, "cannot start the resolver");
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec ts = hc_timespec(deadline);
        if (hc_now() >= deadline) {
            timed_out = 1;
            break;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    rc = j->rc;
    if (!timed_out && rc == 0) {
        *out = j->res;
        j->res = NULL;
    }
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    if (timed_out) {
        set_err(err, errlen, "timeout");
        return -1;
    }
    if (rc != 0) {
        size_t i;
        snprintf(err, errlen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        for (i = 0; err[i]; i++) err[i] = (char)tolower((unsigned char)err[i]);
        return -1;
    }
    return 0;
}

int hc_sock_connect(const char *host, int port, const char *path, int keepalive,
                    double deadline, int nonblock, char *err, size_t errlen)
{
    int fd = -1, e = 0;
    if (path) {
        struct sockaddr_un sa;
        if (strlen(path) >= sizeof sa.sun_path) {
            set_err(err, errlen, "socket path too long");
            return -1;
        }
        memset(&sa, 0, sizeof sa);
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = connect_one(AF_UNIX, (const struct sockaddr *)&sa, (socklen_t)sizeof sa, deadline, &e);
    } else {
        struct addrinfo *res = NULL, *ai;
        if (resolve(host, port, deadline, &res, err, errlen) != 0) return -1;
        for (ai = res; ai; ai = ai->ai_next) {
            fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, &e);
            if (fd >= 0 || e == ETIMEDOUT) break;
        }
        freeaddrinfo(res);
        if (fd >= 0) tune_tcp(fd, keepalive);
    }
    if (fd < 0) {
        errno_err(e, err, errlen);
        return -1;
    }
    if (!nonblock && hc_sock_set_nonblock(fd, 0) != 0) {
        errno_err(errno, err, errlen);
        close(fd);
        return -1;
    }
    return fd;
}
