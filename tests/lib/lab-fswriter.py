#!/usr/bin/python3
"""The writing guest of tests/integration/guest_consistency.sh: runs in the lab guest on a
mounted ext4 and changes files until the file STOP exists, making each change durable before it
logs it.

    lab-fswriter.py DIR SHARE_LOG STOP [SEED]

Each step is one of (random, seeded):
  new      writes DIR/dNNN/fNNNNNN (1 B to 256 KiB of random bytes), fsyncs it and its directory;
  replace  writes a new content for a live file into PATH.tmp, fsyncs it, renames it over PATH
           and fsyncs the directory;
  delete   unlinks a live file and fsyncs its directory.
Then it appends the line "SEQ OP PATH SHA256 SIZE" (PATH relative to DIR; SHA256 and SIZE "-"
for delete) to DIR/synced.log, fsyncs that, and appends the same line to SHARE_LOG (on the
lab's 9p share, which the host reads while this runs). So a line in the log on the disk is
written only after its change is on the disk, and a line on the share only after it is in the
log on the disk: every line of the disk's log names a change that was durable before the
line was, and a restored disk is judged by the log it holds (tests/lib/fswriter_check.py).
"""
import hashlib
import os
import random
import sys


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def main():
    top, share_log, stop = sys.argv[1:4]
    rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    disk_log = open(os.path.join(top, "synced.log"), "a", encoding="ascii")
    share = open(share_log, "a", encoding="ascii")
    live = []
    seq = 0
    while not os.path.exists(stop):
        seq += 1
        roll = rnd.random()
        if len(live) < 20 or roll < 0.7:
            sub = "d%03d" % (seq // 100)
            if not os.path.isdir(os.path.join(top, sub)):
                os.mkdir(os.path.join(top, sub))
                fsync_path(top)
            rel = "%s/f%06d" % (sub, seq)
            op = "new"
        else:
            rel = live[rnd.randrange(len(live))]
            op = "replace" if roll < 0.9 else "delete"
        path = os.path.join(top, rel)
        if op == "delete":
            os.unlink(path)
            live.remove(rel)
            digest, size = "-", "-"
        else:
            data = os.urandom(rnd.randint(1, 256 * 1024))
            digest, size = hashlib.sha256(data).hexdigest(), str(len(data))
            if op == "new":
                write_file(path, data)
                live.append(rel)
            else:
                write_file(path + ".tmp", data)
                os.rename(path + ".tmp", path)
        fsync_path(os.path.dirname(path))
        line = "%d %s %s %s %s\n" % (seq, op, rel, digest, size)
        disk_log.write(line)
        disk_log.flush()
        os.fsync(disk_log.fileno())
        share.write(line)
        share.flush()
    print("lab-fswriter: %d changes, %d live files" % (seq, len(live)))


if __name__ == "__main__":
    main()
