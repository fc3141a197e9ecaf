# SPDX-License-Identifier: MIT
# hsflood.py: a stranger's handshake flood: holds idle TCP connections to a TLS listener, renewing closed ones.
#
# Opens COUNT TCP connections to HOST PORT that never send a byte (a TLS
# client that never says hello), and opens a new one whenever the server
# closes one (handshake timeout, refusal, eviction), as an attacker who
# wants to keep every slot would. Bounded: exits by itself after --seconds,
# never holds more than COUNT sockets, and opens at most --rate new
# connections a second. Prints "ready held=N" once the first COUNT attempts
# are made, and a summary line of key=value pairs at exit. Standard library only.
#
#   python3 hsflood.py 10.101.0.1 4443 1500 --seconds 30

import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def say(**fields):
    print(" ".join(f"{k}={v}" for k, v in fields.items()), flush=True)


def raise_nofile(count):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 64) if hard != resource.RLIM_INFINITY else count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Flood:
    def __init__(self, host, port, count, rate):
        self.addr = (host, port)
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.count = count
        self.rate = rate
        self.sel = selectors.DefaultSelector()
        self.open = 0
        self.opened = 0
        self.closed_by_server = 0
        self.failed = 0
        self.max_open = 0
        self.tokens = float(count)  # the first COUNT go at once
        self.last = time.monotonic()

    def connect_one(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.failed += 1
            return
        self.sel.register(s, selectors.EVENT_READ)
        self.open += 1
        self.opened += 1
        self.max_open = max(self.max_open, self.open)

    def refill(self):
        now = time.monotonic()
        self.tokens = min(float(self.count), self.tokens + (now - self.last) * self.rate)
        self.last = now

    def top_up(self):
        self.refill()
        while self.open < self.count and self.tokens >= 1:
            self.tokens -= 1
            self.connect_one()

    def on_readable(self, key):
        s = key.fileobj
        try:
            data = s.recv(1)
        except OSError:
            data = b""
        if data:
            return  # the server spoke first (it never should): keep holding
        self.sel.unregister(s)
        s.close()
        self.open -= 1
        self.closed_by_server += 1

    def run(self, seconds):
        deadline = time.monotonic() + seconds
        self.top_up()
        say(ready="", held=self.open)
        while time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.02):
                self.on_readable(key)
            self.top_up()
        say(opened=self.opened, closed_by_server=self.closed_by_server, failed=self.failed,
            max_open=self.max_open, open_at_end=self.open)


def main():
    ap = argparse.ArgumentParser(description="hold idle TCP connections to a listener")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=2000.0, help="new connections per second at most")
    args = ap.parse_args()
    if not 1 <= args.count <= 10000 or not 0 < args.seconds <= 300:
        sys.exit("hsflood: count 1..10000 and seconds up to 300")
    raise_nofile(args.count)
    Flood(args.host, args.port, args.count, args.rate).run(args.seconds)


if __name__ == "__main__":
    main()
