#!/usr/bin/env python3
"""tests/e2e/cost.py: what the hooks cost OpenVPN, measured the only way that
matters: wall time until N real clients have their tunnels.

Servers run side by side in the server namespace from the same config: the
one patched by `openvpn-telemetry install` (hooks), one with no scripts
(plain) and, as a yardstick, one whose client-connect/-disconnect is
/bin/true (true: what any script costs OpenVPN, fork + exec + wait). Each
round visits every server, in an order that rotates from round to round so
drift in machine load hits all equally; a visit starts N clients at once,
takes the time from spawn until every client logged "Initialization
Sequence Completed", then stops them with SIGTERM (explicit-exit-notify)
and waits for them to exit.

Usage: cost.py --pki DIR --ns NS --remote IP --server hooks:PORT
               --server plain:PORT [--server true:PORT]
               --clients N --rounds R --pidfile F --ledger F --out JSON
Every client PID is appended to --pidfile before anything else happens, so
the harness can end them if this process dies. Common names of sessions on
the hooks server are appended to --ledger (one line per session), so their
events are expected like every other session's. Exit 1 if a tunnel fails.
"""

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time

DONE = b"Initialization Sequence Completed"


def spawn(a, i, port, tag):  # tag: one letter, keeps tun names unique
    cmd = [
        "ip", "netns", "exec", a.ns, "openvpn", "--client", "--dev", f"ovtk{i:02d}{tag}", "--dev-type", "tun",
        "--proto", "udp", "--remote", a.remote, str(port), "--nobind", "--remote-cert-tls", "server",
        "--ca", f"{a.pki}/ca.crt", "--cert", f"{a.pki}/client{i:02d}.crt", "--key", f"{a.pki}/client{i:02d}.key",
        "--explicit-exit-notify", "1", "--connect-retry", "1", "--resolv-retry", "0", "--verb", "3",
    ]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with open(a.pidfile, "a") as f:
        f.write(f"{p.pid}\n")
    return p


def round_trip(a, port, tag):
    """One round: seconds until all N tunnels are up (None on failure)."""
    start = time.monotonic()
    procs = [spawn(a, i, port, tag) for i in range(1, a.clients + 1)]
    bufs = {p.stdout.fileno(): b"" for p in procs}
    up = {}
    deadline = start + 30
    while len(up) < len(procs) and time.monotonic() < deadline:
        ready, _, _ = select.select(list(bufs), [], [], 0.5)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                bufs.pop(fd)
                continue
            bufs[fd] += chunk
            if fd not in up and DONE in bufs[fd]:
                up[fd] = time.monotonic() - start
    elapsed = time.monotonic() - start
    ok = len(up) == len(procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
    if not ok:
        sys.stderr.write(f"cost: only {len(up)}/{len(procs)} tunnels on port {port}\n")
        return None
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    for k in ("pki", "ns", "remote", "pidfile", "ledger", "out"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--server", action="append", required=True, help="NAME:PORT")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    servers = [(n, int(p)) for n, p in (x.split(":") for x in a.server)]
    times = {n: [] for n, _ in servers}
    for r in range(a.rounds):
        k = r % len(servers)
        order = servers[k:] + servers[:k]
        if (r // len(servers)) % 2:
            order.reverse()
        for name, port in order:
            t = round_trip(a, port, name[0])
            if t is None:
                return 1
            times[name].append(t)
            if name == "hooks":
                with open(a.ledger, "a") as f:
                    f.writelines(f"cost ovt-client-{i:02d}\n" for i in range(1, a.clients + 1))
            # Let the server finish its client-disconnect work before the next visit.
            time.sleep(0.3)
    med = {n: statistics.median(v) for n, v in times.items()}
    res = {"clients": a.clients, "rounds": a.rounds, "times_s": times, "median_s": med}
    res["ratio"] = med["hooks"] / med["plain"]
    if "true" in med:
        res["ratio_vs_true"] = med["hooks"] / med["true"]
        res["ratio_true_vs_plain"] = med["true"] / med["plain"]
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
