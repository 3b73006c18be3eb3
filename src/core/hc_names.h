/*
 * hc_names.h -- every Redis key name hicache writes or reads, in one place
 * (protocol core: no socket, no Lua). docs/FORMAT.md lists them.
 *
 * For a cache with prefix P and version n, the namespace is "P:n:" and:
 *
 *   value of key k      P:n:k                 (Django's make_key layout)
 *   companion of V      {V}:<what>            when V holds no '{' or '}'
 *                       P:h:V:<what>          otherwise
 *                       <what>: lease, wake (of a value key V); epoch and
 *                       epoch:<token> (of the namespace, V = "P:n:")
 *   tag t               P:tag:{t}
 *   lock l              P:lock:{l}, P:lock:{l}:fence, P:lock:{l}:wake
 *
 * No name of one kind can equal a name of another kind or a value key of
 * the same cache, whatever P, n and k are (docs/DESIGN.md gives the
 * argument): a value key starts with P followed by ':' and an integer;
 * "{V}:..." starts with '{' followed by P, which no string of the first
 * form can; the other internal names continue P with ':' and a word that
 * is not an integer (h, tag, lock). Within a kind, the name determines its
 * arguments (what, t and l carry no ':' at the places that matter).
 *
 * Cluster slots: a companion hashes like its value key when V holds no
 * brace (its tag is V itself) and when V holds a hash tag of its own in P
 * or in k (the form P:h:V:... keeps V's tag first). Lock keys share their
 * tag {l}. Tags and namespace epochs live in slots of their own.
 */
#ifndef HC_NAMES_H
#define HC_NAMES_H

#include <stddef.h>

#define HC_PREFIX_MAX 256
#define HC_KEY_MAX 1024
/* prefix ":" version ":" key */
#define HC_FULLKEY_MAX (HC_PREFIX_MAX + 1 + 20 + 1 + HC_KEY_MAX)
/* the longest name built from a full key: P:h:V:epoch:<token> */
#define HC_NAME_MAX (HC_PREFIX_MAX + 3 + HC_FULLKEY_MAX + 1 + 6 + 64)
/* the longest tag or lock name argument */
#define HC_TAG_MAX 1024

/* "P:n:" into buf (HC_PREFIX_MAX + 24 bytes); returns its length. */
size_t hc_name_namespace(char *buf, const char *prefix, size_t pn, long long version);

/* The value key: the namespace ns (see above) followed by the key. */
size_t hc_name_value(char *buf, const char *ns, size_t nsn, const char *key, size_t kn);

/* A companion of the value key (or namespace) v, named by what ("lease",
 * "wake", "epoch", "epoch:<token>"): into buf (HC_NAME_MAX bytes). */
size_t hc_name_companion(char *buf, const char *prefix, size_t pn, const char *v, size_t vn,
                         const char *what, size_t wn);

/* P:tag:{t} into buf (HC_PREFIX_MAX + HC_TAG_MAX + 8 bytes). */
size_t hc_name_tag(char *buf, const char *prefix, size_t pn, const char *t, size_t tn);

/* P:lock:{l}, and with suffix ":fence" / ":wake" (suffix may be ""). */
size_t hc_name_lock(char *buf, const char *prefix, size_t pn, const char *l, size_t ln, const char *suffix);

/* The SCAN MATCH pattern for the keys of namespace ns matching the glob
 * `pattern` inside it: ns glob-escaped, then pattern. buf must hold
 * 2 * nsn + pn bytes. */
size_t hc_name_scan_pattern(char *buf, const char *ns, size_t nsn, const char *pattern, size_t pn);

#endif
