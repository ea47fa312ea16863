#!/usr/bin/python3
"""Seed corpora for the fuzzers: small valid stream files (plain, compressed with
independent and with linked lz4 blocks, version 1), NBD client sessions (handshake,
options, every command), zips, and repository objects (chunks stored as none, lz4 and zstd,
an index object, a raw index) and manifests and configs (virtbackup-repository(5))."""
import hashlib
import json
import os
import struct
import sys
import zlib

import lz4.frame


def frame(kind, start, length):
    return b"%s %016x %016x\r\n" % (kind, start, length)


def stream(extents, size, compressed=False, linked=False, v1=False):
    meta = {"virtualSize": size,
            "dataSize": sum(len(d) for s, d in extents if d is not None),
            "date": "2026-11-22T00:00:00", "diskName": "vda", "diskFormat": "qcow2",
            "checkpointName": "virtnbdbackup.0"}
    if v1:
        meta.update({"parentCheckpoint": False, "incremental": False, "stream-version": 1})
    else:
        meta.update({"compressed": 2 if compressed else False, "compressionMethod": "lz4",
                     "parentCheckpoint": "", "incremental": False, "streamVersion": 2})
    js = json.dumps(meta, indent=4).encode()
    out = frame(b"meta", 0, len(js)) + js + b"\r\n"
    trailer = []
    for start, data in extents:
        if data is None:
            out += frame(b"zero", start[0], start[1])
            continue
        out += frame(b"data", start, len(data))
        if compressed:
            c = lz4.frame.compress(data, block_linked=linked, content_checksum=True,
                                   block_checksum=True)
            trailer.append(len(c))
            out += c
        else:
            out += data
        out += b"\r\n"
    out += frame(b"stop", 0, 0)
    if compressed:
        t = json.dumps(trailer).encode()
        out += t + b"\r\n" + frame(b"comp", 0, len(t))
    return out


def nbd_opt(o, data):
    return struct.pack(">QII", 0x49484156454F5054, o, len(data)) + data


def nbd_session(requests, server=0):
    """server: the harness's first byte (0 plain, 1 TLS required, 2 limit reached,
    3 a 1 ms handshake deadline)."""
    opt = nbd_opt
    name = b"vda"
    s = bytes([server]) + struct.pack(">I", 3)  # fixed newstyle, no zeroes
    s += opt(8, b"")  # structured reply
    q = b"base:allocation"
    s += opt(10, struct.pack(">I", len(name)) + name + struct.pack(">II", 1, len(q)) + q)
    s += opt(3, b"")  # list
    s += opt(7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))  # go
    for i, (cmd, flags, off, length, data) in enumerate(requests):
        s += struct.pack(">IHHQQI", 0x25609513, flags, cmd, i, off, length) + data
    return s


def zip_seeds(zdir, streams):
    """Zips as virtbackup -o - writes them: STORED, zip64, basenames; one with a bad name."""
    import io
    import zipfile
    for name, members in {"chain": {"vda.full.data": streams["plain"],
                                      "vda.full.data.chksum": b"1",
                                      "checkpoints/virtnbdbackup.0.xml": b"<x/>"},
                          "evil": {"../evil.data": streams["plain"]},
                          "lz4": {"vda.copy.data": streams["lz4-independent"]}}.items():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for arc, data in members.items():
                with z.open(arc, "w", force_zip64=True) as e:
                    e.write(data)
        with open(os.path.join(zdir, name), "wb") as f:
            f.write(buf.getvalue())
    # a STORED entry whose central directory says 0 compressed bytes (libzip's seek crashes
    # on it unless zip_source refuses such entries)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("vda.copy.data", streams["plain"][:1606])
    data = bytearray(buf.getvalue())
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 20:cd + 24] = b"\0\0\0\0"
    with open(os.path.join(zdir, "damaged-size"), "wb") as f:
        f.write(bytes(data))


def repo_object(kind, comp, raw, payload):
    """The envelope: magic, version 1, kind, compression, flags 0, sizes, crc32s."""
    head = b"VBRO" + bytes([1, kind, comp, 0]) + struct.pack("<III", len(raw), len(payload),
                                                               zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def repo_seeds(odir, mdir):
    import lz4.block
    text = b"virtbackup repository chunk " * 40
    # a zstd frame by hand: single segment, 1-byte content size, one RLE block
    rle = (b"\x28\xb5\x2f\xfd\x20" + bytes([200]) +
           struct.pack("<I", 200 << 3 | 1 << 1 | 1)[:3] + b"A")
    index = b"VBRIDX1\0" + struct.pack("<QII", 3 * 65536 + 100, 65536, 0)
    index += hashlib.sha256(text).digest() + bytes(32) + hashlib.sha256(b"A" * 200).digest()
    index += hashlib.sha256(b"x").digest()
    objects = {
        "chunk-none": b"\0" + repo_object(1, 0, b"x", b"x"),
        "chunk-lz4": b"\0" + repo_object(1, 2, text, lz4.block.compress(text, store_size=False)),
        "chunk-zstd": b"\0" + repo_object(1, 1, b"A" * 200, rle),
        "chunk-empty": b"\0" + repo_object(1, 0, b"", b""),
        "index-object": b"\1" + repo_object(2, 0, index, index),
        "index-raw": b"\2" + index,
    }
    for name, data in objects.items():
        with open(os.path.join(odir, name), "wb") as f:
            f.write(data)
    uuid = "6c1b9c4e-0e0b-4a5e-9f8a-1d2c3b4a5e6f"
    manifest = {"format": "virtbackup-snapshot", "version": 1, "id": "20261207T180000Z-0badcafe",
                "vm": "vm1", "uuid": uuid, "time": "2026-12-07T18:00:00+00:00", "level": "full",
                "parent": None,
                "checkpoint": {"name": "virtnbdbackup.0", "creation_time": 1796666400,
                               "xml": "<domaincheckpoint/>"},
                "domain_xml": "<domain/>",
                "disks": [{"target": "vda", "virtual_size": 3 * 65536 + 100,
                           "chunk_size": 65536, "index": hashlib.sha256(index).hexdigest(),
                           "format": "qcow2", "qcow_json": "{}", "bytes_read": 1,
                           "bytes_new": 1, "bytes_stored": 1}],
                "blobs": [{"kind": "nvram", "path": "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd",
                           "size": 100, "index": "00" * 32}]}
    inc = dict(manifest, level="inc", parent=manifest["id"], checkpoint=None, blobs=[])
    config = {"format": "virtbackup-repository", "version": 1, "id": "0123456789abcdef" * 2,
              "chunk_size": 4194304, "compression": "zstd", "compression_level": 1,
              "created": "2026-12-07T18:00:00Z", "encryption": "none"}
    for name, data in {"manifest-full": b"\0" + json.dumps(manifest, indent=2).encode(),
                       "manifest-inc": b"\0" + json.dumps(inc).encode(),
                       "config": b"\1" + json.dumps(config).encode()}.items():
        with open(os.path.join(mdir, name), "wb") as f:
            f.write(data)


def main():
    sdir, ndir = sys.argv[1], sys.argv[2]
    block = bytes(range(256)) * 256  # 64 KiB
    seeds = {
        "plain": stream([(0, block), ((65536, 65536), None), (131072, block[:4096])], 1 << 20),
        "lz4-independent": stream([(0, block * 2), ((131072, 65536), None)], 1 << 20, True),
        "lz4-linked": stream([(0, block * 3)], 1 << 20, True, linked=True),
        "v1": stream([(0, block[:512])], 1 << 16, v1=True),
    }
    for name, data in seeds.items():
        with open(os.path.join(sdir, name), "wb") as f:
            f.write(data)
    if len(sys.argv) > 3:
        zip_seeds(sys.argv[3], seeds)
    if len(sys.argv) > 5:
        repo_seeds(sys.argv[4], sys.argv[5])
    sessions = {
        "read": [(0, 0, 0, 4096, b"")],
        "status": [(7, 0, 0, 1 << 20, b"")],
        "write": [(1, 0, 4096, 512, b"\x42" * 512), (3, 0, 0, 0, b""), (0, 0, 4096, 512, b"")],
        "zero-trim-cache": [(6, 0, 8192, 4096, b""), (4, 0, 65536, 4096, b""),
                            (5, 0, 0, 65536, b""), (2, 0, 0, 0, b"")],
    }
    for name, reqs in sessions.items():
        with open(os.path.join(ndir, name), "wb") as f:
            f.write(nbd_session(reqs))
    go = struct.pack(">I", 3) + b"vda" + struct.pack(">H", 0)
    # TLS required: options before STARTTLS (TLS_REQD), STARTTLS, then the start of a TLS
    # ClientHello record; the same session against the full and the impatient server
    tls = (b"\x01" + struct.pack(">I", 3) + nbd_opt(3, b"") + nbd_opt(7, go) +
           nbd_opt(5, b"x") + nbd_opt(5, b"") + bytes.fromhex("16030100c8010000c40303") +
           bytes(32))
    extra = {"tls-required": tls, "tls-export-name": b"\x01" + struct.pack(">I", 3) +
             nbd_opt(1, b"vda"), "limit": b"\x02" + nbd_session(sessions["read"])[1:],
             "deadline": b"\x03" + nbd_session(sessions["status"])[1:]}
    for name, data in extra.items():
        with open(os.path.join(ndir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
