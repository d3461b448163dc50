#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
"""Writes the hand-made edge cases into tests/fuzz/regressions/ (edge-*.gmtr).

Each is a recording in the real format (docs/recording-format.md), with valid checksums, that
sits on a boundary of the reader: zero or absurd record counts, columns that do not add up,
varints past 64 bits, fields out of range, an index that lies, metadata that is not what it
should be, unknown chunk types and kinds, extreme field values for the consumers. The fuzzer
replays them (test_fuzz_regressions_replay) beside whatever crashing inputs it ever found.
Run it (from anywhere) to regenerate them.
"""
import json
import os
import struct
import zlib

MAGIC = bytes([0x89, ord("G"), ord("M"), ord("T"), 13, 10, 0x1A, 10])


def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def header(meta, major=1, minor=0):
    text = json.dumps(meta).encode() if not isinstance(meta, bytes) else meta
    h = MAGIC + struct.pack("<HHBBBBIII", major, minor, 1, 0, 0, 0, len(text), crc(text), 0)
    return h + struct.pack("<I", crc(h)) + text


def chunk(seq, payload, nrec, raw_len=None, typ=1, enc=1, lo=0, hi=0):
    h = struct.pack("<IHHIIIIQQI", 0x4B434D47, typ, enc, seq, nrec,
                    len(payload) if raw_len is None else raw_len, len(payload), lo, hi,
                    crc(payload))
    return h + struct.pack("<I", crc(h)) + payload


def uv(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zz(d):
    d &= (1 << 64) - 1
    return ((d << 1) ^ (-(d >> 63) & ((1 << 64) - 1))) & ((1 << 64) - 1)


def columns(cols):
    return uv(len(cols)) + b"".join(uv(len(c)) + c for c in cols)


def encode(recs):
    """recs: dicts with kind flags sub order to_order result vm tid ino a b c ts."""
    cols = [bytearray() for _ in range(13)]
    ctx = {}
    prev_ts = 0
    for r in recs:
        x = ctx.setdefault(r["kind"] & 31, dict(vm=0, tid=0, ino=0, a=0, b=0, c=0))
        for i, k in enumerate(("kind", "flags", "sub", "order", "to_order")):
            cols[i] += uv(r[k])
        cols[5] += uv(zz(r["result"]))
        for i, k in enumerate(("vm", "tid", "ino", "a", "b", "c"), 6):
            cols[i] += uv(zz(r[k] - x[k]))
            x[k] = r[k]
        cols[12] += uv(zz(r["ts"] - prev_ts))
        prev_ts = r["ts"]
    return columns([bytes(c) for c in cols])


def rec(**kw):
    r = dict(kind=6, flags=0, sub=0, order=0, to_order=0, result=0, vm=1, tid=1, ino=7, a=0,
             b=1, c=0, ts=1000)
    r.update(kw)
    return r


def data(seq, recs):
    raw = encode(recs)
    ts = [r["ts"] for r in recs]
    return chunk(seq, zlib.compress(raw), len(recs), len(raw), lo=min(ts), hi=max(ts))


def trailer(offset_of_index, chunks, records, end=None):
    idx = json.dumps({"chunks": chunks, "records": records, "end": end}).encode()
    return idx, struct.pack("<QQI", offset_of_index, records, 0x4E454D47)


def finish(body_before_index, seq, chunks, records):
    idx, _ = trailer(0, chunks, records)
    off = len(body_before_index)
    c = chunk(seq, idx, 0, typ=2, enc=0)
    foot = struct.pack("<QQI", off, records, 0x4E454D47)
    return body_before_index + c + foot + struct.pack("<I", crc(foot))


META = {"format": {"name": "gmemtrace"}, "kinds": [{"kind": 99, "name": "from_the_future",
                                                    "size": 80}]}


OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")


def write(name, content):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(content)


def main():
    h = header(META)
    every = [rec(kind=k, sub=k % 9, order=255 if k % 2 else 18, to_order=0, a=(1 << 64) - 1,
                 b=(1 << 63) + k, c=(1 << 64) - 1, ts=1000 + k, vm=k % 3, tid=k,
                 result=-(1 << 31), flags=0xFFFF) for k in range(0, 40)]
    one = data(0, every)
    write("edge-every-kind-extreme-values.gmtr",
          finish(h + one, 1, [[len(h), len(every), 1000, 1039]], len(every)))
    # a data chunk that claims no records / a million records with a tiny payload
    write("edge-zero-records.gmtr", h + chunk(0, zlib.compress(columns([b""] * 13)), 0, 14))
    write("edge-million-records-tiny.gmtr",
          h + chunk(0, zlib.compress(columns([b"\x00"] * 13)), 1 << 20, 13 << 20))
    # columns: none, too many, one running past the end, one with bytes left over
    for name, raw in (("edge-no-columns", uv(0) + bytes(12)),
                      ("edge-1025-columns", uv(1025) + bytes(1025)),
                      ("edge-column-past-end", uv(13) + uv(200) + bytes(11)),
                      ("edge-column-leftover", columns([b"\x06\x06"] + [b"\x00"] * 12))):
        write(name + ".gmtr", h + chunk(0, zlib.compress(raw), 1, len(raw)))
    # a varint of 11 bytes, and one whose 10th byte overflows 64 bits
    for name, v in (("edge-varint-11-bytes", b"\x80" * 10 + b"\x01"),
                    ("edge-varint-overflow", b"\xff" * 9 + b"\x02")):
        raw = columns([v] + [b"\x00"] * 12)
        write(name + ".gmtr", h + chunk(0, zlib.compress(raw), 1, len(raw)))
    # vm that decodes past 32 bits; order past 8 bits; result past 32 bits
    for name, col, v in (("edge-vm-past-u32", 6, uv(zz(1 << 33))),
                         ("edge-order-past-u8", 3, uv(256)),
                         ("edge-result-past-s32", 5, uv(zz(1 << 40)))):
        cols = [b"\x06"] + [b"\x00"] * 12
        cols[col] = v
        raw = columns(cols)
        write(name + ".gmtr", h + chunk(0, zlib.compress(raw), 1, len(raw)))
    # inflate: garbage, a stream that ends early, one longer than declared
    write("edge-bad-deflate.gmtr", h + chunk(0, b"\x78\x9c" + b"\xff" * 40, 1, 100))
    z = zlib.compress(encode([rec()]))
    write("edge-deflate-short.gmtr", h + chunk(0, z[:-6], 1, len(encode([rec()]))))
    write("edge-deflate-long.gmtr", h + chunk(0, z, 1, 5))
    # the index lies: wrong offset, wrong count, bytes after the footer, a footer alone
    good = data(0, [rec()])
    write("edge-index-wrong-offset.gmtr", finish(h + good, 1, [[len(h) + 1, 1, 1000, 1000]], 1))
    write("edge-index-wrong-count.gmtr", finish(h + good, 1, [[len(h), 2, 1000, 1000]], 2))
    write("edge-after-footer.gmtr", finish(h + good, 1, [[len(h), 1, 1000, 1000]], 1) + b"x")
    write("edge-index-not-json.gmtr", h + good + chunk(1, b"{not json", 0, typ=2, enc=0))
    write("edge-index-chunks-not-array.gmtr",
          finish(h + good, 1, {"0": 1}, 1))
    # a chunk type from a newer minor, then the end of the file
    write("edge-unknown-chunk-type.gmtr", h + chunk(0, b"future", 0, typ=9, enc=3))
    # out-of-sequence chunk numbers; a chunk header pointing past the end
    write("edge-out-of-sequence.gmtr", h + data(5, [rec()]))
    write("edge-payload-past-end.gmtr", h + data(0, [rec()])[:60])
    # metadata that is not an object, is deeply nested, or has a probe table of the wrong shape
    write("edge-meta-array.gmtr", header(b"[1,2,3]"))
    write("edge-meta-deep.gmtr", header(b"[" * 5000 + b"]" * 5000))
    rows = [{"event": i, "tier": None, "state": [], "reason": "x" * 500} for i in range(100)]
    write("edge-probe-wrong-shape.gmtr",
          header({"probe": {"events": rows, "kernel": 5, "fentry_reason": {}}}) + good)
    write("edge-meta-not-json.gmtr", header(b"{\"a\": "))
    write("edge-newer-major.gmtr", header(META, major=7) + good)
    # conversions that never resume, resumes with no request, attributes with no request
    conv = [rec(kind=11, tid=5, a=1 << 32, b=4096, sub=1, c=3, ts=2000 + i) for i in range(300)]
    conv += [rec(kind=13, tid=6, ts=3000), rec(kind=12, tid=9, a=0, b=0, c=1 << 62, ts=3001)]
    write("edge-conversion-tangle.gmtr", h + data(0, conv))


if __name__ == "__main__":
    main()
