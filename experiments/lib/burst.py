# SPDX-License-Identifier: MIT
# burst.py: a burst of numbered UDP datagrams and one TCP connect, and the
# receiver that counts them: what a tunnel set up on demand holds, loses or
# reorders while it comes up (the acquire experiment, tests/integration/lazy.bats).
#
# Both ends print "key=value" lines, flushed. Times are CLOCK_REALTIME
# seconds: sender and receiver run in namespaces of one host, one clock;
# a datagram's time is the kernel's arrival stamp (SO_TIMESTAMPNS).
# Every command is bounded in time. Standard library only.
#
#   python3 burst.py recv 10.102.0.2 5300 --count 100 --seconds 10 [--tcp 5301]
#   python3 burst.py send 10.102.0.2 5300 --count 100 [--tcp 5301] [--size 200]

import argparse
import select
import socket
import struct
import sys
import time

TCP_INFO = getattr(socket, "TCP_INFO", 11)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
# struct tcp_info: u8 x8, then u32 fields; tcpi_total_retrans is the 26th u32 (offset 100).
TCPI_TOTAL_RETRANS_OFF = 100


def say(**fields):
    print(" ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def arrival(anc):
    """The kernel's arrival stamp of a datagram (SO_TIMESTAMPNS), so a
    receiver that wakes late on a busy machine does not move the first
    datagram's time; now, if the kernel gave none."""
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            return sec + nsec / 1e9
    return time.time()


def recv(args):
    fam = family_of(args.addr)
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    u.bind((args.addr, args.port))
    socks = [u]
    t = None
    if args.tcp:
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((args.addr, args.tcp))
        t.listen(4)
        socks.append(t)
    say(ready=1)
    deadline = time.monotonic() + args.seconds
    got, first, last, in_order, prev, accepted = 0, 0.0, 0.0, 1, -1, 0
    seen = set()
    while time.monotonic() < deadline and not (got >= args.count and (not t or accepted)):
        r, _, _ = select.select(socks, [], [], max(0.0, deadline - time.monotonic()))
        for s in r:
            if s is t:
                c, _ = t.accept()
                accepted += 1
                c.close()
                continue
            data, anc, _, _ = u.recvmsg(65535, socket.CMSG_SPACE(TIMESPEC.size))
            now = arrival(anc)
            if len(data) < 4:
                continue
            seq = struct.unpack("!I", data[:4])[0]
            if seq in seen:
                continue
            seen.add(seq)
            got += 1
            first = first or now
            last = now
            if seq < prev:
                in_order = 0
            prev = seq
    say(received=got, first=f"{first:.6f}", last=f"{last:.6f}", in_order=in_order, accepted=accepted)


def tcp_connect(args):
    s = socket.socket(family_of(args.addr), socket.SOCK_STREAM)
    s.settimeout(args.connect_timeout)
    t0 = time.monotonic()
    try:
        s.connect((args.addr, args.tcp))
        ok = 1
    except OSError:
        ok = 0
    ms = (time.monotonic() - t0) * 1000
    info = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104)
    retrans = struct.unpack_from("I", info, TCPI_TOTAL_RETRANS_OFF)[0] if len(info) >= 104 else -1
    s.close()
    say(connect_ok=ok, connect_ms=f"{ms:.3f}", syn_retrans=retrans)


def send(args):
    u = socket.socket(family_of(args.addr), socket.SOCK_DGRAM)
    pad = b"\0" * max(0, args.size - 4)
    say(start=f"{time.time():.6f}")
    sent = 0
    for i in range(args.count):
        try:
            u.sendto(struct.pack("!I", i) + pad, (args.addr, args.port))
            sent += 1
        except OSError:
            pass
        if args.gap_us:
            time.sleep(args.gap_us / 1e6)
    say(sent=sent)
    if args.tcp:
        tcp_connect(args)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    cmds = {name: sub.add_parser(name) for name in ("recv", "send")}
    for c in cmds.values():
        c.add_argument("addr")
        c.add_argument("port", type=int)
        c.add_argument("--count", type=int, default=100)
        c.add_argument("--tcp", type=int, default=0)
    cmds["recv"].add_argument("--seconds", type=float, default=10)
    cmds["send"].add_argument("--size", type=int, default=200)
    cmds["send"].add_argument("--gap-us", type=int, default=0)
    cmds["send"].add_argument("--connect-timeout", type=float, default=5)
    args = p.parse_args()
    recv(args) if args.cmd == "recv" else send(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
