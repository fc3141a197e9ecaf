#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# udpforge.py IFACE SERVER PORT: run in cli. Captures one datagram of the
# tunnel's UDP data channel on IFACE, sends it again (a replay), sends
# random bytes behind its header (a forgery with a valid-looking header
# and the real session id) and behind a header with another session id.
# Prints "replayed forged unknown" when all three went out. Bounded: gives
# up after 10 s without a datagram.
import os
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003  # outgoing packets reach only ETH_P_ALL taps


def capture(iface, server, port, deadline):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            pkt, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[1] != ETH_P_IP or addr[2] != socket.PACKET_OUTGOING or len(pkt) < 28 or pkt[9] != 17:
            continue
        ihl = (pkt[0] & 15) * 4
        dport = struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0]
        if socket.inet_ntoa(pkt[16:20]) == server and dport == port and len(pkt) >= ihl + 8 + 32:
            return pkt[ihl + 8:]
    return None


def main():
    iface, server, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dg = capture(iface, server, port, time.monotonic() + 10)
    if dg is None:
        print("no datagram captured")
        return 1
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.sendto(dg, (server, port))
    forged = dg[:8] + struct.pack("!Q", struct.unpack("!Q", dg[8:16])[0] + 1000) + os.urandom(len(dg) - 16)
    out.sendto(forged, (server, port))
    sid = struct.unpack("!I", dg[4:8])[0] ^ 0x5a5a5a5a
    unknown = dg[:4] + struct.pack("!I", sid) + dg[8:]
    out.sendto(unknown, (server, port))
    print("replayed forged unknown")
    return 0


sys.exit(main())
