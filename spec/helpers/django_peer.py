#!/usr/bin/python3
"""django_peer.py -- the Django side of spec/django_spec.lua.

Django's cache framework with django-redis and its msgpack serializer, on
the test Redis (HICACHE_TEST_HOST / HICACHE_TEST_PORT), KEY_PREFIX "dj",
VERSION 1: the same key layout (dj:1:key) as hicache{prefix="dj", version=1}.

Usage (run with the system python3, which has python3-django-redis):
  django_peer.py write           writes VALUES under interop:py:<name>
  django_peer.py check           reads interop:lua:<name> (written by Lua) and
                                 compares with VALUES, strictly (types too);
                                 prints "MISMATCH ..." per difference and
                                 exits 1 on any, else prints "checked N"
  django_peer.py names           prints the names of VALUES, one a line
  django_peer.py set-int KEY N   cache.set(KEY, int(N), timeout=None)
  django_peer.py incr KEY DELTA  prints cache.incr(KEY, int(DELTA))
  django_peer.py get KEY         prints type name and repr of cache.get(KEY),
                                 or "<miss>"
"""
import os
import sys

import django
from django.conf import settings

HOST = os.environ["HICACHE_TEST_HOST"]
PORT = os.environ["HICACHE_TEST_PORT"]

settings.configure(
    CACHES={
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{HOST}:{PORT}/0",
            "KEY_PREFIX": "dj",
            "VERSION": 1,
            "OPTIONS": {"SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer"},
        }
    }
)
django.setup()

from django.core.cache import cache  # noqa: E402  (needs settings first)

# The values both sides write; spec/django_spec.lua has the Lua equivalents.
VALUES = {
    "str_ascii": "hello, world",
    "str_utf8": "h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001f389",
    "str_empty": "",
    "bytes": b"\xff\x00\xfe raw",
    "int_pos": 42,
    "int_neg": -7,
    "int_zero": 0,
    "int_2_62": 2**62,
    "float_1_5": 1.5,
    "float_neg": -0.25,
    "float_1e300": 1e300,
    "float_integral": 2.0,
    "true": True,
    "false": False,
    "none": None,
    "nested": {"a": [1, 2, {"b": "c"}], "n": None},
    "list": [1, "two", 3.5, None, True, -(2**40)],
    "empty_dict": {},
}

MISS = object()


def same(a, b):
    """Strict deep equality: True != 1, 2.0 != 2, b"x" != "x", [] != {}."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def raw(key):
    """The stored bytes of a cache key, for mismatch reports."""
    client = cache.client.get_client(write=False)
    return client.get(cache.make_key(key))


def write():
    for name, value in VALUES.items():
        cache.set(f"interop:py:{name}", value, timeout=None)
    print(f"wrote {len(VALUES)}")
    return 0


def check():
    bad = 0
    for name, want in VALUES.items():
        key = f"interop:lua:{name}"
        got = cache.get(key, MISS)
        if got is MISS:
            print(f"MISMATCH {name}: missing (key {cache.make_key(key)})")
            bad += 1
        elif not same(want, got):
            print(f"MISMATCH {name}: want {type(want).__name__} {want!r}, "
                  f"got {type(got).__name__} {got!r} (stored {raw(key)!r})")
            bad += 1
    if bad:
        return 1
    print(f"checked {len(VALUES)}")
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "write" and len(argv) == 2:
        return write()
    if cmd == "check" and len(argv) == 2:
        return check()
    if cmd == "names" and len(argv) == 2:
        print("\n".join(VALUES))
        return 0
    if cmd == "set-int" and len(argv) == 4:
        cache.set(argv[2], int(argv[3]), timeout=None)
        return 0
    if cmd == "incr" and len(argv) == 4:
        print(cache.incr(argv[2], int(argv[3])))
        return 0
    if cmd == "get" and len(argv) == 3:
        got = cache.get(argv[2], MISS)
        print("<miss>" if got is MISS else f"{type(got).__name__} {got!r}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
