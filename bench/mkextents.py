#!/usr/bin/env python3
"""Writes a sparse raw file with many small data extents at deterministic offsets.

Why a program: qemu-io writes in a loop take minutes for 100,000 extents; pwrite into a
sparse file takes about a second, and `qemu-img convert` turns it into a qcow2 by walking
the holes with SEEK_DATA/SEEK_HOLE.

usage: mkextents.py OUT.raw SIZE COUNT EXTENT_BYTES MODE SEED
  MODE scatter: COUNT extents at random (seeded), non-adjacent, EXTENT_BYTES-aligned offsets
  MODE stride:  COUNT extents, one every 2*EXTENT_BYTES from offset 0 (data, hole, data, ...)
Content is seeded pseudo-random bytes (incompressible, never all zero).
"""
import os
import random
import sys


def main():
    out, size, count, ext, mode, seed = sys.argv[1:7]
    size, count, ext, seed = int(size), int(count), int(ext), int(seed)
    rng = random.Random(seed)
    slots = size // ext
    if mode == "stride":
        if count * 2 > slots:
            sys.exit("mkextents: %d extents of %d bytes do not fit in %d bytes" % (count, ext, size))
        offsets = [i * 2 * ext for i in range(count)]
    elif mode == "scatter":
        # even slot numbers only, so no two extents touch (each stays a separate extent)
        picked = set()
        while len(picked) < count:
            picked.add(rng.randrange(slots // 2) * 2)
        offsets = sorted(s * ext for s in picked)
    else:
        sys.exit("mkextents: unknown mode " + mode)
    # one 1 MiB random pool, sliced at varying positions: fast and still incompressible
    pool = rng.randbytes(1 << 20)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for i, off in enumerate(offsets):
            start = (i * 4099) % ((1 << 20) - ext)
            os.pwrite(fd, pool[start:start + ext], off)
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
