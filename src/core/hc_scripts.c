/* hc_scripts.c -- the Redis scripts (see hc_scripts.h, docs/DESIGN.md). */
#include "hc_scripts.h"

#include <string.h>

/*
 * WRITE: the one place where hicache changes what a value key holds, and
 * where tags are invalidated. Every item that touches a value key also
 * revokes the key's get_or_set lease (a fill computed before this write is
 * never stored after it) and, if there was one, wakes a waiter.
 * ARGV[1]: the wake-up list TTL (ms); then, item by item, the op and its
 * arguments; KEYS: item by item, the keys the op names:
 *   set    V lease wake | bytes px                   -> 1
 *   nx, xx V lease wake | bytes px known vis         -> 1 stored, 0 not,
 *          or the header of a tagged entry the caller must check first
 *          (nothing written): known, vis = that header and whether its
 *          tags are current, from an earlier answer ('' if none)
 *   del    V lease wake                              -> 0, 1, or the header
 *          of the deleted entry when it was tagged (visible or not?)
 *   incr   V lease wake | delta                      -> new value as a
 *          string (INCRBY's integer would pass through a Lua double and
 *          lose digits above 2^53), nil (no such key), or an error reply
 *   rename V lease wake V2 lease2 wake2              -> 0, 1, or the header
 *   fill   V lease wake epoch | lease-value epoch bytes px
 *          -> 1 stored; 0 the lease was revoked or the epoch moved on
 *   tag    tag-key                                   -> 1, 0
 * px '0': no expiry. A tagged entry is recognised from its first 12
 * bytes (hc_entry.h) and only then read further, up to its header.
 */
static const char write_src[] =
    "local wttl, k, a, out = ARGV[1], 1, 2, {}\n"
    "local function revoke(lease, wake)\n"
    "  if redis.call('UNLINK', lease) == 1 then\n"
    "    redis.call('RPUSH', wake, '1')\n"
    "    redis.call('PEXPIRE', wake, wttl)\n"
    "  end\n"
    "end\n"
    "local function tagged(key)\n"
    "  local h = redis.pcall('GETRANGE', key, 0, 11)\n"
    "  if type(h) ~= 'string' or #h < 12 or string.byte(h, 1) ~= 201 or string.byte(h, 6) ~= 72\n"
    "     or string.byte(h, 7) ~= 2 or math.floor(string.byte(h, 8) / 2) % 2 == 0 then return false end\n"
    "  local b1, b2, b3, b4 = string.byte(h, 9, 12)\n"
    "  return redis.call('GETRANGE', key, 0, 11 + ((b1 * 256 + b2) * 256 + b3) * 256 + b4)\n"
    "end\n"
    "local function put(key, bytes, px)\n"
    "  if px == '0' then redis.call('SET', key, bytes) else redis.call('SET', key, bytes, 'PX', px) end\n"
    "end\n"
    "while a <= #ARGV do\n"
    "  local op, r = ARGV[a], nil\n"
    "  if op == 'set' then\n"
    "    put(KEYS[k], ARGV[a + 1], ARGV[a + 2])\n"
    "    revoke(KEYS[k + 1], KEYS[k + 2])\n"
    "    r, k, a = 1, k + 3, a + 3\n"
    "  elseif op == 'nx' or op == 'xx' then\n"
    "    local e = 0\n"
    "    if redis.call('EXISTS', KEYS[k]) == 1 then\n"
    "      local h = tagged(KEYS[k])\n"
    "      if not h then e = 1\n"
    "      elseif h == ARGV[a + 3] then e = ARGV[a + 4] == '1' and 1 or 0\n"
    "      else e = h end\n"
    "    end\n"
    "    if type(e) == 'string' then r = e\n"
    "    else\n"
    "      r = ((op == 'nx') == (e == 0)) and 1 or 0\n"
    "      if r == 1 then put(KEYS[k], ARGV[a + 1], ARGV[a + 2]) end\n"
    "      revoke(KEYS[k + 1], KEYS[k + 2])\n"
    "    end\n"
    "    k, a = k + 3, a + 5\n"
    "  elseif op == 'del' then\n"
    "    local h = tagged(KEYS[k])\n"
    "    r = redis.call('UNLINK', KEYS[k])\n"
    "    if r == 1 and h then r = h end\n"
    "    revoke(KEYS[k + 1], KEYS[k + 2])\n"
    "    k, a = k + 3, a + 1\n"
    "  elseif op == 'incr' then\n"
    "    if redis.call('EXISTS', KEYS[k]) == 1 then r = redis.pcall('INCRBY', KEYS[k], ARGV[a + 1])\n"
    "      if type(r) == 'number' then r = redis.call('GET', KEYS[k]) end\n"
    "    else r = false end\n"
    "    revoke(KEYS[k + 1], KEYS[k + 2])\n"
    "    k, a = k + 3, a + 2\n"
    "  elseif op == 'rename' then\n"
    "    r = 0\n"
    "    if redis.call('EXISTS', KEYS[k]) == 1 then\n"
    "      r = tagged(KEYS[k]) or 1\n"
    "      redis.call('RENAME', KEYS[k], KEYS[k + 3])\n"
    "    end\n"
    "    revoke(KEYS[k + 1], KEYS[k + 2])\n"
    "    revoke(KEYS[k + 4], KEYS[k + 5])\n"
    "    k, a = k + 6, a + 1\n"
    "  elseif op == 'fill' then\n"
    "    r = 0\n"
    "    if redis.call('GET', KEYS[k + 1]) == ARGV[a + 1] then\n"
    "      redis.call('DEL', KEYS[k + 1])\n"
    "      redis.call('RPUSH', KEYS[k + 2], '1')\n"
    "      redis.call('PEXPIRE', KEYS[k + 2], wttl)\n"
    "      if redis.call('GET', KEYS[k + 3]) == ARGV[a + 2] then\n"
    "        put(KEYS[k], ARGV[a + 3], ARGV[a + 4])\n"
    "        r = 1\n"
    "      end\n"
    "    end\n"
    "    k, a = k + 4, a + 5\n"
    "  elseif op == 'tag' then\n"
    "    r, k, a = redis.call('UNLINK', KEYS[k]), k + 1, a + 1\n"
    "  else\n"
    "    return redis.error_reply('ERR hicache write: unknown op')\n"
    "  end\n"
    "  out[#out + 1] = r\n"
    "end\n"
    "return out\n";

/*
 * LEASE: a hit (the value key exists, unless ARGV[3] is '1': the caller
 * saw a value it cannot use), or the lease for this caller, or the PTTL of
 * the current lease. The lease holds "<epoch>:<token>": a lease taken
 * before clear() or delete_pattern() moved the namespace epoch on is
 * revoked, and the next caller takes it over. The epoch is created (with
 * ARGV[4]) when missing and lives ARGV[5] ms after its last use.
 * KEYS: V lease epoch  ARGV: token, lease ms, ignore, new epoch, epoch ttl
 * -> {1, epoch} | {2, epoch} (ours) | {3, pttl, epoch}
 */
static const char lease_src[] =
    "local e = redis.call('GET', KEYS[3])\n"
    "if e then redis.call('PEXPIRE', KEYS[3], ARGV[5])\n"
    "else e = ARGV[4]; redis.call('SET', KEYS[3], e, 'PX', ARGV[5]) end\n"
    "if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {1, e} end\n"
    "local cur = redis.call('GET', KEYS[2])\n"
    "if cur then\n"
    "  local i = string.find(cur, ':', 1, true)\n"
    "  if not i or string.sub(cur, 1, i - 1) == e then return {3, redis.call('PTTL', KEYS[2]), e} end\n"
    "end\n"
    "redis.call('SET', KEYS[2], e .. ':' .. ARGV[1], 'PX', ARGV[2])\n"
    "return {2, e}\n";

/* RELEASE: gives a lease (or a lock) back if it still holds our value,
 * and wakes a waiter. KEYS: lease wake  ARGV: value, wake ttl -> 1 | 0 */
static const char release_src[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('RPUSH', KEYS[2], '1')\n"
    "redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
    "return 1\n";

/* TAGS: the current token of each tag key. Mode 'p' creates a missing one
 * with the new token given; mode 'x' only extends. Either way an existing
 * key is made to live at least ms more (0: no expiry), so a tag key
 * outlives the entries that carry it.
 * KEYS: tag keys  ARGV: mode, ms, new token per key -> tokens (nil: none) */
static const char tags_src[] =
    "local out, ms = {}, tonumber(ARGV[2])\n"
    "for i = 1, #KEYS do\n"
    "  local t = redis.call('GET', KEYS[i])\n"
    "  if not t and ARGV[1] == 'p' then\n"
    "    t = ARGV[2 + i]\n"
    "    if ms > 0 then redis.call('SET', KEYS[i], t, 'PX', ms) else redis.call('SET', KEYS[i], t) end\n"
    "  elseif t then\n"
    "    if ms == 0 then redis.call('PERSIST', KEYS[i])\n"
    "    else\n"
    "      local p = redis.call('PTTL', KEYS[i])\n"
    "      if p >= 0 and p < ms then redis.call('PEXPIRE', KEYS[i], ms) end\n"
    "    end\n"
    "  end\n"
    "  out[i] = t or false\n"
    "end\n"
    "return out\n";

/* ACQUIRE: a lock in one round trip, with a fencing token that strictly
 * increases for each grant: max(last + 1, the server's time in µs), so a
 * fence counter lost with its data (restart, failover, eviction) does not
 * let fences go back while the server's clock does not. Exactness: the
 * script's numbers are doubles, exact for integers up to 2^53 (about
 * 9.007e15); a fence is the server's Unix time in µs (about 1.7e15, and
 * below 2^53 until the year 2255) plus the grants since, so f, the
 * '%.0f' stored and the integer reply {1, f} are all exact.
 * KEYS: lock fence  ARGV: token, ttl ms, fence ttl ms
 * -> {1, fence} | {0, pttl} */
static const char acquire_src[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  local t = redis.call('TIME')\n"
    "  local f = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1,\n"
    "                     tonumber(t[1]) * 1000000 + tonumber(t[2]))\n"
    "  redis.call('SET', KEYS[2], string.format('%.0f', f), 'PX', ARGV[3])\n"
    "  return {1, f}\n"
    "end\n"
    "return {0, redis.call('PTTL', KEYS[1])}\n";

/* EXTEND: while KEYS[1] holds our value, extends it by ttl ms on top of
 * what is left, or to exactly ttl (replace '1').
 * KEYS: key  ARGV: value, ttl ms, replace -> 1 | 0 */
static const char extend_src[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "local ms = tonumber(ARGV[2])\n"
    "if ARGV[3] == '0' then\n"
    "  local left = redis.call('PTTL', KEYS[1])\n"
    "  if left > 0 then ms = ms + left end\n"
    "end\n"
    "return redis.call('PEXPIRE', KEYS[1], ms)\n";

static const struct {
    const char *name;
    const char *src;
} scripts[HC_SCRIPTS] = {
    {"write", write_src},     {"lease", lease_src},     {"release", release_src},
    {"tags", tags_src},       {"acquire", acquire_src}, {"extend", extend_src},
};

const char *hc_script_source(int id)
{
    return scripts[id].src;
}

int hc_script_id(const char *name)
{
    int i;
    for (i = 0; i < HC_SCRIPTS; i++)
        if (strcmp(scripts[i].name, name) == 0) return i;
    return -1;
}

void hc_script_begin(hc_cmdb *b, const char *sha)
{
    hc_cmdb_add(b, "EVALSHA", 7);
    hc_cmdb_ref(b, sha, 40);
}
