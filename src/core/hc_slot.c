/* hc_slot.c -- Redis Cluster key slots (see hc_slot.h). */
#include "hc_slot.h"

#include <pthread.h>
#include <string.h>

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis
 * Cluster's keyHashSlot uses; table built at first use. */
static unsigned short crc_table[256];
static char tags[HC_SLOTS][5];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static unsigned crc_raw(const char *buf, size_t len)
{
    unsigned crc = 0;
    size_t i;
    for (i = 0; i < len; i++)
        crc = ((crc << 8) ^ crc_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]) & 0xffff;
    return crc;
}

static void init_tables(void)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    int i, j, left = HC_SLOTS;
    unsigned n;
    for (i = 0; i < 256; i++) {
        unsigned c = (unsigned)i << 8;
        for (j = 0; j < 8; j++) c = (c & 0x8000) ? ((c << 1) ^ 0x1021) : (c << 1);
        crc_table[i] = (unsigned short)(c & 0xffff);
    }
    /* every string of 1..4 characters of the alphabet, in order: the first
     * (shortest) one that lands in a slot is its tag; 36^3 + 36^2 + 36 =
     * 47,988 strings cover all 16384 slots with 4 characters at most */
    for (n = 0; left > 0 && n < 36u * 36 * 36 * 36 + 36 * 36 * 36 + 36 * 36 + 36; n++) {
        char s[5];
        unsigned k = n, width = 1, span = 36;
        size_t len;
        int slot;
        while (k >= span) {
            k -= span;
            width++;
            span *= 36;
        }
        for (len = width; len > 0; len--) {
            s[len - 1] = alphabet[k % 36];
            k /= 36;
        }
        s[width] = '\0';
        slot = (int)(crc_raw(s, width) & (HC_SLOTS - 1));
        if (tags[slot][0] == '\0') {
            memcpy(tags[slot], s, width + 1);
            left--;
        }
    }
}

unsigned hc_crc16(const char *buf, size_t len)
{
    pthread_once(&once, init_tables);
    return crc_raw(buf, len);
}

int hc_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    pthread_once(&once, init_tables);
    if (open) {
        size_t start = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - start);
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - key);
        }
    }
    return (int)(crc_raw(key, len) & (HC_SLOTS - 1));
}

const char *hc_slot_tag(int slot)
{
    pthread_once(&once, init_tables);
    return tags[slot & (HC_SLOTS - 1)];
}
