#!/usr/bin/python3
"""Judges a restored copy of the directory tests/lib/lab-fswriter.py wrote, against the log of
every change it made (the share's log, complete once the writer stopped).

    fswriter_check.py SHARE_LOG TREE REQUIRED

TREE is the restored directory (its synced.log is the log the disk held); REQUIRED is the
number of changes known, from the host's side, to have been durable before the backup job
began. The restored tree passes if
  - its synced.log is a prefix of SHARE_LOG (a torn last line is allowed) holding at least
    REQUIRED complete lines, D of them;
  - every path changed by one of the first D lines is in the state its last change among them
    left, or in the state of a later change of that path (the snapshot may have caught a
    later change whose log line had not reached the disk yet);
  - nothing else is in TREE but the paths of later changes (any state: they were being written)
    and PATH.tmp files of replacements in progress.
Prints one summary line; on failure every problem (up to 20) and exit status 1.
"""
import hashlib
import os
import sys


def read_log(data):
    """(entries, complete_bytes): entries are (seq, op, path, sha) of the complete lines."""
    entries = []
    end = data.rfind(b"\n") + 1
    for n, line in enumerate(data[:end].decode("ascii").splitlines(), 1):
        seq, op, path, sha, _size = line.split(" ")
        if int(seq) != n:
            raise ValueError("line %d has sequence number %s" % (n, seq))
        entries.append((n, op, path, sha))
    return entries, end


def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    share_path, tree, required = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(share_path, "rb") as f:
        share_data = f.read()
    entries, _ = read_log(share_data)
    problems = []
    disk_path = os.path.join(tree, "synced.log")
    if not os.path.isfile(disk_path):
        print("fswriter_check: %s: no synced.log in the restored tree" % tree)
        return 1
    with open(disk_path, "rb") as f:
        disk_data = f.read()
    if not share_data.startswith(disk_data):
        problems.append("the restored synced.log is not a prefix of the writer's log")
    durable = disk_data.count(b"\n")
    if durable < required:
        problems.append(
            "the restored synced.log holds %d changes, but %d were durable before the job began"
            % (durable, required)
        )

    # the states each path may be in: after its last durable change, or after a later one
    history = {}
    for seq, op, path, sha in entries:
        history.setdefault(path, []).append((seq, None if op == "delete" else sha))
    found = {}
    for root, dirs, files in os.walk(tree):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), tree)
            if rel != "synced.log":
                found[rel] = os.path.join(root, name)
    checked = intact = 0
    for path, changes in history.items():
        past = [i for i, (seq, _) in enumerate(changes) if seq <= durable]
        if not past:
            continue  # first written after the snapshot's last durable change: any state
        allowed = [sha for _, sha in changes[past[-1] :]]
        checked += 1
        have = sha_of(found[path]) if path in found else None
        if have not in allowed:
            want = "absent" if allowed[0] is None else "sha256 " + allowed[0]
            problems.append(
                "%s: %s, but change %d left it %s%s"
                % (
                    path,
                    "missing" if have is None else "sha256 " + have,
                    changes[past[-1]][0],
                    want,
                    " (or a later state)" if len(allowed) > 1 else "",
                )
            )
        elif have is not None:
            intact += 1
    for rel in found:
        base = rel[:-4] if rel.endswith(".tmp") else rel
        if base not in history:
            problems.append("%s: in the restored tree, but the writer never made it" % rel)

    summary = "%d changes durable on the restored disk (%d required), %d paths checked, %d files intact" % (
        durable,
        required,
        checked,
        intact,
    )
    if problems:
        for p in problems[:20]:
            print("fswriter_check: %s" % p)
        print("fswriter_check: FAILED (%d problems); %s" % (len(problems), summary))
        return 1
    print("fswriter_check: ok: %s" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
