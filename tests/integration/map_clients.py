#!/usr/bin/python3
"""Hostile NBD clients for virtmap's resource limits and TLS policy, on raw sockets.
usage: map_clients.py CASE ADDRESS EXPORT [ARGS...]; ADDRESS is unix:PATH or tcp:HOST:PORT.

  limit N        N clients finish the handshake and stay; client N+1 is closed before the
                 greeting; the N still read; once one leaves, a new client is served
  drip SECONDS   one byte of a valid handshake every SECONDS: the server must hang up
                 (prints how long it took); exits 1 if the handshake could finish first
  idle SECONDS   a client past the handshake idles SECONDS, then reads: still served
  rss PID        reads 4 KiB, then 32 MiB, idles; prints the server's VmRSS in KiB after
                 each ("rss BEFORE AFTER")
  tls-required   plain-text options on a server that requires TLS: TLS_REQD for each,
                 STARTTLS with data is INVALID, EXPORT_NAME is a disconnect, ABORT is acked
  no-tls         STARTTLS on a server without TLS: ERR_UNSUP, and the haggling goes on
Each case prints "ok: ..." lines and exits 0 only if every check held."""
import socket
import struct
import sys
import time

IHAVEOPT = 0x49484156454F5054
REPLY_OPT = 0x3E889045565A9
REQ_MAGIC = 0x25609513
ERR_UNSUP, ERR_INVALID, ERR_TLS_REQD = 0x80000001, 0x80000003, 0x80000005

CASE, ADDR, EXPORT = sys.argv[1], sys.argv[2], sys.argv[3].encode()
ARGS = sys.argv[4:]


def conn(timeout=10):
    if ADDR.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        target = ADDR[5:]
    else:
        host, port = ADDR[4:].rsplit(":", 1)
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        target = (host.strip("[]"), int(port))
    s.settimeout(timeout)
    s.connect(target)
    return s


def recvall(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("server closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def hello(s):
    magic, opt, flags = struct.unpack(">QQH", recvall(s, 18))
    assert magic == 0x4E42444D41474943 and opt == IHAVEOPT, (hex(magic), hex(opt))
    s.sendall(struct.pack(">I", 3))


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def opt_reply(s):
    magic, opt, rtype, ln = struct.unpack(">QIII", recvall(s, 20))
    assert magic == REPLY_OPT, hex(magic)
    return opt, rtype, recvall(s, ln)


def go_data(name=EXPORT):
    return struct.pack(">I", len(name)) + name + struct.pack(">H", 0)


def go(s):
    option(s, 7, go_data())
    while True:
        opt, rtype, data = opt_reply(s)
        if rtype == 1:
            return
        assert rtype == 3, hex(rtype)


def read(s, off, ln, cookie=1):
    s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 0, cookie, off, ln))
    magic, err, got = struct.unpack(">IIQ", recvall(s, 16))
    assert magic == 0x67446698 and err == 0 and got == cookie, (hex(magic), err, got)
    return recvall(s, ln)


def served():
    s = conn()
    hello(s)
    go(s)
    return s


def case_limit():
    n = int(ARGS[0])
    held = [served() for _ in range(n)]
    print("ok: %d clients past the handshake" % n)
    extra = conn()
    assert closed(extra), "client %d got more than a hang-up" % (n + 1)
    print("ok: client %d closed at once" % (n + 1))
    for i, s in enumerate(held):
        assert len(read(s, 0, 4096, cookie=i + 1)) == 4096
    print("ok: the %d clients still read" % n)
    held.pop().close()
    deadline = time.monotonic() + 30
    while True:  # the server notices the departure asynchronously
        s = conn()
        try:
            hello(s)
            go(s)
            read(s, 0, 512)
            break
        except (EOFError, ConnectionResetError, BrokenPipeError):
            assert time.monotonic() < deadline, "no client served after one left"
            time.sleep(0.1)
    print("ok: after one left a new client is served")


def case_drip():
    every = float(ARGS[0])
    s = conn(timeout=600)
    magic = recvall(s, 18)
    assert magic[:8] == b"NBDMAGIC"
    wire = struct.pack(">I", 3) + struct.pack(">QII", IHAVEOPT, 7, len(go_data())) + go_data()
    t0 = time.monotonic()
    for i in range(len(wire)):
        try:
            s.sendall(wire[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        s.settimeout(every)
        try:
            if s.recv(1) == b"":
                break
            sys.exit("drip: the handshake finished after %.1f s: the server never hung up on "
                     "the dripping client" % (time.monotonic() - t0))
        except socket.timeout:
            pass
        except ConnectionResetError:
            break
    else:
        s.settimeout(60)
        if s.recv(1) != b"":
            sys.exit("drip: the handshake finished after %.1f s: the server never hung up on "
                     "the dripping client" % (time.monotonic() - t0))
    print("ok: hung up on the dripping client after %.1f s (byte %d of %d)" % (time.monotonic() - t0, i + 1, len(wire)))


def case_idle():
    s = served()
    time.sleep(float(ARGS[0]))
    assert len(read(s, 0, 4096)) == 4096
    print("ok: a client idle for %s s after the handshake is still served" % ARGS[0])


def rss_kib(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def case_rss():
    pid = ARGS[0]
    s = served()
    read(s, 0, 4096)
    time.sleep(0.5)
    before = rss_kib(pid)
    data = read(s, 0, 32 << 20, cookie=2)
    assert len(data) == 32 << 20
    del data
    time.sleep(1)
    after = rss_kib(pid)
    print("rss %d %d" % (before, after))


def case_tls_required():
    s = conn()
    hello(s)
    for opt, data, what in ((3, b"", "LIST"), (6, go_data(), "INFO"), (7, go_data(), "GO"),
                            (8, b"", "STRUCTURED_REPLY"),
                            (10, struct.pack(">I", len(EXPORT)) + EXPORT + struct.pack(">I", 0),
                             "SET_META_CONTEXT")):
        option(s, opt, data)
        got = opt_reply(s)
        assert got[0] == opt and got[1] == ERR_TLS_REQD, (what, hex(got[1]))
        print("ok: %s before STARTTLS: NBD_REP_ERR_TLS_REQD" % what)
    option(s, 5, b"x")
    assert opt_reply(s)[1] == ERR_INVALID
    print("ok: STARTTLS with data: NBD_REP_ERR_INVALID")
    option(s, 2)
    assert opt_reply(s)[1] == 1 and closed(s)
    print("ok: ABORT acknowledged")
    s = conn()
    hello(s)
    option(s, 1, EXPORT)
    assert closed(s), "EXPORT_NAME without TLS was not a disconnect"
    print("ok: EXPORT_NAME before STARTTLS: disconnected")


def case_no_tls():
    s = conn()
    hello(s)
    option(s, 5)
    assert opt_reply(s)[1] == ERR_UNSUP
    go(s)
    assert len(read(s, 0, 512)) == 512
    print("ok: STARTTLS on a server without TLS: NBD_REP_ERR_UNSUP, then served")


{"limit": case_limit, "drip": case_drip, "idle": case_idle, "rss": case_rss,
 "tls-required": case_tls_required, "no-tls": case_no_tls}[CASE]()
