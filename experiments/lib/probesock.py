# SPDX-License-Identifier: MIT
# probesock.py: the sockets the transparency probes send and receive with (probes.sh runs it in a namespace).
#
# One small command per job, each bounded in time, each printing "key=value"
# lines that probes.sh reads: what a sender used (its local address, the
# header fields it set) and what a receiver got (peer address, byte count).
# Receivers print "ready" once their socket is bound, flush every line, and
# exit by themselves after --seconds, so a probe that goes wrong leaves no
# listener behind. Standard library only.
#
#   python3 probesock.py tcp-send 10.102.0.2 5201 --ttl 33 --tos 0xb8
#   python3 probesock.py udp-listen 10.102.0.2 5202 --seconds 5

import argparse
import select
import socket
import sys
import time

IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DONT = getattr(socket, "IP_PMTUDISC_DONT", 0)
IP_PMTUDISC_DO = getattr(socket, "IP_PMTUDISC_DO", 2)


def say(**fields):
    print(" ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def set_header_fields(sock, args):
    if args.ttl is not None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, args.ttl)
    if args.tos is not None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, int(args.tos, 0))


def recv_until_quiet(sock, deadline):
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:  # a reset ends the exchange as EOF does; the caller judges the bytes
            break
        if not chunk:
            break
        data += chunk
    return data


def tcp_send(args):
    """Connects, says where from, sends one line, reads the reply until EOF."""
    sock = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    set_header_fields(sock, args)
    sock.settimeout(args.timeout)
    try:
        sock.connect((args.host, args.port))
    except OSError as e:
        say(connect="failed", error=str(e).replace(" ", "_"))
        return 2
    local = sock.getsockname()
    say(connect="ok", local=f"{local[0]}:{local[1]}")
    sock.sendall((args.data + "\n").encode())
    sock.shutdown(socket.SHUT_WR)
    reply = recv_until_quiet(sock, time.monotonic() + args.timeout)
    say(reply_bytes=len(reply), reply=reply.decode(errors="replace").strip().replace(" ", "_") or "-")
    sock.close()
    return 0


def tcp_listen(args):
    """Accepts connections; records each peer and what it sent; answers 'ok PEER'."""
    srv = socket.socket(family_of(args.addr), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(128)
    say(ready=1)
    end = time.monotonic() + args.seconds
    accepted = 0
    while time.monotonic() < end and accepted < args.max:
        ready, _, _ = select.select([srv], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        conn, peer = srv.accept()
        accepted += 1
        data = recv_until_quiet(conn, time.monotonic() + 2)
        say(peer=f"{peer[0]}:{peer[1]}", bytes=len(data),
            data=data.decode(errors="replace").strip().replace(" ", "_") or "-")
        try:
            conn.sendall(f"ok {peer[0]}\n".encode())
        except OSError:
            pass
        conn.close()
    return 0


def udp_send(args):
    """Sends one datagram of --size bytes; waits --wait s for any answer."""
    sock = socket.socket(family_of(args.host), socket.SOCK_DGRAM)
    set_header_fields(sock, args)
    if args.df is not None and sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER,
                        IP_PMTUDISC_DO if args.df == "yes" else IP_PMTUDISC_DONT)
    sock.connect((args.host, args.port))
    local = sock.getsockname()
    payload = (args.data.encode() + b"." * args.size)[: max(args.size, len(args.data))]
    try:
        sent = sock.send(payload)
    except OSError as e:
        say(sent=0, error=str(e).replace(" ", "_"))
        return 2
    say(local=f"{local[0]}:{local[1]}", sent=sent)
    ready, _, _ = select.select([sock], [], [], args.wait)
    if ready:
        try:
            reply = sock.recv(65536)
            say(reply_bytes=len(reply), reply=reply.decode(errors="replace").strip().replace(" ", "_"))
        except OSError as e:
            say(reply_bytes=0, error=str(e).replace(" ", "_"))
    else:
        say(reply_bytes=0)
    return 0


def udp_listen(args):
    """Records every datagram (peer, size); answers each with a short 'ok'."""
    sock = socket.socket(family_of(args.addr), socket.SOCK_DGRAM)
    sock.bind((args.addr, args.port))
    say(ready=1)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        data, peer = sock.recvfrom(65536)
        say(peer=f"{peer[0]}:{peer[1]}", bytes=len(data))
        sock.sendto(f"ok {len(data)}".encode(), peer)
    return 0


def raw_send(args):
    """One IP datagram of protocol --proto: the kernel writes the IP header."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, args.proto)
    payload = (args.data.encode() + b"." * args.size)[: max(args.size, len(args.data))]
    try:
        sent = sock.sendto(payload, (args.host, 0))
    except OSError as e:
        say(sent=0, error=str(e).replace(" ", "_"))
        return 2
    say(sent=sent)
    return 0


def raw_listen(args):
    """Records every datagram of --proto the stack delivers (after netfilter INPUT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, args.proto)
    say(ready=1)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        data, peer = sock.recvfrom(65536)
        ihl = (data[0] & 0x0F) * 4 if data else 0
        say(src=peer[0], proto=data[9] if len(data) > 9 else "?", bytes=len(data) - ihl)
    return 0


def flows(args):
    """Opens --count TCP connections and holds them open --seconds."""
    socks = []
    for _ in range(args.count):
        sock = socket.socket(family_of(args.host), socket.SOCK_STREAM)
        sock.settimeout(args.timeout)
        try:
            sock.connect((args.host, args.port))
            sock.sendall(b"x")
            socks.append(sock)
        except OSError as e:
            say(connect="failed", error=str(e).replace(" ", "_"))
            sock.close()
    say(opened=len(socks))
    time.sleep(args.seconds)
    for sock in socks:
        sock.close()
    return 0


def hold(args):
    """Accepts up to --count connections and holds them until --seconds pass."""
    srv = socket.socket(family_of(args.addr), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(args.count + 16)
    say(ready=1)
    held = []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([srv], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        conn, _ = srv.accept()
        held.append(conn)
        if len(held) == args.count:
            say(held=len(held))
    time.sleep(max(0.0, end - time.monotonic()))
    say(held=len(held))
    return 0


def parser():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def cmd(name, fn, *positional, **defaults):
        s = sub.add_parser(name)
        for arg in positional:
            s.add_argument(arg, type=int if arg in ("port", "proto", "count") else str)
        s.add_argument("--seconds", type=float, default=defaults.get("seconds", 5))
        s.add_argument("--timeout", type=float, default=3)
        s.add_argument("--wait", type=float, default=1.5)
        s.add_argument("--ttl", type=int)
        s.add_argument("--tos")
        s.add_argument("--df", choices=("yes", "no"))
        s.add_argument("--size", type=int, default=0)
        s.add_argument("--data", default="tunlab-probe")
        s.add_argument("--max", type=int, default=1000)
        s.add_argument("--proto", type=int, default=253)
        s.set_defaults(fn=fn)

    cmd("tcp-send", tcp_send, "host", "port")
    cmd("tcp-listen", tcp_listen, "addr", "port")
    cmd("udp-send", udp_send, "host", "port")
    cmd("udp-listen", udp_listen, "addr", "port")
    cmd("raw-send", raw_send, "host")
    cmd("raw-listen", raw_listen)
    cmd("flows", flows, "host", "port", "count")
    cmd("hold", hold, "addr", "port", "count")
    return p


def main():
    args = parser().parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
