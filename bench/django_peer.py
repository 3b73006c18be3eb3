"""bench/django_peer.py -- the django-redis side of `make bench`.

  python3 django_peer.py lock N          -> "ops=<acquire+release per s> cmds=<redis commands per op>"
  python3 django_peer.py coldkey P KEY   -> P processes call cache.get_or_set(KEY) at once;
                                            prints "computations=.. p50=..ms p99=..ms cmds=.."
Uses django-redis with its msgpack serializer on HICACHE_TEST_HOST/PORT.
"""
import multiprocessing as mp
import os
import sys
import time

import django
from django.conf import settings

HOST = os.environ["HICACHE_TEST_HOST"]
PORT = int(os.environ["HICACHE_TEST_PORT"])
settings.configure(CACHES={"default": {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": f"redis://{HOST}:{PORT}/0",
    "KEY_PREFIX": "djbench",
    "OPTIONS": {"SERIALIZER": "django_redis.serializers.msgpack.MSGPackSerializer"},
}})
django.setup()
from django.core.cache import cache  # noqa: E402
import redis  # noqa: E402

raw = redis.Redis(host=HOST, port=PORT)


def commands():
    return int(raw.info("stats")["total_commands_processed"])


def bench_lock(n):
    cache.set("warm", 1)
    before = commands()
    t0 = time.perf_counter()
    for _ in range(n):
        lock = cache.lock("benchlock", timeout=10)
        lock.acquire(blocking=True)
        lock.release()
    dt = time.perf_counter() - t0
    used = commands() - before - 1
    print(f"ops={n / dt:.0f} cmds={used / n:.2f}")


def worker(key, go, out):
    from django.core.cache import cache as c  # a connection per process
    c.get("warm")
    go.wait()
    t0 = time.perf_counter()

    def compute():
        redis.Redis(host=HOST, port=PORT).incr("djbench:computations")
        time.sleep(0.2)
        return {"id": 42, "name": "Ada"}

    c.get_or_set(key, compute, 300)
    out.put(time.perf_counter() - t0)


def bench_coldkey(procs, key):
    cache.delete(key)
    raw.delete("djbench:computations")
    go = mp.Event()
    out = mp.Queue()
    ps = [mp.Process(target=worker, args=(key, go, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(1.0)  # let every process connect
    before = commands()
    go.set()
    lat = sorted(out.get() for _ in ps)
    for p in ps:
        p.join()
    used = commands() - before - 1
    comps = int(raw.get("djbench:computations") or 0)
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    print(f"computations={comps} p50={p50:.1f} p99={p99:.1f} cmds={used}")
    cache.delete(key)


if __name__ == "__main__":
    if sys.argv[1] == "lock":
        bench_lock(int(sys.argv[2]))
    else:
        bench_coldkey(int(sys.argv[2]), sys.argv[3])
