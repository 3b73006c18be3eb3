/*
 * hc_seal.h -- encrypted values (docs/FORMAT.md, "Encrypted values").
 *
 * A sealed value is the codec's bytes (hc_encode: after compression),
 * encrypted and authenticated with libsodium's XChaCha20-Poly1305-IETF:
 *
 *     c1 'H' 'E' 01 <id length: u8, 1..32> <id> <nonce: 24 bytes> <ciphertext> <tag: 16 bytes>
 *
 * 0xc1 is the one byte MessagePack never uses (and no JSON text or UTF-8
 * starts with), so a sealed value is told from a plain one by its first
 * byte. The associated data is the sealed header (c1 .. id) followed by
 * the full Redis key: a value copied under another key, or relabelled
 * with another key id, does not open. The nonce is random (192 bits:
 * collisions are not a concern at any write rate).
 *
 * A keyring holds up to HC_SEAL_KEYS keys; the first one seals, every one
 * opens (rotation: put the new key first, keep the old ones until their
 * values expired). Key bytes live in sodium_malloc'd memory (guard pages,
 * mlock'd where allowed, zeroed when freed) and never appear in an error
 * message. A keyring is immutable once built: threads may share it.
 *
 * Beside the keyring, a process-wide registry of the key families that
 * keys.define declared encrypted (mutex-protected).
 */
#ifndef HC_SEAL_H
#define HC_SEAL_H

#include <stddef.h>

#include "hc_buf.h"

#define HC_SEAL_KEYS 16
#define HC_SEAL_KEYLEN 32      /* bytes of a key                      */
#define HC_SEAL_IDMAX 32       /* bytes of a key id                   */
#define HC_SEAL_NONCE 24
#define HC_SEAL_TAG 16
#define HC_SEAL_FIXED 5        /* c1 'H' 'E' 01 <id length>           */
#define HC_SEAL_ERRLEN 128

typedef struct hc_keyring hc_keyring;

/* A new empty keyring, or NULL (out of memory, or libsodium failed). */
hc_keyring *hc_keyring_new(void);

/* Adds a key (id: 1..32 printable ASCII characters, unique; key: 32
 * bytes). 0, or -1 with err (which never quotes the key). */
int hc_keyring_add(hc_keyring *r, const char *id, size_t idn, const unsigned char *key, size_t keyn, char *err,
                   size_t errlen);

int hc_keyring_count(const hc_keyring *r);

/* Zeroes and frees. NULL is fine. */
void hc_keyring_free(hc_keyring *r);

/* 1 when p[0..n) starts like a sealed value (its first byte and magic). */
int hc_sealed(const char *p, size_t n);

/* The key id of a sealed value, or -1 (corrupt). */
int hc_sealed_id(const char *p, size_t n, const char **id, size_t *idn);

/* Appends the sealing of plain[0..pn) under the Redis key ad[0..adn) to
 * out, with the first key of r and the given nonce (HC_SEAL_NONCE bytes;
 * NULL: fresh random ones -- an operation driven from outside passes the
 * same random bytes on every run, hc_xio.h). 0, or -1 (out of memory, or
 * past out's size limit). */
int hc_seal(const hc_keyring *r, const char *ad, size_t adn, const char *plain, size_t pn,
            const unsigned char *nonce, hc_buf *out);

/* Opens the sealed value p[0..n) stored under the Redis key ad[0..adn).
 * 0 with *plain (malloc'd, the caller frees) and *pn; -1 with err:
 * "corrupt sealed value", "unknown key id 'k0'", "authentication failed"
 * (tampered, moved to another key, or a different key under that id),
 * "out of memory". r may be NULL ("no encryption keys"). */
int hc_open(const hc_keyring *r, const char *ad, size_t adn, const char *p, size_t n, char **plain, size_t *pn,
            char *err, size_t errlen);

/* The process-wide registry of families declared encrypted (keys.define
 * with encrypt = true). A family is 1..HC_SEAL_FAMMAX bytes. Register:
 * 0, or -1 when the registry is full (HC_SEAL_FAMILIES). */
#define HC_SEAL_FAMMAX 63
#define HC_SEAL_FAMILIES 256
int hc_seal_family_register(const char *f, size_t fn);
int hc_seal_family_registered(const char *f, size_t fn);
/* 1 once any family was registered (a lock-free test for the hot path). */
int hc_seal_family_any(void);

#endif
