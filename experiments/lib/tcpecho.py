#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tcpecho.py HOST PORT BOUND: the first byte echoed over TCP, tried every 10 ms for BOUND seconds.

For the systems that carry no ICMP (the proxy): an answered echo request
is then a byte that went to dst and came back. A local connect proves
nothing there (the proxy accepts every connection itself), so each try
sends one byte and waits 50 ms for it. Prints "echoed=UNIX_TIME" once,
or nothing when none came back; exits 0 either way.
"""
import socket
import sys
import time


def one_try(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.05)
    try:
        s.connect((host, port))
        s.sendall(b"x")
        return s.recv(1) == b"x"
    except OSError:
        return False
    finally:
        s.close()


def main():
    host, port, bound = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    end = time.time() + bound
    print("started=%.6f" % time.time(), flush=True)
    while time.time() < end:
        if one_try(host, port):
            print("echoed=%.6f" % time.time(), flush=True)
            return
        time.sleep(0.01)


if __name__ == "__main__":
    main()
