#!/usr/bin/python3
"""Seed corpora for the fuzzers: small valid stream files (plain, compressed with
independent and with linked lz4 blocks, version 1) and NBD client sessions (handshake,
options, every command)."""
import json
import os
import struct
import sys

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
