/* hc_seal.c -- sealing values with XChaCha20-Poly1305 (hc_seal.h). */
#include "hc_seal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

typedef struct seal_key {
    unsigned char key[HC_SEAL_KEYLEN];
    char id[HC_SEAL_IDMAX + 1];
    unsigned char idn;
} seal_key;

struct hc_keyring {
    int n;
    seal_key k[HC_SEAL_KEYS];
};

static const unsigned char MAGIC[4] = {0xc1, 'H', 'E', 0x01};

hc_keyring *hc_keyring_new(void)
{
    hc_keyring *r;
    if (sodium_init() < 0) return NULL;
    r = (hc_keyring *)sodium_malloc(sizeof *r); /* guard pages; mlock'd where allowed */
    if (r == NULL) return NULL;
    sodium_memzero(r, sizeof *r);
    return r;
}

void hc_keyring_free(hc_keyring *r)
{
    if (r) sodium_free(r); /* zeroes before freeing */
}

int hc_keyring_count(const hc_keyring *r) { return r ? r->n : 0; }

int hc_keyring_add(hc_keyring *r, const char *id, size_t idn, const unsigned char *key, size_t keyn, char *err,
                   size_t errlen)
{
    size_t i;
    int j;
    if (r->n == HC_SEAL_KEYS) {
        snprintf(err, errlen, "at most %d keys", HC_SEAL_KEYS);
        return -1;
    }
    if (idn == 0 || idn > HC_SEAL_IDMAX) {
        snprintf(err, errlen, "a key id must be 1 to %d characters", HC_SEAL_IDMAX);
        return -1;
    }
    for (i = 0; i < idn; i++)
        if (id[i] <= ' ' || id[i] > '~') {
            snprintf(err, errlen, "a key id must be printable ASCII without spaces");
            return -1;
        }
    for (j = 0; j < r->n; j++)
        if (r->k[j].idn == idn && memcmp(r->k[j].id, id, idn) == 0) {
            snprintf(err, errlen, "key id '%.*s' given twice", (int)idn, id);
            return -1;
        }
    if (keyn != HC_SEAL_KEYLEN) { /* the length only: never the bytes */
        snprintf(err, errlen, "key '%.*s' must be %d bytes, got %zu", (int)idn, id, HC_SEAL_KEYLEN, keyn);
        return -1;
    }
    memcpy(r->k[r->n].key, key, HC_SEAL_KEYLEN);
    memcpy(r->k[r->n].id, id, idn);
    r->k[r->n].id[idn] = '\0';
    r->k[r->n].idn = (unsigned char)idn;
    r->n++;
    return 0;
}

int hc_sealed(const char *p, size_t n)
{
    return n >= HC_SEAL_FIXED && memcmp(p, MAGIC, sizeof MAGIC) == 0;
}

int hc_sealed_id(const char *p, size_t n, const char **id, size_t *idn)
{
    size_t in;
    if (!hc_sealed(p, n)) return -1;
    in = (unsigned char)p[4];
    if (in == 0 || in > HC_SEAL_IDMAX || n < HC_SEAL_FIXED + in + HC_SEAL_NONCE + HC_SEAL_TAG) return -1;
    *id = p + HC_SEAL_FIXED;
    *idn = in;
    return 0;
}

/* The associated data: the sealed header, then the Redis key. Into buf
 * when it fits, else a malloc'd copy (*heap, the caller frees). */
static unsigned char *make_ad(const char *hdr, size_t hn, const char *key, size_t kn, unsigned char *buf,
                              size_t bufn, unsigned char **heap)
{
    unsigned char *ad = buf;
    *heap = NULL;
    if (hn + kn > bufn) {
        ad = *heap = (unsigned char *)malloc(hn + kn);
        if (ad == NULL) return NULL;
    }
    memcpy(ad, hdr, hn);
    if (kn) memcpy(ad + hn, key, kn);
    return ad;
}

int hc_seal(const hc_keyring *r, const char *key, size_t kn, const char *plain, size_t pn,
            const unsigned char *nonce_in, hc_buf *out)
{
    unsigned char abuf[2048], *heap, *ad, *c;
    const seal_key *k = &r->k[0];
    size_t start = out->len, hn = HC_SEAL_FIXED + k->idn;
    unsigned long long clen;
    char hdr[HC_SEAL_FIXED + HC_SEAL_IDMAX];
    unsigned char nonce[HC_SEAL_NONCE];
    int rc;
    if (r->n == 0 || pn > ((size_t)-1) / 2) return -1;
    memcpy(hdr, MAGIC, sizeof MAGIC);
    hdr[4] = (char)k->idn;
    memcpy(hdr + HC_SEAL_FIXED, k->id, k->idn);
    if (nonce_in) memcpy(nonce, nonce_in, sizeof nonce);
    else randombytes_buf(nonce, sizeof nonce);
    c = (unsigned char *)malloc(pn + HC_SEAL_TAG);
    ad = c ? make_ad(hdr, hn, key, kn, abuf, sizeof abuf, &heap) : NULL;
    if (ad == NULL) {
        free(c);
        out->oom = 1;
        return -1;
    }
    crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen, (const unsigned char *)plain, pn, ad, hn + kn, NULL,
                                               nonce, k->key);
    free(heap);
    rc = hc_buf_append(out, hdr, hn) != 0 || hc_buf_append(out, nonce, sizeof nonce) != 0 ||
         hc_buf_append(out, c, (size_t)clen) != 0;
    free(c);
    if (rc) {
        out->len = start;
        return -1;
    }
    return 0;
}

int hc_open(const hc_keyring *r, const char *key, size_t kn, const char *p, size_t n, char **plain, size_t *pn,
            char *err, size_t errlen)
{
    const char *id;
    size_t idn, hn, cn;
    unsigned char abuf[2048], *heap, *ad;
    unsigned long long mlen;
    const seal_key *k = NULL;
    char *m;
    int i, rc;
    *plain = NULL;
    *pn = 0;
    if (hc_sealed_id(p, n, &id, &idn) != 0) {
        snprintf(err, errlen, "corrupt sealed value");
        return -1;
    }
    if (r == NULL || r->n == 0) {
        snprintf(err, errlen, "no encryption keys");
        return -1;
    }
    for (i = 0; i < r->n && k == NULL; i++)
        if (r->k[i].idn == idn && memcmp(r->k[i].id, id, idn) == 0) k = &r->k[i];
    if (k == NULL) {
        char shown[HC_SEAL_IDMAX + 1];
        size_t j;
        for (j = 0; j < idn; j++) shown[j] = id[j] > ' ' && id[j] <= '~' ? id[j] : '?';
        shown[idn] = '\0';
        snprintf(err, errlen, "unknown key id '%s'", shown);
        return -1;
    }
    hn = HC_SEAL_FIXED + idn;
    cn = n - hn - HC_SEAL_NONCE;
    m = (char *)malloc(cn - HC_SEAL_TAG + 1);
    ad = m ? make_ad(p, hn, key, kn, abuf, sizeof abuf, &heap) : NULL;
    if (ad == NULL) {
        free(m);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)m, &mlen, NULL,
                                                    (const unsigned char *)p + hn + HC_SEAL_NONCE, cn, ad, hn + kn,
                                                    (const unsigned char *)p + hn, k->key);
    free(heap);
    if (rc != 0) {
        free(m);
        snprintf(err, errlen, "authentication failed");
        return -1;
    }
    *plain = m;
    *pn = (size_t)mlen;
    return 0;
}

/* ---- the families keys.define declared encrypted --------------------------- */

static pthread_mutex_t fam_mu = PTHREAD_MUTEX_INITIALIZER;
static char fam_name[HC_SEAL_FAMILIES][HC_SEAL_FAMMAX + 1];
static unsigned char fam_len[HC_SEAL_FAMILIES];
static int fam_n; /* read without the lock as a fast "none" test: only grows */

static int fam_find(const char *f, size_t fn)
{
    int i;
    for (i = 0; i < fam_n; i++)
        if (fam_len[i] == fn && memcmp(fam_name[i], f, fn) == 0) return i;
    return -1;
}

int hc_seal_family_register(const char *f, size_t fn)
{
    int rc = 0;
    if (fn == 0 || fn > HC_SEAL_FAMMAX) return -1;
    pthread_mutex_lock(&fam_mu);
    if (fam_find(f, fn) < 0) {
        if (fam_n == HC_SEAL_FAMILIES) {
            rc = -1;
        } else {
            memcpy(fam_name[fam_n], f, fn);
            fam_len[fam_n] = (unsigned char)fn;
            __atomic_store_n(&fam_n, fam_n + 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&fam_mu);
    return rc;
}

int hc_seal_family_any(void)
{
    return __atomic_load_n(&fam_n, __ATOMIC_ACQUIRE) > 0;
}

int hc_seal_family_registered(const char *f, size_t fn)
{
    int found;
    if (__atomic_load_n(&fam_n, __ATOMIC_ACQUIRE) == 0 || fn == 0 || fn > HC_SEAL_FAMMAX) return 0;
    pthread_mutex_lock(&fam_mu);
    found = fam_find(f, fn) >= 0;
    pthread_mutex_unlock(&fam_mu);
    return found;
}
