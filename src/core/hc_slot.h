/*
 * hc_slot.h -- protocol core: Redis Cluster key slots. No socket.
 *
 * A key's slot is CRC16 (XMODEM) of the key mod 16384, or of its hash tag:
 * the bytes between the first '{' and the first '}' after it, when that is
 * not empty (Redis's rule, "Hash tags" in the cluster specification).
 *
 * hc_slot_tag gives, for any slot, a short name (at most 4 bytes, from
 * [0-9a-z]) whose slot it is: "{<tag>}..." lands a key in that slot. The
 * table is computed once per process (pthread_once) and is read-only after.
 */
#ifndef HC_SLOT_H
#define HC_SLOT_H

#include <stddef.h>

#define HC_SLOTS 16384

unsigned hc_crc16(const char *buf, size_t len);

/* The slot of a key (hash tags honoured). */
int hc_slot(const char *key, size_t len);

/* A string (NUL-terminated, at most 4 bytes) whose slot is `slot`. */
const char *hc_slot_tag(int slot);

#endif
