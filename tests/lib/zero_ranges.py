#!/usr/bin/python3
"""Byte ranges of a disk that should read as zeroes, and what a stream file records for them:
the oracle of tests/integration/guest_trim.sh. Reads uncompressed stream files itself
(virtbackup-stream(5): 40-byte headers "kind start length\\r\\n"), independent of the
project's reader. Ranges are "START LENGTH" lines (bytes).

    zero_ranges.py blocks RAW ALIGN PATH...   the blocks of the files PATH in the ext4 image RAW
        (debugfs), as byte ranges, shrunk to whole ALIGN-byte units (a discard frees only whole
        clusters of a qcow2), merged
    zero_ranges.py reads-zero RAW RANGES      every range of RAW reads as zeroes
    zero_ranges.py frames STREAM              the frames: "KIND START LENGTH [zero|data]"
    zero_ranges.py recorded STREAM HOW RANGES every range lies in frames that make it zero:
        HOW=zero-frames: ZERO frames only (no DATA frame touches it);
        HOW=zero-data: DATA frames whose payload is zero there (--compat-zeroes)
Exit status 1 with one line per problem (up to 20) when a check fails.
"""
import re
import subprocess
import sys

HEADER = 40


def read_ranges(path):
    with open(path) as f:
        return [tuple(int(x) for x in line.split()) for line in f if line.strip()]


def merge(ranges):
    out = []
    for s, n in sorted(ranges):
        if out and s <= out[-1][0] + out[-1][1]:
            end = max(out[-1][0] + out[-1][1], s + n)
            out[-1] = (out[-1][0], end - out[-1][0])
        else:
            out.append((s, n))
    return out


def debugfs(raw, request):
    return subprocess.run(
        ["debugfs", "-R", request, raw], check=True, capture_output=True, text=True
    ).stdout


def cmd_blocks(raw, align, paths):
    bs = int(re.search(r"Block size:\s+(\d+)", debugfs(raw, "stats")).group(1))
    ranges = []
    for p in paths:
        words = debugfs(raw, "blocks " + p).split()
        if not words:
            sys.exit("zero_ranges: %s: no blocks in %s" % (p, raw))
        ranges += [(int(b) * bs, bs) for b in words]
    for s, n in merge(ranges):
        a, b = -(-s // align) * align, (s + n) // align * align
        if b > a:
            print(a, b - a)


def cmd_reads_zero(raw, ranges):
    bad = []
    with open(raw, "rb") as f:
        for s, n in ranges:
            f.seek(s)
            data = f.read(n)
            if len(data) != n or data.count(0) != n:
                first = next(i for i, b in enumerate(data) if b) if len(data) == n else len(data)
                bad.append(
                    "%s: [%d, +%d) does not read as zeroes: %d non-zero bytes, the first at %d"
                    % (raw, s, n, n - data.count(0), s + first)
                )
    return bad


def frames(path):
    """(kind, start, length, payload offset or None) of every frame before STOP."""
    out = []
    with open(path, "rb") as f:
        pos = 0
        while True:
            f.seek(pos)
            hdr = f.read(HEADER).decode("ascii")
            m = re.fullmatch(r"([a-z]{4}) ([0-9a-f]{16}) ([0-9a-f]{16})\r\n", hdr)
            if not m:
                sys.exit("zero_ranges: %s: bad frame header at byte %d" % (path, pos))
            kind, start, length = m.group(1), int(m.group(2), 16), int(m.group(3), 16)
            if kind == "meta":
                if b'"compressed": false' not in f.read(length):
                    sys.exit("zero_ranges: %s: compressed streams are not read here" % path)
                pos += HEADER + length + 2
            elif kind == "data":
                out.append((kind, start, length, pos + HEADER))
                pos += HEADER + length + 2
            elif kind == "zero":
                out.append((kind, start, length, None))
                pos += HEADER
            elif kind == "stop":
                return out
            else:
                sys.exit("zero_ranges: %s: frame kind %s at byte %d" % (path, kind, pos))


def payload_is_zero(path, frame, s, e):
    _, start, _, off = frame
    with open(path, "rb") as f:
        f.seek(off + s - start)
        data = f.read(e - s)
    return len(data) == e - s and data.count(0) == e - s


def cmd_recorded(path, how, ranges):
    fr = frames(path)
    bad = []
    for s, n in ranges:
        e, pos = s + n, s
        for frame in fr:
            kind, fs, fl, _ = frame
            a, b = max(s, fs), min(e, fs + fl)
            if a >= b:
                continue
            if how == "zero-frames" and kind != "zero":
                bad.append("[%d, +%d): a DATA frame [%d, +%d) holds %d bytes of it" % (s, n, fs, fl, b - a))
            if how == "zero-data":
                if kind != "data":
                    bad.append("[%d, +%d): a ZERO frame [%d, +%d) (expected zero-filled data)" % (s, n, fs, fl))
                elif not payload_is_zero(path, frame, a, b):
                    bad.append("[%d, +%d): the DATA frame [%d, +%d) is not zero there" % (s, n, fs, fl))
            if a > pos:
                bad.append("[%d, +%d): no frame for [%d, %d)" % (s, n, pos, a))
            pos = max(pos, b)
        if pos < e:
            bad.append("[%d, +%d): no frame for [%d, %d)" % (s, n, pos, e))
    return ["%s: %s" % (path, b) for b in bad]


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    bad = []
    if cmd == "blocks":
        cmd_blocks(args[0], int(args[1]), args[2:])
    elif cmd == "reads-zero":
        bad = cmd_reads_zero(args[0], read_ranges(args[1]))
    elif cmd == "frames":
        for kind, s, n, off in frames(args[0]):
            what = "" if off is None else (" zero" if payload_is_zero(args[0], (kind, s, n, off), s, s + n) else " data")
            print("%s %d %d%s" % (kind, s, n, what))
    elif cmd == "recorded":
        bad = cmd_recorded(args[0], args[1], read_ranges(args[2]))
    else:
        sys.exit("zero_ranges: unknown command %s" % cmd)
    for b in bad[:20]:
        print("zero_ranges: %s" % b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
