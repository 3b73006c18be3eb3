/*
 * hc_conn.h -- transport: one blocking connection to one Redis server,
 * hicache's own (no hiredis redisContext): a descriptor from hc_sock, an
 * optional TLS session from hc_tls, and a hiredis redisReader fed with what
 * is read. Requests are formatted by the protocol core (hc_proto.h).
 *
 * Contract:
 *  - every socket has a connect timeout (resolution, connect and TLS
 *    handshake together) and a command timeout (every wait of a write or a
 *    read);
 *  - a request of n commands is one write(2) (one SSL_write over TLS); on
 *    a live connection a reply that fits the read buffer is one read(2);
 *  - AUTH and SELECT run once, in hc_conn_open;
 *  - any I/O error, protocol error or timeout sets conn->broken, and a
 *    broken connection is never used again (the pool closes it);
 *  - error messages are stable, lower-case, and never contain a password.
 */
#ifndef HC_CONN_H
#define HC_CONN_H

#include <stddef.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

#include "hc_cmd.h"
#include "hc_tls.h"

#define HC_ERRLEN 160

/* Connection settings. Two caches share a pool iff all fields are equal. */
typedef struct hc_settings {
    char *host;            /* TCP host, or NULL when path is set     */
    int port;
    char *path;            /* unix socket path, or NULL              */
    int db;
    char *username;        /* NULL: password-only AUTH (or none)     */
    char *password;        /* NULL: no AUTH                          */
    double connect_timeout;/* seconds, > 0                           */
    double timeout;        /* seconds, > 0: per command read/write   */
    int keepalive;         /* TCP keepalive idle seconds, 0 = off    */
    int pool_size;         /* max connections, >= 1                  */
    double pool_wait;      /* seconds to wait when exhausted, >= 0   */
    double idle_check;     /* PING on checkout after this idle time  */
    double idle_poll;      /* poll(2) on checkout after this idle time */
    double lifetime;       /* close after this age, 0 = no limit     */
    double backoff_base;   /* first reconnect delay after a failure  */
    double backoff_max;    /* reconnect delay bound                  */
    int tls;               /* 1: TLS with the options below          */
    int tls_verify;        /* 1: certificate chain and name checked  */
    char *tls_ca_file, *tls_ca_path, *tls_cert_file, *tls_key_file;
    char *tls_server_name; /* NULL: the host                         */
    /* the L1 near cache of the pool (hc_l1.h); l1_max_bytes 0: none     */
    double l1_max_bytes;   /* store budget in bytes                  */
    double l1_max_items;   /* 0: bytes only                          */
    double l1_ttl;         /* seconds a fill is fresh (0: stale copies only) */
    double l1_stale;       /* stale_if_error: seconds a copy may be served
                              past its freshness while Redis is down   */
    int l1_bcast;          /* CLIENT TRACKING ... BCAST              */
    char *l1_prefixes;     /* BCAST PREFIXes, '\n'-separated, or NULL */
    /* the circuit breaker: opens after breaker_failures consecutive
     * connect failures or I/O errors/timeouts (0: no breaker); while
     * open, one half-open probe every breaker_probe seconds           */
    int breaker_failures;
    double breaker_probe;
    /* backend = "memory": every connection is an in-process node
     * (hc_mem.h) named mem_name with these limits; no socket at all    */
    int memory;
    char *mem_name;
    double mem_max_bytes, mem_max_items;
} hc_settings;

typedef struct hc_conn {
    int fd;
    hc_tls *tls;           /* NULL on a plain connection              */
    redisReader *reader;
    pid_t pid;             /* process that opened the socket          */
    unsigned long gen;     /* pool generation (changes after a fork)  */
    double created;        /* hc_now() at connect                     */
    double last_used;      /* hc_now() at last check-in               */
    double timeout;        /* the command timeout now in force        */
    unsigned state;        /* HC_ST_* bits, see hc_cmd.h              */
    unsigned track_epoch;  /* the L1 epoch its CLIENT TRACKING serves (0: none) */
    int broken;            /* saw an I/O/protocol error or a timeout  */
    int io_error;          /* ... that one (not a state left by a user) */
    char io_err[48];       /* its message ("timeout", "connection closed", ...) */
    int reused;            /* taken from the idle list, not used since */
    int closed_unused;     /* the last exec found it closed by the peer
                              before any byte of a reply: nothing ran  */
    int sent_first;        /* the request in flight is its first since checkout */
    struct hc_conn *next;  /* idle list link                          */
    struct hc_mnode *mem;  /* a memory connection's node (fd -1), or NULL */
} hc_conn;

/* Opens (connect, TLS handshake when tls is not NULL, timeouts,
 * keepalive), authenticates and selects. NULL + err on failure. */
hc_conn *hc_conn_open(const hc_settings *s, hc_tls_ctx *tls, char *err, size_t errlen);

/* A memory connection (backend = "memory") to the node in *slot (the
 * pool's, made on its first connection; hc_mnode_current: after a fork,
 * a node of the child's own). Called with no pool lock held.
 * Everything below works on it without a socket: exec runs the commands
 * on the node (exec_raw ignores the formatted bytes), usable is 1, ping
 * and settle need no I/O, set_timeout bounds BLPOP. NULL + err when
 * memory ran out. */
hc_conn *hc_conn_open_mem(struct hc_mnode **slot, const hc_settings *s, char *err, size_t errlen);

/* Frees the reader and the TLS session and closes this process's
 * descriptor. It never writes to the socket nor shuts it down, so a
 * parent's connection inherited by a forked child stays intact. */
void hc_conn_close(hc_conn *c);

/* 1 when an idle connection can be used: the peer has not closed it and
 * nothing unexpected is waiting to be read (one poll(2), no blocking). */
int hc_conn_usable(const hc_conn *c);

/* Sends n commands in one write and reads n replies. On success returns 0
 * and fills replies[0..n-1] (caller frees them with freeReplyObject). On
 * failure returns -1, frees any replies already read, marks the connection
 * broken and writes a stable message to err; closed_unused tells whether
 * the peer had closed the connection before anything of a reply came. */
int hc_conn_exec(hc_conn *c, int n, const hc_cmd *cmds, redisReply **replies,
                 char *err, size_t errlen);

/* The same with the request already formatted (hc_proto_format). */
int hc_conn_exec_raw(hc_conn *c, const char *req, size_t len, int n, const hc_cmd *cmds,
                     redisReply **replies, char *err, size_t errlen);

/* The two halves of hc_conn_exec_raw, so that a router can write a request
 * to several connections before it reads any reply (one round trip to
 * several servers): send writes the request (0, or -1 with err, broken);
 * recv reads its n replies (as exec). Not for memory connections. */
int hc_conn_send_raw(hc_conn *c, const char *req, size_t len, int n, const hc_cmd *cmds, char *err,
                     size_t errlen);
int hc_conn_recv(hc_conn *c, int n, redisReply **replies, char *err, size_t errlen);

/* PING; 0 when answered with PONG. */
int hc_conn_ping(hc_conn *c, char *err, size_t errlen);

/* Brings a connection back to a poolable state: DISCARD inside MULTI,
 * UNWATCH after WATCH; a DIRTY connection is marked broken. */
void hc_conn_settle(hc_conn *c);

/* For a connection that only listens (SUBSCRIBE): sends n commands
 * without reading replies; 0, or -1 (broken) with err. */
int hc_conn_send(hc_conn *c, int n, const hc_cmd *cmds, char *err, size_t errlen);
/* Reads the next reply, waiting up to the command timeout: 0 with *r
 * (caller frees), 1 when nothing came within the timeout (the connection
 * stays usable), -1 with err (broken). */
int hc_conn_read_reply(hc_conn *c, redisReply **r, char *err, size_t errlen);
/* Sets the command timeout; 0 on success. */
int hc_conn_set_timeout(hc_conn *c, double seconds);

#endif
