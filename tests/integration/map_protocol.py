#!/usr/bin/python3
"""Hostile and unusual NBD clients against virtmap (usage: map_protocol.py SOCKET EXPORT SIZE).
Each case uses a raw socket, checks the server's answer byte by byte, and after every case a
well-behaved client must still be served: errors and disconnects, never a crash or hang."""
import socket
import struct
import sys

SOCK, EXPORT, SIZE = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
IHAVEOPT = 0x49484156454F5054
REPLY_OPT = 0x3E889045565A9
REQ_MAGIC = 0x25609513


def conn():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(SOCK)
    return s


def recvall(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("server closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def hello(s, cflags=3):
    magic, opt, flags = struct.unpack(">QQH", recvall(s, 18))
    assert magic == 0x4E42444D41474943 and opt == IHAVEOPT and flags == 3, (magic, opt, flags)
    s.sendall(struct.pack(">I", cflags))


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def opt_reply(s):
    magic, opt, rtype, ln = struct.unpack(">QIII", recvall(s, 20))
    assert magic == REPLY_OPT, hex(magic)
    return opt, rtype, recvall(s, ln)


def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def go(s, name=EXPORT, structured=False):
    if structured:
        option(s, 8)
        assert opt_reply(s)[1] == 1
    option(s, 7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    while True:
        opt, rtype, data = opt_reply(s)
        if rtype == 1:
            return
        assert rtype == 3, hex(rtype)


def request(s, cmd, off, ln, flags=0, cookie=7):
    s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, cookie, off, ln))


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
    assert magic == 0x67446698, hex(magic)
    return err, cookie


def healthy(what):
    s = conn()
    hello(s)
    go(s)
    request(s, 0, 0, 4096)
    err, _ = simple_reply(s)
    assert err == 0
    recvall(s, 4096)
    request(s, 2, 0, 0)  # DISC
    s.close()
    print("ok:", what)


# 1. garbage instead of client flags / bad option magic / unknown client flags
s = conn()
recvall(s, 18)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
assert closed(s)
healthy("garbage handshake is disconnected")

s = conn()
hello(s)
s.sendall(struct.pack(">QII", 0x1234, 7, 0))
assert closed(s)
healthy("bad option magic is disconnected")

s = conn()
hello(s, cflags=0x80)
assert closed(s)
healthy("unknown client flags are disconnected")

# 2. unknown option -> ERR_UNSUP, and the haggling goes on
s = conn()
hello(s)
option(s, 4242, b"xyz")
assert opt_reply(s)[1] == 0x80000001
option(s, 3)  # LIST
names = []
while True:
    opt, rtype, data = opt_reply(s)
    if rtype == 1:
        break
    assert rtype == 2
    (n,) = struct.unpack(">I", data[:4])
    names.append(data[4 : 4 + n])
assert EXPORT in names, names
option(s, 7, struct.pack(">I", 7) + b"missing" + struct.pack(">H", 0))
assert opt_reply(s)[1] == 0x80000006  # ERR_UNKNOWN
option(s, 10, struct.pack(">I", len(EXPORT)) + EXPORT + struct.pack(">I", 0))
assert opt_reply(s)[1] == 0x80000003  # SET_META_CONTEXT before STRUCTURED_REPLY: INVALID
option(s, 7, b"\x00\x00\x10\x00short")  # name length beyond the data
assert opt_reply(s)[1] == 0x80000003
option(s, 9, struct.pack(">I", len(EXPORT)) + EXPORT + struct.pack(">I", 1) + struct.pack(">I", 5) + b"base:")
opt, rtype, data = opt_reply(s)
assert rtype == 4 and data[4:] == b"base:allocation", (rtype, data)
assert opt_reply(s)[1] == 1
option(s, 2)  # ABORT
assert opt_reply(s)[1] == 1
assert closed(s)
healthy("unknown option, LIST, unknown export, bad lengths, LIST_META_CONTEXT, ABORT")

# 3. transmission: out of range, oversized, bad flags, unknown command, writes on -r
s = conn()
hello(s)
go(s)
request(s, 0, SIZE - 512, 1024)
assert simple_reply(s) == (22, 7), "out-of-range read must be EINVAL"
request(s, 0, 2**63, 512)
assert simple_reply(s)[0] == 22
request(s, 0, 0, 64 << 20)
assert simple_reply(s)[0] == 22, "a read above 32 MiB must be EINVAL"
request(s, 0, 0, 512, flags=0x8)
assert simple_reply(s)[0] == 22, "REQ_ONE on READ must be EINVAL"
request(s, 99, 0, 512)
assert simple_reply(s)[0] == 22
request(s, 7, 0, 512)
assert simple_reply(s)[0] == 22, "BLOCK_STATUS without a meta context must be EINVAL"
request(s, 1, 0, 4096)
s.sendall(b"\xee" * 4096)
assert simple_reply(s)[0] == 1, "a write on a read-only export must be EPERM"
request(s, 1, SIZE, 1 << 20, cookie=9)
s.sendall(b"\xee" * (1 << 20))
err, cookie = simple_reply(s)
assert err in (1, 28) and cookie == 9
request(s, 0, 0, 512, cookie=11)
assert simple_reply(s) == (0, 11), "the connection is still in sync after refused writes"
recvall(s, 512)
s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, 0, 1, 0, 512))
assert closed(s)
healthy("range, size, flag, command checks; bad request magic disconnects")

# 4. structured replies: a read error is a structured error chunk; block status works
s = conn()
hello(s)
option(s, 8)
assert opt_reply(s)[1] == 1
option(s, 10, struct.pack(">I", len(EXPORT)) + EXPORT + struct.pack(">I", 1) + struct.pack(">I", 15) + b"base:allocation")
opt, rtype, data = opt_reply(s)
assert rtype == 4 and data[4:] == b"base:allocation"
ctx = struct.unpack(">I", data[:4])[0]
assert opt_reply(s)[1] == 1
go(s)
request(s, 0, SIZE, 512, cookie=5)
magic, flags, rtype, cookie, ln = struct.unpack(">IHHQI", recvall(s, 20))
assert magic == 0x668E33EF and flags & 1 and rtype == 0x8001 and cookie == 5, (hex(magic), rtype)
err = struct.unpack(">I", recvall(s, ln)[:4])[0]
assert err == 22
request(s, 7, 0, SIZE, cookie=6)
magic, flags, rtype, cookie, ln = struct.unpack(">IHHQI", recvall(s, 20))
assert rtype == 5 and flags & 1, rtype
data = recvall(s, ln)
assert struct.unpack(">I", data[:4])[0] == ctx
total = sum(struct.unpack(">I", data[i : i + 4])[0] for i in range(4, len(data), 8))
assert total == SIZE or len(data) == 4 + 8 * 2048, (total, SIZE)
request(s, 0, 0, 4096, cookie=8)
magic, flags, rtype, cookie, ln = struct.unpack(">IHHQI", recvall(s, 20))
assert rtype == 1 and ln == 8 + 4096 and cookie == 8
recvall(s, ln)
s.close()  # abrupt: no DISC
healthy("structured errors, block status, abrupt disconnect")

# 5. a client that connects and stays silent does not block others
idle = conn()
healthy("an idle client does not block others")
idle.close()
print("all protocol cases passed")
