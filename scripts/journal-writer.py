#!/usr/bin/env python3
"""Writes a small systemd journal file (the on-disk format read by sd_journal_*).

Usage: journal-writer.py SPEC.json OUT.journal

SPEC is a JSON array of entries, or an object {"file_id": HEX32, "boot_id": HEX32,
"entries": [...]} (files read together need distinct ids, or libsystemd takes their entries
for the same ones). An entry is
  {"realtime": 1700000000000000, "monotonic": 1000000, "fields": [ITEM, ...]}
where ITEM is "NAME=value" (UTF-8), {"hex": "4e414d453d00ff"} for raw bytes, or
{"name": "BIG", "repeat": "x", "count": 70000} for a large field.

The file is uncompressed, not sealed, with Jenkins hashes (no keyed-hash flag), as
journald wrote before systemd 246; every libsystemd since then still reads it. Entry
items are ordered by data object offset, as journald orders them, so readers see the
fields in first-seen order. Output is deterministic: the same SPEC gives the same bytes.
"""

import json
import struct
import sys

MASK = 0xFFFFFFFF

FILE_ID = bytes.fromhex("5e1f0d3c9a7b4e21a0c3d5e7f9b1c2d4")
MACHINE_ID = bytes.fromhex("fedcba9876543210fedcba9876543210")
BOOT_ID = bytes.fromhex("0123456789abcdef0123456789abcdef")

OBJECT_DATA, OBJECT_FIELD, OBJECT_ENTRY = 1, 2, 3
OBJECT_DATA_HASH_TABLE, OBJECT_FIELD_HASH_TABLE, OBJECT_ENTRY_ARRAY = 4, 5, 6

HEADER_SIZE = 256
DATA_BUCKETS = 127
FIELD_BUCKETS = 31


def rot(x, k):
    return ((x << k) | (x >> (32 - k))) & MASK


def hashlittle2(data):
    """Bob Jenkins' lookup3 hashlittle2 with both seeds 0; returns (c, b)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length) & MASK
    if length == 0:
        return c, b
    k = data
    while length > 12:
        a = (a + struct.unpack_from("<I", k, 0)[0]) & MASK
        b = (b + struct.unpack_from("<I", k, 4)[0]) & MASK
        c = (c + struct.unpack_from("<I", k, 8)[0]) & MASK
        a = (a - c) & MASK; a ^= rot(c, 4); c = (c + b) & MASK
        b = (b - a) & MASK; b ^= rot(a, 6); a = (a + c) & MASK
        c = (c - b) & MASK; c ^= rot(b, 8); b = (b + a) & MASK
        a = (a - c) & MASK; a ^= rot(c, 16); c = (c + b) & MASK
        b = (b - a) & MASK; b ^= rot(a, 19); a = (a + c) & MASK
        c = (c - b) & MASK; c ^= rot(b, 4); b = (b + a) & MASK
        length -= 12
        k = k[12:]
    tail = k + b"\0" * (12 - length)
    a = (a + struct.unpack_from("<I", tail, 0)[0]) & MASK
    b = (b + struct.unpack_from("<I", tail, 4)[0]) & MASK
    c = (c + struct.unpack_from("<I", tail, 8)[0]) & MASK
    c ^= b; c = (c - rot(b, 14)) & MASK
    a ^= c; a = (a - rot(c, 11)) & MASK
    b ^= a; b = (b - rot(a, 25)) & MASK
    c ^= b; c = (c - rot(b, 16)) & MASK
    a ^= c; a = (a - rot(c, 4)) & MASK
    b ^= a; b = (b - rot(a, 14)) & MASK
    c ^= b; c = (c - rot(b, 24)) & MASK
    return c, b


def jenkins64(data):
    c, b = hashlittle2(data)
    return (c << 32) | b


def align8(n):
    return (n + 7) & ~7


def item_bytes(item):
    if isinstance(item, str):
        return item.encode("utf-8")
    if "hex" in item:
        return bytes.fromhex(item["hex"])
    return item["name"].encode() + b"=" + (item["repeat"] * item["count"]).encode()


class Writer:
    def __init__(self, file_id=FILE_ID, boot_id=BOOT_ID):
        self.file_id = file_id
        self.boot_id = boot_id
        self.objects = []  # [offset, type, payload-builder]
        self.offset = HEADER_SIZE
        self.data = {}  # bytes -> dict
        self.fields = {}  # name -> dict
        self.data_order = []
        self.field_order = []
        self.entries = []

    def alloc(self, size):
        off = self.offset
        self.offset = align8(off + size)
        return off

    def add_data(self, payload):
        d = self.data.get(payload)
        if d is not None:
            return d
        eq = payload.find(b"=")
        name = payload[:eq] if eq > 0 else None
        if name is not None and name not in self.fields:
            f = {"name": name, "hash": jenkins64(name), "offset": self.alloc(40 + len(name)), "datas": []}
            self.fields[name] = f
            self.field_order.append(f)
        d = {"payload": payload, "hash": jenkins64(payload), "offset": self.alloc(64 + len(payload)),
             "entries": [], "field": name}
        if name is not None:
            self.fields[name]["datas"].append(d)
        self.data[payload] = d
        self.data_order.append(d)
        return d

    def add_entry(self, spec, seqnum):
        datas = []
        for item in spec["fields"]:
            d = self.add_data(item_bytes(item))
            if d not in datas:
                datas.append(d)
        datas.sort(key=lambda d: d["offset"])
        e = {"seqnum": seqnum, "realtime": spec["realtime"],
             "monotonic": spec.get("monotonic", seqnum * 1000000), "datas": datas,
             "offset": self.alloc(64 + 16 * len(datas))}
        xor = 0
        for d in datas:
            xor ^= d["hash"]
            d["entries"].append(e)
        e["xor"] = xor
        self.entries.append(e)

    def build(self, specs):
        self.data_ht = self.alloc(16 + 16 * DATA_BUCKETS)
        self.field_ht = self.alloc(16 + 16 * FIELD_BUCKETS)
        for i, spec in enumerate(specs):
            self.add_entry(spec, i + 1)
        # Entry arrays: one per data object referenced more than once, then the global one.
        n_arrays = 0
        for d in self.data_order:
            rest = d["entries"][1:]
            d["array"] = self.alloc(24 + 8 * len(rest)) if rest else 0
            n_arrays += 1 if rest else 0
        self.global_array = self.alloc(24 + 8 * len(self.entries)) if self.entries else 0
        n_arrays += 1 if self.entries else 0
        out = bytearray(self.offset)
        n_objects = 2

        def obj(off, typ, size):
            struct.pack_into("<BB6xQ", out, off, typ, 0, size)

        # Hash tables.
        data_buckets = [[] for _ in range(DATA_BUCKETS)]
        for d in self.data_order:
            data_buckets[d["hash"] % DATA_BUCKETS].append(d)
        field_buckets = [[] for _ in range(FIELD_BUCKETS)]
        for f in self.field_order:
            field_buckets[f["hash"] % FIELD_BUCKETS].append(f)
        obj(self.data_ht, OBJECT_DATA_HASH_TABLE, 16 + 16 * DATA_BUCKETS)
        for i, chain in enumerate(data_buckets):
            if chain:
                struct.pack_into("<QQ", out, self.data_ht + 16 + 16 * i, chain[0]["offset"], chain[-1]["offset"])
            for x, y in zip(chain, chain[1:]):
                x["next_hash"] = y["offset"]
        obj(self.field_ht, OBJECT_FIELD_HASH_TABLE, 16 + 16 * FIELD_BUCKETS)
        for i, chain in enumerate(field_buckets):
            if chain:
                struct.pack_into("<QQ", out, self.field_ht + 16 + 16 * i, chain[0]["offset"], chain[-1]["offset"])
            for x, y in zip(chain, chain[1:]):
                x["next_hash"] = y["offset"]
        for f in self.field_order:
            obj(f["offset"], OBJECT_FIELD, 40 + len(f["name"]))
            struct.pack_into("<QQQ", out, f["offset"] + 16, f["hash"], f.get("next_hash", 0),
                             f["datas"][0]["offset"])
            out[f["offset"] + 40:f["offset"] + 40 + len(f["name"])] = f["name"]
            for x, y in zip(f["datas"], f["datas"][1:]):
                x["next_field"] = y["offset"]
            n_objects += 1
        for d in self.data_order:
            p = d["payload"]
            obj(d["offset"], OBJECT_DATA, 64 + len(p))
            first = d["entries"][0]["offset"] if d["entries"] else 0
            struct.pack_into("<QQQQQQ", out, d["offset"] + 16, d["hash"], d.get("next_hash", 0),
                             d.get("next_field", 0), first, d["array"], len(d["entries"]))
            out[d["offset"] + 64:d["offset"] + 64 + len(p)] = p
            n_objects += 1
            if d["array"]:
                rest = d["entries"][1:]
                obj(d["array"], OBJECT_ENTRY_ARRAY, 24 + 8 * len(rest))
                struct.pack_into("<Q", out, d["array"] + 16, 0)
                for i, e in enumerate(rest):
                    struct.pack_into("<Q", out, d["array"] + 24 + 8 * i, e["offset"])
                n_objects += 1
        for e in self.entries:
            obj(e["offset"], OBJECT_ENTRY, 64 + 16 * len(e["datas"]))
            struct.pack_into("<QQQ", out, e["offset"] + 16, e["seqnum"], e["realtime"], e["monotonic"])
            out[e["offset"] + 40:e["offset"] + 56] = self.boot_id
            struct.pack_into("<Q", out, e["offset"] + 56, e["xor"])
            for i, d in enumerate(e["datas"]):
                struct.pack_into("<QQ", out, e["offset"] + 64 + 16 * i, d["offset"], d["hash"])
            n_objects += 1
        if self.global_array:
            obj(self.global_array, OBJECT_ENTRY_ARRAY, 24 + 8 * len(self.entries))
            for i, e in enumerate(self.entries):
                struct.pack_into("<Q", out, self.global_array + 24 + 8 * i, e["offset"])
            n_objects += 1

        last = max([self.data_ht, self.field_ht, self.global_array]
                   + [d["offset"] for d in self.data_order] + [d["array"] for d in self.data_order]
                   + [f["offset"] for f in self.field_order] + [e["offset"] for e in self.entries])
        head = self.entries[0] if self.entries else None
        tail = self.entries[-1] if self.entries else None
        out[0:8] = b"LPKSHHRH"
        struct.pack_into("<IIB", out, 8, 0, 0, 0)  # flags: none; state: offline
        out[24:40] = self.file_id
        out[40:56] = MACHINE_ID
        out[56:72] = self.boot_id
        out[72:88] = self.file_id
        struct.pack_into(
            "<21Q", out, 88,
            HEADER_SIZE, len(out) - HEADER_SIZE,
            self.data_ht + 16, 16 * DATA_BUCKETS,
            self.field_ht + 16, 16 * FIELD_BUCKETS,
            last, n_objects, len(self.entries),
            tail["seqnum"] if tail else 0, head["seqnum"] if head else 0,
            self.global_array,
            head["realtime"] if head else 0, tail["realtime"] if tail else 0,
            tail["monotonic"] if tail else 0,
            len(self.data_order), len(self.field_order), 0, n_arrays,
            max([len(c) for c in data_buckets] + [0]), max([len(c) for c in field_buckets] + [0]),
        )
        return bytes(out)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    if isinstance(spec, dict):
        writer = Writer(bytes.fromhex(spec.get("file_id", FILE_ID.hex())),
                        bytes.fromhex(spec.get("boot_id", BOOT_ID.hex())))
        entries = spec.get("entries", [])
    else:
        writer, entries = Writer(), spec
    data = writer.build(entries)
    with open(sys.argv[2], "wb") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
