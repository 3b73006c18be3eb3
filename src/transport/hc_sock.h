/*
 * hc_sock.h -- transport: the plain socket. Resolves a host name without
 * waiting past a deadline, connects without blocking past it (TCP over
 * IPv4 or IPv6, or a unix socket), and turns errno values into hicache's
 * stable error strings. Nothing here knows Redis.
 *
 * Contract:
 *  - every wait is bounded by the deadline (hc_now() seconds);
 *  - the descriptor returned is blocking, close-on-exec, with TCP_NODELAY
 *    and (when keepalive > 0) TCP keepalive; hc_sock_set_timeout gives it
 *    its per-wait send/receive timeout;
 *  - on failure nothing is left open and err holds a lower-case message:
 *    "timeout", "connection refused", "no such socket", a resolver message
 *    ("name or service not known", ...).
 */
#ifndef HC_SOCK_H
#define HC_SOCK_H

#include <stddef.h>

/* Connects to host:port (any address family the name resolves to, tried
 * in order) or, when path is not NULL, to that unix socket. Returns the
 * descriptor, or -1 with err. nonblock: leave the descriptor non-blocking
 * (for a TLS handshake that must obey the same deadline). */
int hc_sock_connect(const char *host, int port, const char *path, int keepalive,
                    double deadline, int nonblock, char *err, size_t errlen);

/* Switches O_NONBLOCK; 0 on success. */
int hc_sock_set_nonblock(int fd, int on);

/* SO_RCVTIMEO and SO_SNDTIMEO: every blocking read and write waits at
 * most `seconds` (> 0). 0 on success. */
int hc_sock_set_timeout(int fd, double seconds);

/* Waits until fd is readable (events = POLLIN) or writable (POLLOUT), or
 * the deadline passes. 1 ready, 0 timeout, -1 error (errno set). */
int hc_sock_wait(int fd, short events, double deadline);

/* The stable message for an errno value of a read, write or connect. */
const char *hc_sock_errmsg(int err);

#endif
