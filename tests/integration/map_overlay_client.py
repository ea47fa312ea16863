#!/usr/bin/python3
"""NBD clients (libnbd) for map_overlay_durable.sh: they write through virtmap with FUA and
flushes, journal what virtmap acknowledged, and after virtmap was killed and restarted check
that every acknowledged byte is there.

  repro URI                    the issue's case: X at 0, flush; Y at 4096 with FUA
  repro-check URI              after a restart: 0 reads X, 4096 reads Y
  random URI JOURNAL SEED READY LIMIT
                               writes, zeroes (some with FUA, some unaligned) and flushes in
                               [0, LIMIT) until the connection dies; JOURNAL gets a "send"
                               line before and an "ack" line after each request; READY is
                               created once 30 requests were acknowledged
  random-check URI JOURNAL BASE STATE
                               every sector holds a value the journal allows (BASE: the
                               disk before this journal's round); writes the disk to STATE
  multi URI JOURNAL ID COUNT READY
                               one connection: COUNT times a 4 KiB write then a flush, in a
                               region of its own; JOURNAL gets "ack N" per acknowledged flush;
                               prints the number of failed flushes; READY after 20 rounds
  multi-check URI CLIENTS COUNT JOURNAL-PREFIX|-
                               every write acknowledged by a flush is there (all COUNT of each
                               client when the prefix is -)
"""
import os
import random
import sys

import nbd

SECTOR = 512


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def pattern(i):
    return 1 + i % 250  # never 0: zeroes are their own kind of request


def repro(uri):
    h = connect(uri)
    h.pwrite(b"X" * 4096, 0)
    h.flush()
    h.pwrite(b"Y" * 4096, 4096, nbd.CMD_FLAG_FUA)
    print("acknowledged: X at 0 (flushed), Y at 4096 (FUA)")


def repro_check(uri):
    h = connect(uri)
    got0, got1 = h.pread(4096, 0), h.pread(4096, 4096)
    ok = got0 == b"X" * 4096 and got1 == b"Y" * 4096
    print("offset 0: %r..., offset 4096: %r..." % (got0[:8], got1[:8]))
    sys.exit(0 if ok else 1)


def random_writer(uri, journal, seed, ready, limit):
    rnd = random.Random(seed)
    h = connect(uri)
    acked = 0
    with open(journal, "a") as j:
        for i in range(1000000):
            kind = rnd.choice(["w", "w", "wf", "wf", "z", "zf", "f"])
            # sectors, so that partial 4 KiB blocks (read-modify-write) are covered too
            if rnd.random() < 0.5:
                off = rnd.randrange(0, limit // 4096) * 4096
                n = rnd.randrange(1, 17) * 4096
            else:
                off = rnd.randrange(0, limit // SECTOR) * SECTOR
                n = rnd.randrange(1, 24) * SECTOR
            n = min(n, limit - off)
            p = 0 if kind.startswith("z") else pattern(i)
            j.write("send %d %s %d %d %d\n" % (i, kind, off, n, p))
            j.flush()
            try:
                if kind == "f":
                    h.flush()
                elif kind.startswith("w"):
                    h.pwrite(bytes([p]) * n, off, nbd.CMD_FLAG_FUA if kind == "wf" else 0)
                else:
                    h.zero(n, off, nbd.CMD_FLAG_FUA if kind == "zf" else 0)
            except nbd.Error as e:
                print("request %d (%s) not acknowledged: %s" % (i, kind, e.string))
                return
            j.write("ack %d\n" % i)
            j.flush()
            acked += 1
            if acked == 30:
                open(ready, "w").close()


def random_check(uri, journal, base_path, state_path):
    """Per sector, the values it may hold: the round's base ("B"), and what requests wrote.
    A FUA request, or a flush, narrows it to what it made durable."""
    base = open(base_path, "rb").read()
    size = len(base)
    allowed = {}  # sector -> set of values (int pattern or "B"); missing: {"B"}
    latest = {}  # sector -> last acknowledged value not yet made durable
    sent = {}
    acked_ops = fua = flushes = 0
    for line in open(journal):
        w = line.split()
        if w[0] == "send":
            sent[int(w[1])] = (w[2], int(w[3]), int(w[4]), int(w[5]))
            continue
        kind, off, n, p = sent.pop(int(w[1]))
        acked_ops += 1
        if kind == "f":
            flushes += 1
            for s, v in latest.items():
                allowed[s] = {v}
            latest.clear()
            continue
        for s in range(off // SECTOR, (off + n) // SECTOR):
            if kind in ("wf", "zf"):
                allowed[s] = {p}
                latest.pop(s, None)
            else:
                allowed.setdefault(s, {"B"}).add(p)
                latest[s] = p
        fua += kind in ("wf", "zf")
    for kind, off, n, p in sent.values():  # in flight when virtmap died: may have landed
        if kind != "f":
            for s in range(off // SECTOR, (off + n) // SECTOR):
                allowed.setdefault(s, {"B"}).add(p)
    h = connect(uri)
    disk = bytearray()
    for off in range(0, size, 8 << 20):
        disk += h.pread(min(8 << 20, size - off), off)
    bad = []
    for s, vals in allowed.items():
        got = bytes(disk[s * SECTOR : (s + 1) * SECTOR])
        ok = any(
            got == base[s * SECTOR : (s + 1) * SECTOR] if v == "B" else got == bytes([v]) * SECTOR
            for v in vals
        )
        if not ok:
            bad.append((s, sorted(map(str, vals)), got[:4]))
    # sectors no request touched read as before
    untouched_bad = 0
    for s in range(0, size // SECTOR):
        lo, hi = s * SECTOR, (s + 1) * SECTOR
        if s not in allowed and disk[lo:hi] != base[lo:hi]:
            untouched_bad += 1
    print(
        "%d requests acknowledged (%d with FUA, %d flushes), %d sectors written; "
        "%d hold a value never acknowledged or lost, %d untouched sectors changed"
        % (acked_ops, fua, flushes, len(allowed), len(bad), untouched_bad)
    )
    for s, vals, got in bad[:8]:
        print("  sector %d (offset %d): reads %r..., allowed %s" % (s, s * SECTOR, got, vals))
    with open(state_path, "wb") as f:
        f.write(disk)
    sys.exit(1 if bad or untouched_bad else 0)


MULTI_REGION = 24 << 20  # each client's region: [ID * REGION, (ID + 1) * REGION)


def multi_offset(ident, k):
    return ident * MULTI_REGION + k * 4096


def multi_data(ident, k):
    return bytes([1 + ident]) * 8 + k.to_bytes(4, "little") * 1022


def multi(uri, journal, ident, count, ready):
    assert count * 4096 <= MULTI_REGION
    h = connect(uri)
    failed = 0
    first = None
    with open(journal, "w") as j:
        for k in range(count):
            if k == 20:
                open(ready, "w").close()
            try:
                h.pwrite(multi_data(ident, k), multi_offset(ident, k))
                h.flush()
            except nbd.Error as e:
                if h.aio_is_dead() or h.aio_is_closed():  # virtmap is gone
                    break
                failed += 1
                first = first or e.string
                continue
            j.write("ack %d\n" % k)
            j.flush()
    first = ", first: " + first if first else ""
    print("client %d: %d of %d flushes failed%s" % (ident, failed, count, first))


def multi_check(uri, clients, count, prefix):
    h = connect(uri)
    missing = 0
    checked = 0
    for ident in range(clients):
        if prefix == "-":
            acked = range(count)
        else:
            acked = [int(l.split()[1]) for l in open("%s%d" % (prefix, ident))]
        for k in acked:
            checked += 1
            if h.pread(4096, multi_offset(ident, k)) != multi_data(ident, k):
                missing += 1
                if missing <= 5:
                    off = multi_offset(ident, k)
                    print("  client %d write %d (offset %d) is not there" % (ident, k, off))
    print("%d flushed writes checked, %d missing" % (checked, missing))
    sys.exit(1 if missing or checked == 0 else 0)


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "repro":
        repro(a[0])
    elif cmd == "repro-check":
        repro_check(a[0])
    elif cmd == "random":
        random_writer(a[0], a[1], int(a[2]), a[3], int(a[4]))
    elif cmd == "random-check":
        random_check(a[0], a[1], a[2], a[3])
    elif cmd == "multi":
        multi(a[0], a[1], int(a[2]), int(a[3]), a[4])
    elif cmd == "multi-check":
        multi_check(a[0], int(a[1]), int(a[2]), a[3])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
