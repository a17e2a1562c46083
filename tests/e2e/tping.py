#!/usr/bin/env python3
"""tests/e2e/tping.py: ICMP echo through one tun device (iputils' ping is not
always installed). Usage: tping.py DEV DST [COUNT [SIZE]]. Exit 0 when every
echo got its reply within 2 s, else 1. Needs root (raw socket)."""
import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> int:
    dev, dst = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 56
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
    ident = os.getpid() & 0xFFFF
    for seq in range(1, count + 1):
        payload = os.urandom(size)
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, seq) + payload
        sock.sendto(pkt, (dst, 0))
        deadline = time.monotonic() + 2.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                print(f"tping: no reply from {dst} via {dev} (seq {seq})", file=sys.stderr)
                return 1
            data, addr = sock.recvfrom(65535)
            ihl = (data[0] & 0x0F) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if addr[0] == dst and typ == 0 and rid == ident and rseq == seq:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
