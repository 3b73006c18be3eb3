/* hc_store.c -- the in-process store (see hc_store.h): shards of a
 * chained hash table, S3-FIFO (or LRU) queues, a ghost FIFO of key
 * hashes, fill marks, and the process-wide registry of named stores. */
#include "hc_store.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

enum { Q_SMALL = 1, Q_MAIN = 2 };

#define TAB_MIN 64      /* buckets of a shard's table at first */
#define SWEEP_BUCKETS 8 /* buckets looked at for dead entries per eviction round */
#define FREQ_MAX 3      /* S3-FIFO's 2-bit frequency */

/* One allocation per entry: the header, the key, the value. A filling
 * placeholder is an entry with stamp 0 (no value). */
typedef struct ent {
    struct ent *hnext;        /* hash chain */
    struct ent *newer, *older; /* queue links */
    uint64_t stamp;           /* of the value; 0: a placeholder */
    uint64_t ticket;          /* of the fill in progress; 0: none */
    double expires;           /* 0: never */
    double stale_until;       /* >= expires; 0 when expires is 0 */
    uint32_t h;               /* low bits of the key's hash */
    uint32_t kn, vn, flags;
    uint8_t q, freq;
    char key[];               /* kn bytes of key, then vn of value */
} ent;

typedef struct queue {
    ent *head, *tail; /* newest, oldest */
    size_t n, bytes;
} queue;

typedef struct shard {
    pthread_mutex_t mu;
    ent **tab;
    size_t mask;                 /* buckets - 1 */
    size_t items, bytes;         /* placeholders included */
    size_t max_bytes, max_items, small_max;
    queue small, main;           /* LRU: main only */
    /* ghost FIFO: a ring of key hashes (0: a slot taken back) and an
     * open-addressing set of ring positions + 1 for the lookup */
    uint32_t *gring, *gset;
    size_t gcap, ghead, gn, gsmask;
    size_t sweep;                /* next bucket the eviction sweep looks at */
    uint64_t hits, misses, stale_hits, sets, evictions, expired, invalidations, flushes,
        fills_cancelled;
    uint64_t seq;                /* moves on when an entry's value or expiry changes
                                    or an entry goes (written under mu, read atomically) */
    char pad[64];                /* keeps shards off each other's cache lines */
} shard;

struct hc_store {
    shard sh[HC_STORE_SHARDS];
    unsigned char seed[crypto_shorthash_KEYBYTES];
    size_t max_bytes, max_items;
    int policy;
    /* registry (guarded by reg_mu) */
    char *name;
    unsigned refs;
    struct hc_store *reg_next;
};

/* ---- stamps ---------------------------------------------------------- */

/* Process-wide, atomic (the one mutable global besides the registry). */
static uint64_t stamp_counter;

static uint64_t new_stamp(void)
{
    return __atomic_add_fetch(&stamp_counter, 1, __ATOMIC_RELAXED);
}

/* ---- hashing, entries, time ------------------------------------------ */

static uint64_t hash_key(const hc_store *s, const char *k, size_t kn)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, (const unsigned char *)k, (unsigned long long)kn, s->seed);
    memcpy(&h, out, sizeof h);
    return h;
}

static shard *shard_of(hc_store *s, uint64_t h)
{
    return &s->sh[h >> 60]; /* HC_STORE_SHARDS == 16: the top 4 bits */
}

static size_t cost_of(size_t kn, size_t vn)
{
    return kn + vn + HC_STORE_OVERHEAD;
}

static size_t ent_cost(const ent *e)
{
    return cost_of(e->kn, e->vn);
}

static int is_expired(const ent *e, double now)
{
    return e->expires != 0 && now >= e->expires;
}

static int is_dead(const ent *e, double now)
{
    return e->stale_until != 0 && now >= e->stale_until;
}

static int is_live(const ent *e, double now)
{
    return e->stamp != 0 && !is_expired(e, now);
}

static int fits(const hc_store *s, size_t kn, size_t vn)
{
    size_t shmax = s->sh[0].max_bytes;
    return kn <= UINT32_MAX && vn <= UINT32_MAX && vn <= shmax / 2 && cost_of(kn, vn) <= shmax;
}

static ent *ent_new(uint32_t h, const char *key, size_t kn, const char *val, size_t vn)
{
    ent *e = malloc(offsetof(ent, key) + kn + vn);
    if (e == NULL) return NULL;
    memset(e, 0, offsetof(ent, key));
    e->h = h;
    e->kn = (uint32_t)kn;
    e->vn = (uint32_t)vn;
    memcpy(e->key, key, kn);
    if (vn) memcpy(e->key + kn, val, vn);
    return e;
}

static void set_times(ent *e, double expires, double stale_until)
{
    e->expires = expires;
    e->stale_until = expires == 0 ? 0 : (stale_until < expires ? expires : stale_until);
}

/* ---- queues ---------------------------------------------------------- */

static queue *q_of(shard *sh, int q)
{
    return q == Q_SMALL ? &sh->small : &sh->main;
}

static void q_push(shard *sh, ent *e, int q)
{
    queue *Q = q_of(sh, q);
    e->q = (uint8_t)q;
    e->newer = NULL;
    e->older = Q->head;
    if (Q->head) Q->head->newer = e;
    else Q->tail = e;
    Q->head = e;
    Q->n++;
    Q->bytes += ent_cost(e);
}

static void q_unlink(shard *sh, ent *e)
{
    queue *Q = q_of(sh, e->q);
    if (e->newer) e->newer->older = e->older;
    else Q->head = e->older;
    if (e->older) e->older->newer = e->newer;
    else Q->tail = e->newer;
    Q->n--;
    Q->bytes -= ent_cost(e);
}

/* ---- the hash table ---------------------------------------------------- */

/* The link that points to key's entry, or to NULL at the end of its chain. */
static ent **find(shard *sh, uint32_t h, const char *key, size_t kn)
{
    ent **p = &sh->tab[h & sh->mask];
    for (; *p; p = &(*p)->hnext)
        if ((*p)->h == h && (*p)->kn == kn && memcmp((*p)->key, key, kn) == 0) break;
    return p;
}

static void tab_grow(shard *sh)
{
    size_t n = (sh->mask + 1) * 2, i;
    ent **t;
    if (n > ((size_t)1 << 31) || (t = calloc(n, sizeof *t)) == NULL) return; /* longer chains */
    for (i = 0; i <= sh->mask; i++) {
        ent *e = sh->tab[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = t[e->h & (n - 1)];
            t[e->h & (n - 1)] = e;
        }
    }
    free(sh->tab);
    sh->tab = t;
    sh->mask = n - 1;
}

/* Links a new entry (not in the table) into the table and queue q. */
static void link_ent(shard *sh, ent *e, int q)
{
    ent **b = &sh->tab[e->h & sh->mask];
    e->hnext = *b;
    *b = e;
    q_push(sh, e, q);
    sh->items++;
    sh->bytes += ent_cost(e);
    if (sh->items > sh->mask + 1) tab_grow(sh);
}

static void bump(shard *sh)
{
    __atomic_store_n(&sh->seq, sh->seq + 1, __ATOMIC_RELEASE);
}

/* Unlinks e, whose link in its chain is *p, and frees it. */
static void drop_at(shard *sh, ent **p)
{
    ent *e = *p;
    bump(sh);
    *p = e->hnext;
    q_unlink(sh, e);
    sh->items--;
    sh->bytes -= ent_cost(e);
    free(e);
}

static void drop(shard *sh, ent *e)
{
    ent **p = &sh->tab[e->h & sh->mask];
    while (*p != e) p = &(*p)->hnext;
    drop_at(sh, p);
}

/* ---- the ghost FIFO ---------------------------------------------------- */

/* How many hashes the ghost keeps: the number of entries of the shard's
 * average size that main can hold. */
static size_t ghost_limit(const shard *sh)
{
    size_t avg = sh->items ? sh->bytes / sh->items : 0, n;
    if (avg < HC_STORE_OVERHEAD + 16) avg = HC_STORE_OVERHEAD + 16;
    n = (sh->max_bytes - sh->small_max) / avg;
    if (sh->max_items && n > sh->max_items) n = sh->max_items;
    return n ? n : 1;
}

/* The set slot of hash h (>= 0), or -1. */
static long ghost_find(const shard *sh, uint32_t h)
{
    size_t i;
    if (sh->gcap == 0) return -1;
    for (i = h & sh->gsmask; sh->gset[i]; i = (i + 1) & sh->gsmask)
        if (sh->gring[sh->gset[i] - 1] == h) return (long)i;
    return -1;
}

/* Empties set slot i, moving later entries of its cluster back. */
static void gset_delete(shard *sh, size_t i)
{
    size_t m = sh->gsmask, j = i;
    sh->gset[i] = 0;
    for (;;) {
        uint32_t v;
        size_t k;
        j = (j + 1) & m;
        if ((v = sh->gset[j]) == 0) return;
        k = sh->gring[v - 1] & m; /* its home slot */
        if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
            sh->gset[i] = v;
            sh->gset[j] = 0;
            i = j;
        }
    }
}

static void gset_insert(shard *sh, size_t pos)
{
    size_t i = sh->gring[pos] & sh->gsmask;
    while (sh->gset[i]) i = (i + 1) & sh->gsmask;
    sh->gset[i] = (uint32_t)pos + 1;
}

/* Drops the oldest hash. */
static void ghost_pop(shard *sh)
{
    size_t pos = sh->ghead;
    uint32_t h = sh->gring[pos];
    if (h) {
        size_t i = h & sh->gsmask;
        while (sh->gset[i] != pos + 1) i = (i + 1) & sh->gsmask;
        gset_delete(sh, i);
    }
    sh->ghead = (sh->ghead + 1) & (sh->gcap - 1);
    sh->gn--;
}

/* Doubles the ring (and its set); 0 done, -1 out of memory. */
static int ghost_grow(shard *sh)
{
    size_t cap = sh->gcap ? sh->gcap * 2 : 64, i;
    uint32_t *ring, *set;
    if (cap > ((size_t)1 << 30)) return -1;
    ring = malloc(cap * sizeof *ring);
    set = calloc(cap * 2, sizeof *set);
    if (ring == NULL || set == NULL) {
        free(ring);
        free(set);
        return -1;
    }
    for (i = 0; i < sh->gn; i++) ring[i] = sh->gring[(sh->ghead + i) & (sh->gcap - 1)];
    free(sh->gring);
    free(sh->gset);
    sh->gring = ring;
    sh->gset = set;
    sh->gcap = cap;
    sh->gsmask = cap * 2 - 1;
    sh->ghead = 0;
    for (i = 0; i < sh->gn; i++)
        if (ring[i]) gset_insert(sh, i);
    return 0;
}

static void ghost_add(shard *sh, uint32_t h)
{
    size_t lim = ghost_limit(sh), pos;
    if (h == 0) h = 1;
    if (ghost_find(sh, h) >= 0) return;
    while (sh->gn >= lim || sh->gn == sh->gcap) {
        if (sh->gn < lim && ghost_grow(sh) == 0) continue;
        if (sh->gn == 0) return; /* no ring and none to be had */
        ghost_pop(sh);
    }
    pos = (sh->ghead + sh->gn) & (sh->gcap - 1);
    sh->gring[pos] = h;
    sh->gn++;
    gset_insert(sh, pos);
}

/* 1 when h was in the ghost (it is taken out), else 0. */
static int ghost_take(shard *sh, uint32_t h)
{
    long i;
    if (h == 0) h = 1;
    if ((i = ghost_find(sh, h)) < 0) return 0;
    sh->gring[sh->gset[i] - 1] = 0;
    gset_delete(sh, (size_t)i);
    return 1;
}

static void ghost_clear(shard *sh)
{
    sh->ghead = sh->gn = 0;
    if (sh->gset) memset(sh->gset, 0, (sh->gsmask + 1) * sizeof *sh->gset);
}

/* ---- eviction -------------------------------------------------------- */

/* The queue a new key enters: S3-FIFO's small FIFO, or main when its hash
 * is in the ghost (it was evicted from small recently). */
static int entry_queue(const hc_store *s, shard *sh, uint32_t h)
{
    if (s->policy == HC_STORE_LRU) return Q_MAIN;
    return ghost_take(sh, h) ? Q_MAIN : Q_SMALL;
}

static int over(const shard *sh, size_t cost)
{
    return sh->bytes + cost > sh->max_bytes || (sh->max_items && sh->items >= sh->max_items);
}

/* Dead entries (past stale_until) go first: a few buckets per round. */
static void sweep(shard *sh, double now)
{
    int k;
    for (k = 0; k < SWEEP_BUCKETS; k++) {
        ent **p = &sh->tab[sh->sweep++ & sh->mask];
        while (*p) {
            if ((*p)->stamp && is_dead(*p, now)) {
                sh->expired++;
                drop_at(sh, p);
            } else {
                p = &(*p)->hnext;
            }
        }
    }
}

/* One step of S3-FIFO on the small FIFO's oldest entry. */
static void evict_small(shard *sh, double now)
{
    ent *t = sh->small.tail;
    if (t->stamp == 0) {
        drop(sh, t); /* a placeholder: its fill stores nothing */
    } else if (is_dead(t, now)) {
        sh->expired++;
        drop(sh, t);
    } else if (t->freq > 0 && !is_expired(t, now)) {
        q_unlink(sh, t); /* read again while in small: to main */
        t->freq = 0;
        q_push(sh, t, Q_MAIN);
    } else {
        ghost_add(sh, t->h);
        sh->evictions++;
        drop(sh, t);
    }
}

/* One step on main's oldest entry (LRU: its least recently used). */
static void evict_main(const hc_store *s, shard *sh, double now)
{
    ent *t = sh->main.tail;
    if (t->stamp == 0) {
        drop(sh, t);
    } else if (is_dead(t, now)) {
        sh->expired++;
        drop(sh, t);
    } else if (s->policy == HC_STORE_S3FIFO && t->freq > 0 && !is_expired(t, now)) {
        q_unlink(sh, t); /* reinserted, one use less */
        t->freq--;
        q_push(sh, t, Q_MAIN);
    } else {
        sh->evictions++;
        drop(sh, t);
    }
}

/* Frees room for an entry of cost bytes (its size was checked: it fits
 * an empty shard). */
static void make_room(const hc_store *s, shard *sh, size_t cost, double now)
{
    if (!over(sh, cost)) return;
    sweep(sh, now);
    while (over(sh, cost) && sh->items > 0) {
        if (sh->small.n && (sh->small.bytes >= sh->small_max || sh->main.n == 0))
            evict_small(sh, now);
        else
            evict_main(s, sh, now);
    }
}

/* A hit: S3-FIFO counts it (up to 3), LRU moves the entry to the front. */
static void touch(const hc_store *s, shard *sh, ent *e)
{
    if (s->policy == HC_STORE_LRU) {
        if (sh->main.head != e) {
            q_unlink(sh, e);
            q_push(sh, e, Q_MAIN);
        }
    } else if (e->freq < FREQ_MAX) {
        e->freq++;
    }
}

/* Puts e (new, not linked) in place of *p (an entry of the same key, or
 * NULL): the old one is freed, e takes its queue and frequency (a new key
 * enters per policy), room is made, e is linked. */
static void install(const hc_store *s, shard *sh, ent **p, ent *e, double now)
{
    int q;
    if (*p) {
        q = (*p)->q;
        e->freq = (*p)->freq;
        drop_at(sh, p);
    } else {
        q = entry_queue(s, sh, e->h);
    }
    make_room(s, sh, ent_cost(e), now);
    link_ent(sh, e, q);
}

/* ---- creation ---------------------------------------------------------- */

hc_store *hc_store_new(const hc_store_opts *o)
{
    hc_store *s;
    int i, n = 0;
    if (o == NULL || o->max_bytes == 0 || sodium_init() < 0) return NULL;
    if ((s = calloc(1, sizeof *s)) == NULL) return NULL;
    randombytes_buf(s->seed, sizeof s->seed);
    s->max_bytes = o->max_bytes;
    s->max_items = o->max_items;
    s->policy = o->policy == HC_STORE_LRU ? HC_STORE_LRU : HC_STORE_S3FIFO;
    for (i = 0; i < HC_STORE_SHARDS; i++) {
        shard *sh = &s->sh[i];
        sh->max_bytes = o->max_bytes / HC_STORE_SHARDS;
        sh->max_items = (o->max_items + HC_STORE_SHARDS - 1) / HC_STORE_SHARDS;
        sh->small_max = sh->max_bytes / 10;
        sh->mask = TAB_MIN - 1;
        if ((sh->tab = calloc(TAB_MIN, sizeof *sh->tab)) == NULL) break;
        if (pthread_mutex_init(&sh->mu, NULL) != 0) {
            free(sh->tab);
            break;
        }
        n++;
    }
    if (n < HC_STORE_SHARDS) {
        for (i = 0; i < n; i++) {
            pthread_mutex_destroy(&s->sh[i].mu);
            free(s->sh[i].tab);
        }
        free(s);
        return NULL;
    }
    return s;
}

static void shard_empty(shard *sh)
{
    ent *e, *next;
    for (e = sh->small.head; e; e = next) {
        next = e->older;
        free(e);
    }
    for (e = sh->main.head; e; e = next) {
        next = e->older;
        free(e);
    }
    memset(&sh->small, 0, sizeof sh->small);
    memset(&sh->main, 0, sizeof sh->main);
    sh->items = sh->bytes = 0;
}

void hc_store_free(hc_store *s)
{
    int i;
    if (s == NULL) return;
    for (i = 0; i < HC_STORE_SHARDS; i++) {
        shard *sh = &s->sh[i];
        shard_empty(sh);
        free(sh->tab);
        free(sh->gring);
        free(sh->gset);
        pthread_mutex_destroy(&sh->mu);
    }
    free(s->name);
    free(s);
}

/* ---- the registry of named stores -------------------------------------- */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static hc_store *reg_head;

hc_store *hc_store_acquire(const char *name, const hc_store_opts *o)
{
    hc_store *s;
    pthread_mutex_lock(&reg_mu);
    for (s = reg_head; s; s = s->reg_next)
        if (strcmp(s->name, name) == 0) break;
    if (s) {
        s->refs++;
    } else if ((s = hc_store_new(o)) != NULL) {
        if ((s->name = strdup(name)) == NULL) {
            hc_store_free(s);
            s = NULL;
        } else {
            s->refs = 1;
            s->reg_next = reg_head;
            reg_head = s;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return s;
}

void hc_store_release(hc_store *s)
{
    hc_store **p;
    int last = 0;
    if (s == NULL) return;
    pthread_mutex_lock(&reg_mu);
    for (p = &reg_head; *p; p = &(*p)->reg_next) {
        if (*p == s) {
            if (--s->refs == 0) {
                *p = s->reg_next;
                last = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (last) hc_store_free(s);
}

/* ---- reads --------------------------------------------------------------- */

/* hc_store_get's body. The copy goes to a new malloc (buf NULL) or into
 * *buf, grown as needed. */
static int get_impl(hc_store *s, const char *key, size_t kn, double now, int allow_stale,
                    uint64_t have_stamp, hc_store_val *out, char **buf, size_t *cap)
{
    uint64_t h64 = hash_key(s, key, kn);
    shard *sh = shard_of(s, h64);
    ent **p, *e;
    int r;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&sh->mu);
    p = find(sh, (uint32_t)h64, key, kn);
    e = *p;
    if (e == NULL || e->stamp == 0) goto miss;
    if (is_dead(e, now)) {
        if (e->ticket == 0) { /* a fill in progress keeps its mark */
            sh->expired++;
            drop_at(sh, p);
        }
        goto miss;
    }
    if (is_expired(e, now)) {
        if (!allow_stale) goto miss;
        sh->stale_hits++;
        r = HC_STORE_STALE;
    } else {
        sh->hits++;
        touch(s, sh, e);
        r = HC_STORE_HIT;
    }
    out->len = e->vn;
    out->flags = e->flags;
    out->expires = e->expires;
    out->stale_until = e->stale_until;
    out->stamp = e->stamp;
    out->shard = (unsigned)(sh - s->sh);
    out->seq = sh->seq;
    if (have_stamp == 0 || e->stamp != have_stamp) {
        char *d;
        if (buf == NULL) {
            d = malloc((size_t)e->vn + 1);
        } else if (*cap < (size_t)e->vn + 1) {
            d = realloc(*buf, (size_t)e->vn + 1);
            if (d) {
                *buf = d;
                *cap = (size_t)e->vn + 1;
            }
        } else {
            d = *buf;
        }
        if (d == NULL) {
            pthread_mutex_unlock(&sh->mu);
            return -1;
        }
        memcpy(d, e->key + e->kn, e->vn);
        d[e->vn] = '\0';
        out->data = d;
    }
    pthread_mutex_unlock(&sh->mu);
    return r;
miss:
    sh->misses++;
    pthread_mutex_unlock(&sh->mu);
    return HC_STORE_MISS;
}

int hc_store_get(hc_store *s, const char *key, size_t kn, double now, int allow_stale,
                 uint64_t have_stamp, hc_store_val *out)
{
    return get_impl(s, key, kn, now, allow_stale, have_stamp, out, NULL, NULL);
}

int hc_store_get_buf(hc_store *s, const char *key, size_t kn, double now, int allow_stale,
                     uint64_t have_stamp, hc_store_val *out, char **buf, size_t *cap)
{
    return get_impl(s, key, kn, now, allow_stale, have_stamp, out, buf, cap);
}

int hc_store_fits(const hc_store *s, size_t kn, size_t vn)
{
    return fits(s, kn, vn);
}

/* ---- writes -------------------------------------------------------------- */

int hc_store_set(hc_store *s, const char *key, size_t kn, const char *val, size_t vn, uint32_t flags,
                 double expires, double stale_until, int mode, double now)
{
    uint64_t h64;
    shard *sh;
    ent **p, *e;
    if (!fits(s, kn, vn)) return -1;
    h64 = hash_key(s, key, kn);
    sh = shard_of(s, h64);
    if ((e = ent_new((uint32_t)h64, key, kn, val, vn)) == NULL) return -1;
    e->flags = flags;
    set_times(e, expires, stale_until);
    e->stamp = new_stamp();
    pthread_mutex_lock(&sh->mu);
    p = find(sh, e->h, key, kn);
    if ((mode == HC_STORE_NX && *p && is_live(*p, now)) ||
        (mode == HC_STORE_XX && !(*p && is_live(*p, now)))) {
        pthread_mutex_unlock(&sh->mu);
        free(e);
        return 0;
    }
    install(s, sh, p, e, now);
    sh->sets++;
    pthread_mutex_unlock(&sh->mu);
    return 1;
}

int hc_store_del(hc_store *s, const char *key, size_t kn, double now)
{
    uint64_t h64 = hash_key(s, key, kn);
    shard *sh = shard_of(s, h64);
    ent **p;
    int live = 0;
    pthread_mutex_lock(&sh->mu);
    p = find(sh, (uint32_t)h64, key, kn);
    if (*p) {
        live = is_live(*p, now);
        sh->invalidations++;
        drop_at(sh, p);
    }
    pthread_mutex_unlock(&sh->mu);
    return live;
}

int hc_store_expire(hc_store *s, const char *key, size_t kn, double expires, double now)
{
    uint64_t h64 = hash_key(s, key, kn);
    shard *sh = shard_of(s, h64);
    ent *e;
    int done = 0;
    pthread_mutex_lock(&sh->mu);
    e = *find(sh, (uint32_t)h64, key, kn);
    if (e && is_live(e, now)) {
        double window = e->expires ? e->stale_until - e->expires : 0;
        set_times(e, expires, expires + window);
        bump(sh);
        done = 1;
    }
    pthread_mutex_unlock(&sh->mu);
    return done;
}

/* ---- fills ----------------------------------------------------------------- */

uint64_t hc_store_fill_begin(hc_store *s, const char *key, size_t kn, double now)
{
    uint64_t h64, ticket;
    shard *sh;
    ent **p;
    if (!fits(s, kn, 0)) return 0;
    h64 = hash_key(s, key, kn);
    sh = shard_of(s, h64);
    ticket = new_stamp();
    pthread_mutex_lock(&sh->mu);
    p = find(sh, (uint32_t)h64, key, kn);
    if (*p == NULL) { /* a placeholder: no value, a miss */
        ent *e = ent_new((uint32_t)h64, key, kn, NULL, 0);
        if (e == NULL) {
            pthread_mutex_unlock(&sh->mu);
            return 0;
        }
        e->ticket = ticket;
        install(s, sh, p, e, now);
    } else {
        (*p)->ticket = ticket; /* a value stays readable (stale copies) */
    }
    pthread_mutex_unlock(&sh->mu);
    return ticket;
}

int hc_store_fill_end(hc_store *s, const char *key, size_t kn, uint64_t ticket, const char *val,
                      size_t vn, uint32_t flags, double expires, double stale_until, double now)
{
    uint64_t h64 = hash_key(s, key, kn);
    shard *sh = shard_of(s, h64);
    ent **p, *e = NULL;
    int large = !fits(s, kn, vn);
    if (ticket == 0) return 0;
    if (!large) {
        if ((e = ent_new((uint32_t)h64, key, kn, val, vn)) == NULL) {
            hc_store_fill_abort(s, key, kn, ticket);
            return -1;
        }
        e->flags = flags;
        set_times(e, expires, stale_until);
        e->stamp = new_stamp();
    }
    pthread_mutex_lock(&sh->mu);
    p = find(sh, (uint32_t)h64, key, kn);
    if (*p == NULL || (*p)->ticket != ticket) {
        sh->fills_cancelled++;
        pthread_mutex_unlock(&sh->mu);
        free(e);
        return 0;
    }
    if (large) {
        drop_at(sh, p); /* what it held is older than the value read */
        pthread_mutex_unlock(&sh->mu);
        return -1;
    }
    install(s, sh, p, e, now);
    sh->sets++;
    pthread_mutex_unlock(&sh->mu);
    return 1;
}

void hc_store_fill_abort(hc_store *s, const char *key, size_t kn, uint64_t ticket)
{
    uint64_t h64;
    shard *sh;
    ent **p;
    if (ticket == 0) return;
    h64 = hash_key(s, key, kn);
    sh = shard_of(s, h64);
    pthread_mutex_lock(&sh->mu);
    p = find(sh, (uint32_t)h64, key, kn);
    if (*p && (*p)->ticket == ticket) {
        if ((*p)->stamp == 0) drop_at(sh, p);
        else (*p)->ticket = 0;
    }
    pthread_mutex_unlock(&sh->mu);
}

/* ---- whole store ------------------------------------------------------- */

void hc_store_flush(hc_store *s)
{
    int i;
    for (i = 0; i < HC_STORE_SHARDS; i++) {
        shard *sh = &s->sh[i];
        ent **t;
        pthread_mutex_lock(&sh->mu);
        shard_empty(sh);
        bump(sh);
        if (sh->mask + 1 > TAB_MIN && (t = calloc(TAB_MIN, sizeof *t)) != NULL) {
            free(sh->tab);
            sh->tab = t;
            sh->mask = TAB_MIN - 1;
        } else {
            memset(sh->tab, 0, (sh->mask + 1) * sizeof *sh->tab);
        }
        ghost_clear(sh);
        if (i == 0) sh->flushes++;
        pthread_mutex_unlock(&sh->mu);
    }
}

void hc_store_each(hc_store *s, double now, hc_store_each_fn fn, void *ctx)
{
    int i;
    for (i = 0; i < HC_STORE_SHARDS; i++) {
        shard *sh = &s->sh[i];
        size_t b;
        int stop = 0;
        pthread_mutex_lock(&sh->mu);
        for (b = 0; b <= sh->mask && !stop; b++) {
            ent *e;
            for (e = sh->tab[b]; e && !stop; e = e->hnext) {
                hc_store_val v;
                if (!is_live(e, now)) continue;
                v.data = e->key + e->kn;
                v.len = e->vn;
                v.flags = e->flags;
                v.expires = e->expires;
                v.stale_until = e->stale_until;
                v.stamp = e->stamp;
                stop = fn(ctx, e->key, e->kn, &v);
            }
        }
        pthread_mutex_unlock(&sh->mu);
        if (stop) return;
    }
}

void hc_store_get_stats(hc_store *s, hc_store_stats *st)
{
    int i;
    memset(st, 0, sizeof *st);
    for (i = 0; i < HC_STORE_SHARDS; i++) {
        shard *sh = &s->sh[i];
        pthread_mutex_lock(&sh->mu);
        st->hits += sh->hits;
        st->misses += sh->misses;
        st->stale_hits += sh->stale_hits;
        st->sets += sh->sets;
        st->evictions += sh->evictions;
        st->expired += sh->expired;
        st->invalidations += sh->invalidations;
        st->flushes += sh->flushes;
        st->fills_cancelled += sh->fills_cancelled;
        st->bytes += sh->bytes;
        st->items += sh->items;
        pthread_mutex_unlock(&sh->mu);
    }
    st->max_bytes = s->max_bytes;
    st->max_items = s->max_items;
}

uint64_t hc_store_seq(hc_store *s, unsigned shard)
{
    return __atomic_load_n(&s->sh[shard % HC_STORE_SHARDS].seq, __ATOMIC_ACQUIRE);
}
