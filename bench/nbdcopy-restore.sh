#!/bin/bash
# The practical limit of a restore: what a restore tool must do at least, done by nbdcopy.
# Creates a fresh qcow2 of SIZE, serves it with qemu-nbd (qcow2 format, 4 connections, unix
# socket: the same kind of target virtnbdrestore and virtrestore write to) and copies RAW
# into it with nbdcopy. The whole script is timed, like a restore command.
# --target-is-zero: the qcow2 is new, so holes need no writes, which a restore tool knows
# too. With nbdcopy's defaults it zeroes every hole through qemu-nbd: on a 2 GiB disk with
# 0.34 GB of data that took 1.95 s instead of 0.66 s, slower than the tools it bounds.
#
# qemu-nbd gets the malloc settings and the --aio=io_uring virtrestore gives its own qemu-nbd
# (src/common/qemu_nbd.c: request buffers stay in its heap instead of fresh pages per request;
# writes through io_uring, not a thread pool contending for the image's inode lock), so that
# the limit is measured against the same server. Like virtrestore, it falls back to the
# thread pool where io_uring is refused.
#
# usage: nbdcopy-restore.sh RAW OUT.qcow2 SIZE
set -euo pipefail

raw="$1" out="$(realpath -m "$2")" size="$3"
sock="$out.sock"
pidf="$out.pid"

stop_server() {
    local pid
    pid=$(cat "$pidf" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    # qemu-nbd flushes and closes the image on SIGTERM: wait so that the time includes it.
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    rm -f "$pidf" "$sock"
}
trap stop_server EXIT

qemu-img create -q -f qcow2 -o compat=1.1 "$out" "$size"
# --fork returns once the socket accepts connections.
serve() {
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456 \
        qemu-nbd --fork --pid-file="$pidf" -f qcow2 -e 4 -k "$sock" -x vda "$@" "$out"
}
serve --aio=io_uring 2>/dev/null || serve
nbdcopy --target-is-zero "$raw" "nbd+unix:///vda?socket=$sock"
