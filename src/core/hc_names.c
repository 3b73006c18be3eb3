/* hc_names.c -- Redis key names (see hc_names.h). */
#include "hc_names.h"

#include <stdio.h>
#include <string.h>

static size_t put(char *buf, size_t at, const char *s, size_t n)
{
    memcpy(buf + at, s, n);
    return at + n;
}

size_t hc_name_namespace(char *buf, const char *prefix, size_t pn, long long version)
{
    size_t n = put(buf, 0, prefix, pn);
    n += (size_t)snprintf(buf + n, 24, ":%lld:", version);
    return n;
}

size_t hc_name_value(char *buf, const char *ns, size_t nsn, const char *key, size_t kn)
{
    return put(buf, put(buf, 0, ns, nsn), key, kn);
}

size_t hc_name_companion(char *buf, const char *prefix, size_t pn, const char *v, size_t vn,
                         const char *what, size_t wn)
{
    size_t n = 0;
    if (memchr(v, '{', vn) == NULL && memchr(v, '}', vn) == NULL) {
        buf[n++] = '{';
        n = put(buf, n, v, vn);
        n = put(buf, n, "}:", 2);
    } else {
        n = put(buf, n, prefix, pn);
        n = put(buf, n, ":h:", 3);
        n = put(buf, n, v, vn);
        buf[n++] = ':';
    }
    return put(buf, n, what, wn);
}

static size_t braced(char *buf, const char *prefix, size_t pn, const char *word, const char *s, size_t sn)
{
    size_t n = put(buf, 0, prefix, pn);
    n = put(buf, n, word, strlen(word));
    n = put(buf, n, s, sn);
    buf[n++] = '}';
    return n;
}

size_t hc_name_tag(char *buf, const char *prefix, size_t pn, const char *t, size_t tn)
{
    return braced(buf, prefix, pn, ":tag:{", t, tn);
}

size_t hc_name_lock(char *buf, const char *prefix, size_t pn, const char *l, size_t ln, const char *suffix)
{
    size_t n = braced(buf, prefix, pn, ":lock:{", l, ln);
    return put(buf, n, suffix, strlen(suffix));
}

size_t hc_name_scan_pattern(char *buf, const char *ns, size_t nsn, const char *pattern, size_t pn)
{
    size_t i, n = 0;
    for (i = 0; i < nsn; i++) {
        char c = ns[i];
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') buf[n++] = '\\';
        buf[n++] = c;
    }
    return put(buf, n, pattern, pn);
}
