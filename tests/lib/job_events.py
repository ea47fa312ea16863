#!/usr/bin/python3
"""Prints a running domain's qemu JOB_STATUS_CHANGE events as they come, each with qemu's own
timestamp (host clock, microseconds), until killed:

    job_events.py URI DOMAIN
    -> "registered" once listening, then "SECONDS.MICROS STATUS JOB-ID" per event

so that a test knows when a backup job began (status "created" of the job "backup-...": qemu
creates it after draining the guest's requests, once the copy-before-write filter is in
place). If libvirt's connection closes, prints "closed REASON" and exits 1.
"""
import json
import sys

import libvirt
import libvirt_qemu


def main():
    uri, name = sys.argv[1], sys.argv[2]
    libvirt.virEventRegisterDefaultImpl()
    conn = libvirt.open(uri)
    dom = conn.lookupByName(name)
    state = {"closed": None}

    def on_event(_conn, _dom, event, seconds, micros, details, _opaque):
        data = json.loads(details) if details else {}
        print("%d.%06d %s %s" % (seconds, micros, data.get("status"), data.get("id")), flush=True)

    def on_close(_conn, reason, _opaque):
        state["closed"] = reason

    conn.registerCloseCallback(on_close, None)
    conn.setKeepAlive(5, 12)
    libvirt_qemu.qemuMonitorEventRegister(conn, dom, "JOB_STATUS_CHANGE", on_event, None, 0)
    print("registered", flush=True)
    while state["closed"] is None:
        libvirt.virEventRunDefaultImpl()
    print("closed %s" % state["closed"], flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
