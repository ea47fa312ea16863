#!/usr/bin/env python3
"""A synthetic repository for timing `virtrepo gc` (bench/gc-synthetic.sh): CHUNKS tiny chunk
objects written directly (a valid 24-byte envelope and a few bytes of content each, under
chunks/<hh>/<digest>), indexes naming them in groups of PER_INDEX, one manifest per index
(snapshots/<uuid>/<id>.json), and a share of the snapshots left out (their chunks unreferenced,
as after a forget). Only names and indexes matter to gc; the envelope layout is
virtbackup-repository(5)'s.

usage: gc-synthetic.py REPO CHUNKS [UNREFERENCED_PERCENT] [PER_INDEX]
REPO must be a repository made by `virtrepo init --chunk-size 64K`."""
import hashlib
import json
import os
import struct
import sys
import zlib


def envelope(kind, raw):
    hdr = b"VBRO" + bytes([1, kind, 0, 0]) + struct.pack("<III", len(raw), len(raw), zlib.crc32(raw))
    return hdr + struct.pack("<I", zlib.crc32(hdr)) + raw


def put(repo, key, data):
    path = os.path.join(repo, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    repo, chunks = sys.argv[1], int(sys.argv[2])
    unref = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    per_index = int(sys.argv[4]) if len(sys.argv) > 4 else 16384
    chunk_size = 65536
    with open(os.path.join(repo, "config")) as f:
        if json.load(f)["chunk_size"] != chunk_size:
            sys.exit("the repository's chunk size must be 64K")
    uuid = "5ee5e5e5-0000-4000-8000-000000000001"
    made = referenced = 0
    snap = 0
    while made < chunks:
        n = min(per_index, chunks - made)
        digests = []
        for i in range(n):
            content = b"synthetic chunk %d" % (made + i)
            d = hashlib.sha256(content).digest()
            digests.append(d)
            h = d.hex()
            put(repo, "chunks/%s/%s" % (h[:2], h), envelope(1, content))
        made += n
        # every (100 / unref)-th snapshot is "forgotten": no manifest names its index
        forgotten = unref > 0 and snap % max(1, round(100 / unref)) == 0
        # each chunk's content size is not the chunk size: the index says a virtual size
        # of n chunks; gc reads only the names
        raw = b"VBRIDX1\0" + struct.pack("<QII", n * chunk_size, chunk_size, 0) + b"".join(digests)
        idx = hashlib.sha256(raw).hexdigest()
        put(repo, "indexes/" + idx, envelope(2, raw))
        if not forgotten:
            referenced += n
            sid = "20261208T%02d%02d%02dZ-%08x" % (snap // 3600 % 24, snap // 60 % 60, snap % 60, snap)
            m = {"format": "virtbackup-snapshot", "version": 1, "id": sid, "vm": "synthetic",
                 "uuid": uuid, "time": "2026-12-08T00:00:00+00:00", "level": "copy",
                 "parent": None, "checkpoint": None, "domain_xml": "<domain/>",
                 "disks": [{"target": "vda", "virtual_size": n * chunk_size,
                            "chunk_size": chunk_size, "index": idx, "format": "raw",
                            "qcow_json": None, "bytes_read": 0, "bytes_new": 0,
                            "bytes_stored": 0}],
                 "blobs": []}
            put(repo, "snapshots/%s/%s.json" % (uuid, sid), json.dumps(m).encode())
        snap += 1
    print(json.dumps({"chunks": made, "referenced": referenced, "unreferenced": made - referenced,
                      "snapshots": snap}))


main()
