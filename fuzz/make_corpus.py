#!/usr/bin/python3
"""Regenerate fuzz/corpus/, the seed corpus of fuzz/decode_fuzz.c.

Every seed is one selector byte (see decode_fuzz.c: bits 0-1 serializer
0 msgpack / 1 json / 2 raw, bit 2 tight limits, bit 3 compress on
re-encode, bit 4 Lua out-of-memory injection, bits 5-7 its budget) followed
by the bytes as stored in Redis.

Run with Debian's interpreter, which has python3-msgpack:
    /usr/bin/python3 fuzz/make_corpus.py
zstd seeds need the zstd command; without it they are skipped (warning).
The script owns fuzz/corpus/: it deletes what is there and rewrites it.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import msgpack

MSGPACK, JSON, RAW = 0x00, 0x01, 0x02
TIGHT, COMPRESS = 0x04, 0x08


def oom(budget):
    """Selector bits for out-of-memory injection, budget 0..7 (x 4 KiB + 4 KiB)."""
    return 0x10 | (budget << 5)


def mp(obj, **kw):
    return msgpack.packb(obj, use_bin_type=True, **kw)


def zstd(data, content_size=True):
    """A zstd frame of data, with or without the content size field."""
    exe = shutil.which("zstd")
    if exe is None:
        return None
    if content_size:  # compressing a file records its size in the frame
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            return subprocess.run([exe, "-q", "-19", "-c", f.name], check=True, stdout=subprocess.PIPE).stdout
    return subprocess.run([exe, "-q", "-c"], input=data, check=True, stdout=subprocess.PIPE).stdout


def zstd_header(content_size):
    """A bare zstd frame header: single segment, 8-byte content size, no block."""
    return b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", content_size)


def envelope(value, soft=None, tags=None, version=2, hlen=None):
    """An hicache envelope (docs/FORMAT.md) around the value bytes."""
    header = b""
    flags = 0
    if soft is not None:
        flags |= 1
        header += struct.pack(">qI", soft[0], soft[1])
    if tags:
        flags |= 2
        header += bytes([len(tags)])
        for name, token in tags:
            header += struct.pack(">H", len(name)) + name + bytes([len(token)]) + token
    h = len(header) if hlen is None else hlen
    body = bytes([version, flags]) + struct.pack(">I", h) + header + value
    return b"\xc9" + struct.pack(">I", len(body)) + b"\x48" + body


TAGS = [(b"org:7", b"00112233aabbccdd"), (b"user:42", b"0123456789abcdef")]

NESTED = {
    "user": {"id": 7, "name": "Zoë", "tags": ["a", "b", None], "active": True},
    "scores": [1, -1, 2.5, -0.0, 1e300],
    "empty_list": [],
    "empty_map": {},
    3: "int key",
    2.5: "float key",
    True: "bool key",
}

SEEDS = [
    # -- valid MessagePack --------------------------------------------------
    ("mp-nested", MSGPACK, mp(NESTED)),
    ("mp-str8", MSGPACK, mp("x" * 40)),
    ("mp-str16", MSGPACK, mp("é" * 200)),
    ("mp-bin8-bin16", MSGPACK, mp([b"\x00\xff\xfe", bytes(range(256)) * 2])),
    ("mp-invalid-utf8-str", MSGPACK, b"\xa3\xc3\x28\xff"),
    ("mp-floats", MSGPACK, mp([0.0, -0.0, 1.5, -2.25, 1e-310, float("inf"), float("-inf"), float("nan")])),
    ("mp-float32", MSGPACK, mp([1.5, 3.4e38, float("nan")], use_single_float=True)),
    ("mp-negative-ints", MSGPACK, mp([-1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63])),
    ("mp-uint-edges", MSGPACK, mp([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1])),
    ("mp-uint64-max", MSGPACK, mp(2**64 - 1)),
    ("mp-top-nil", MSGPACK, mp(None)),
    ("mp-map-keys-1-to-n", MSGPACK, mp({1: "a", 2: "b", 3: "c"})),
    ("mp-map16-array16-compress", MSGPACK | COMPRESS, mp([{str(i): i for i in range(20)}, list(range(20))])),
    # -- valid JSON ---------------------------------------------------------
    ("json-document", JSON,
     b'{"name":"x","list":[1,2.5,-3e10,true,false,null],"nested":{"a":{"b":[]}},"s":"\\u00e9\\ud83d\\ude00\\u0000"}'),
    ("json-numbers", JSON, b"[0, -0, 1.0, -0.0, 1e308, 5e-324, 9223372036854775807, -9223372036854775808]"),
    ("json-top-float", JSON, b"3.0"),
    ("json-deep-64", JSON, b"[" * 64 + b"]" * 64),
    ("json-deep-tight", JSON | TIGHT, b"[[[[]]]]"),  # max_depth 4: at the limit
    # -- decimal integer text (any serializer but raw) -----------------------
    ("int-42", MSGPACK, b"42"),
    ("int-min", MSGPACK, b"-9223372036854775808"),
    ("int-max", JSON, b"9223372036854775807"),
    ("int-over-max", MSGPACK, b"9223372036854775808"),
    # -- raw ------------------------------------------------------------------
    ("raw-bytes", RAW, b"\x00\x01binary\xff" + b"42"),
    # -- malicious ----------------------------------------------------------
    ("evil-array32-claim", MSGPACK, b"\xdd\xff\xff\xff\xff"),
    ("evil-map32-claim", MSGPACK, b"\xdf\xff\xff\xff\xff\x01"),
    ("evil-str32-claim", MSGPACK, b"\xdb\xff\xff\xff\xffabc"),
    ("evil-deep-1000", MSGPACK, b"\x91" * 1000 + b"\x00"),
    ("evil-truncated-float64", MSGPACK, b"\x92\x01\xcb\x3f\xf8\x00"),
    ("evil-truncated-float32", MSGPACK, b"\xca\x3f\xc0"),
    ("evil-ext-and-bad-keys", MSGPACK, b"\x82\xc0\x01\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x02"),
    ("evil-trailing-bytes", MSGPACK, b"\x01\x02"),
    ("evil-tight-elements", MSGPACK | TIGHT, mp(list(range(100)))),
    ("evil-json-deep-1000", JSON, b"[" * 1000 + b"]" * 1000),
    ("evil-zstd-huge-size", MSGPACK, zstd_header(2**40) + b"\x01\x00\x00"),
    ("evil-zstd-60mib-lie", JSON, zstd_header(60 << 20) + b"\x01\x00\x00"),
    # -- hicache envelopes (get_or_set metadata, tags) ----------------------
    ("env-soft", MSGPACK, envelope(mp({"a": 1}), soft=(1795393427000, 250))),
    ("env-tags", MSGPACK, envelope(mp(["x", 2]), tags=TAGS)),
    ("env-soft-tags-int", JSON, envelope(b"42", soft=(1795393427000, 3), tags=TAGS)),
    ("env-empty-value", MSGPACK, envelope(b"", tags=TAGS[:1])),
    ("evil-env-version-1", MSGPACK, envelope(mp(1), soft=(1, 1), version=1)),
    ("evil-env-hlen-lie", MSGPACK, envelope(mp(1), tags=TAGS, hlen=0xFFFFFFF0)),
    ("evil-env-truncated", MSGPACK, envelope(mp("v"), tags=TAGS)[:20]),
    ("evil-env-zero-tags", MSGPACK, b"\xc9\x00\x00\x00\x08\x48\x02\x02\x00\x00\x00\x01\x00\x01"),
    # -- out-of-memory injection ---------------------------------------------
    ("oom-msgpack", MSGPACK | oom(1), mp([{"k%d" % i: "v" * i} for i in range(60)])),
]

ZSTD_SEEDS = [
    ("zstd-msgpack", MSGPACK, lambda: zstd(mp([NESTED] * 20))),
    ("zstd-json", JSON, lambda: zstd(b'{"a":[' + b",".join(b"%d" % i for i in range(200)) + b"]}")),
    ("zstd-no-content-size", MSGPACK, lambda: zstd(mp(list(range(100))), content_size=False)),
    ("zstd-truncated", MSGPACK, lambda: zstd(mp(["abc" * 50] * 10))[:-9]),
    ("env-tags-zstd-value", MSGPACK, lambda: envelope(zstd(mp([NESTED] * 10)), soft=(1, 2), tags=TAGS)),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    seeds = list(SEEDS)
    if shutil.which("zstd") is None:
        print("make_corpus: zstd not found, skipping the zstd seeds", file=sys.stderr)
    else:
        seeds += [(name, sel, make()) for name, sel, make in ZSTD_SEEDS]
    for name, sel, body in seeds:
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes([sel]) + body)
    print("make_corpus: %d seeds in %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
