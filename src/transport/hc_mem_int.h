/*
 * hc_mem_int.h -- what the files of the in-process node share (hc_mem.c:
 * registry, locks, the exec loop, BLPOP; hc_mem_val.c: replies, the
 * store's entries as Redis strings and lists, SCAN/KEYS; hc_mem_cmd.c:
 * the commands; hc_mem_script.c: hicache's scripts in C). Not an
 * interface: see hc_mem.h.
 */
#ifndef HC_MEM_INT_H
#define HC_MEM_INT_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

#include "hc_mem.h"
#include "hc_scripts.h"
#include "hc_store.h"

struct hc_mnode {
    hc_store *store;
    pthread_rwlock_t rw;       /* commands: read or write lock (hc_mem.h)  */
    pthread_mutex_t mu;        /* guards pushes, with cv                   */
    pthread_cond_t cv;         /* broadcast when a list got an element     */
    unsigned long long pushes; /* list pushes so far (written under rw + mu) */
    unsigned loaded;           /* bit i: script i loaded since the last
                                  SCRIPT FLUSH (guarded by rw)            */
    char sha[HC_SCRIPTS][41];  /* the SHA1 of each script's source (hex)  */
    /* guarded by the registry mutex */
    char *name;
    double max_bytes, max_items;
    pid_t pid;                 /* the process that made it                */
    int refs;
    hc_mnode *next;
};

/* One command being run, its node's lock held as its entry says. */
typedef struct mcall {
    hc_mnode *n;
    double now;          /* hc_now() once the lock was taken           */
    int argc;
    const char **argv;
    const size_t *len;
    double timeout;      /* the connection's command timeout (BLPOP)    */
    int timed_out;       /* set by BLPOP: the command failed "timeout"  */
} mcall;

/* What a command holds while it runs. */
enum { M_NONE = 0, M_READ = 1, M_WRITE = 2, M_BLOCK = 3 };

typedef struct mcmd {
    const char *name;    /* upper case */
    int arity;           /* > 0: exactly; < 0: at least -arity (with the name) */
    int lock;
    redisReply *(*fn)(mcall *c);
} mcmd;

/* The command called name (any case), or NULL. */
const mcmd *hc_mcmd_find(const char *name, size_t len);

/* ---- replies: NULL only when memory ran out -------------------------------- */
redisReply *mr_nil(void);
redisReply *mr_int(long long v);
redisReply *mr_str(const char *s, size_t n);
/* takes data (malloc'ed, n bytes) into a bulk reply; frees it on failure */
redisReply *mr_take(char *data, size_t n);
redisReply *mr_status(const char *s);
redisReply *mr_err(const char *fmt, ...);
/* an array of n NULL elements to fill; hc_mr_fill checks them all */
redisReply *mr_arr(size_t n);
/* r, or NULL (r freed) when one of its elements is NULL */
redisReply *mr_done(redisReply *r);
/* freeReplyObject that accepts an array with NULL elements */
void mr_free(redisReply *r);

/* A command argument, sanitised for an error message. */
void mr_arg_text(const char *s, size_t n, char *out, size_t outlen);

/* ---- the store's entries as Redis types (the node's lock held) ------------- */

/* Errors of the primitives (a reply for each: hc_mval_error). */
enum {
    MV_OOM = -1,       /* malloc failed: the exec fails "out of memory" */
    MV_WRONGTYPE = -2, /* WRONGTYPE ...                                  */
    MV_TOOBIG = -3,    /* the store refused the value: OOM ... maxmemory */
    MV_NOTINT = -4,    /* ERR value is not an integer or out of range    */
    MV_OVERFLOW = -5,  /* ERR increment or decrement would overflow      */
    MV_NOKEY = -6      /* ERR no such key                                */
};
#define MV_FLAG_LIST 1u /* the store entry's flags: a list (else a string) */

redisReply *hc_mval_error(int code);
extern const char *const hc_mv_wrongtype;

/* The entry at key: 1 (v filled, v->data malloc'ed: free it), 0 missing,
 * MV_OOM. */
int hc_mv_read(mcall *c, const char *k, size_t kn, hc_store_val *v);
/* GET: 1 with *out and *on (malloc'ed), 0 missing, MV_WRONGTYPE, MV_OOM. */
int hc_mv_get(mcall *c, const char *k, size_t kn, char **out, size_t *on);
/* SET k v, expiring at `expires` (hc_now() seconds, 0: never): 1 or MV_TOOBIG. */
int hc_mv_set(mcall *c, const char *k, size_t kn, const char *v, size_t vn, double expires);
/* SET k v PX ms (ms <= 0: no expiry) */
int hc_mv_set_px(mcall *c, const char *k, size_t kn, const char *v, size_t vn, long long ms);
/* UNLINK: 1 removed, 0 there was nothing */
int hc_mv_del(mcall *c, const char *k, size_t kn);
/* EXISTS of one key: 1, 0, MV_OOM */
int hc_mv_exists(mcall *c, const char *k, size_t kn);
/* PTTL into *ms (-2 missing, -1 no expiry): 0 or MV_OOM */
int hc_mv_pttl(mcall *c, const char *k, size_t kn, long long *ms);
/* PEXPIRE (ms <= 0 deletes): 1, 0 (no key), MV_OOM */
int hc_mv_pexpire(mcall *c, const char *k, size_t kn, long long ms);
/* PERSIST: 1 (a TTL was removed), 0, MV_OOM */
int hc_mv_persist(mcall *c, const char *k, size_t kn);
/* RPUSH (or LPUSH when left) of one element: the new length, or < 0 */
long long hc_mv_push(mcall *c, const char *k, size_t kn, const char *v, size_t vn, int left);
/* INCRBY: 0 with *out, or < 0 */
int hc_mv_incrby(mcall *c, const char *k, size_t kn, long long delta, long long *out);
/* RENAME src dst: 1, MV_NOKEY, MV_OOM, MV_TOOBIG */
int hc_mv_rename(mcall *c, const char *k, size_t kn, const char *d, size_t dn);
/* LPOP of one element: 1 with *out and *on (malloc'ed), 0 (no list), < 0 */
int hc_mv_lpop(mcall *c, const char *k, size_t kn, char **out, size_t *on);

/* Redis's string2ll: a whole argument as a 64-bit integer; 0 or -1. */
int hc_mv_ll(const char *s, size_t n, long long *v);
/* The expiry time ms from now (hc_now() seconds). */
double hc_mv_expires_in(mcall *c, long long ms);

/* The list at key: 1 (v read, v->data malloc'ed), 0 none, MV_WRONGTYPE, MV_OOM. */
int hc_mv_read_list(mcall *c, const char *k, size_t kn, hc_store_val *v);
/* Pops one element from the left (or the right): as hc_mv_lpop. */
int hc_mv_pop(mcall *c, const char *k, size_t kn, int right, char **out, size_t *on);
/* The elements of a list's bytes; the element at *at (moved past it). */
size_t hc_mv_list_count(const char *p, size_t n);
const char *hc_mv_list_next(const char *p, size_t *at, size_t *len);

/* KEYS / SCAN: the keys matching pattern pat (NULL: all) of a type (-1
 * any, 0 string, 1 list) as an array reply; NULL when out of memory. */
redisReply *hc_mv_keys(mcall *c, const char *pat, size_t pn, int type);
/* DBSIZE */
long long hc_mv_count(mcall *c);

/* ---- scripts (hc_mem_script.c) ------------------------------------------ */

/* The SHA1s of hicache's scripts, into n->sha. */
void hc_mscript_init(hc_mnode *n);
redisReply *hc_mscript_cmd(mcall *c);   /* SCRIPT LOAD|EXISTS|FLUSH */
redisReply *hc_mscript_evalsha(mcall *c);
redisReply *hc_mscript_eval(mcall *c);

/* BLPOP (hc_mem.c): waits without the lock */
redisReply *hc_mem_blpop(mcall *c);
/* After an element was pushed (write lock held): wakes BLPOP waiters. */
void hc_mem_pushed(hc_mnode *n);

#endif
