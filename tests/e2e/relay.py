#!/usr/bin/env python3
"""tests/e2e/relay.py: a UDP relay that adds network delay, for measuring the
hooks' cost on a link with a real round-trip time (the kernel's netem qdisc
is not always available).

Usage: relay.py --listen IP:PORT --to IP:PORT --bind IP --delay-ms D --ready-file F
Every datagram is forwarded D ms after it arrived, in both directions; each
client address gets its own upstream socket (bound to --bind), so the server
sees one peer per client, as without the relay. Runs until killed; writes F
once listening. Delay is scheduled from arrival time, so a slow loop adds
no extra delay beyond its own lateness.
"""

import argparse
import heapq
import itertools
import os
import select
import socket
import time


def addr(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--ready-file", required=True)
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0
    server = addr(a.to)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(addr(a.listen))
    upstream = {}  # client address -> socket towards the server
    client_of = {}  # socket -> client address
    queue = []  # (due, n, socket, data, destination)
    order = itertools.count()
    with open(a.ready_file + ".tmp", "w") as f:
        f.write("ready")
    os.replace(a.ready_file + ".tmp", a.ready_file)
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select([front, *client_of], [], [], timeout)
        now = time.monotonic()
        for sock in ready:
            if sock is front:
                data, src = front.recvfrom(65535)
                up = upstream.get(src)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind((a.bind, 0))
                    upstream[src] = up
                    client_of[up] = src
                heapq.heappush(queue, (now + delay, next(order), up, data, server))
            else:
                data = sock.recv(65535)
                heapq.heappush(queue, (now + delay, next(order), front, data, client_of[sock]))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, sock, data, dest = heapq.heappop(queue)
            try:
                sock.sendto(data, dest)
            except OSError:
                pass  # like a lossy link: OpenVPN retransmits


if __name__ == "__main__":
    main()
