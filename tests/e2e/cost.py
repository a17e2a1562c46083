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
and waits for them to exit. Then the same with one client at a time
(--singles per server, certificates taken in turn): the latency one user
sees, where the burst shows the server's throughput. OpenVPN ends a session (and runs
client-disconnect) 5 s after the client's exit notice, so before visiting a
server with a certificate we wait until its log shows that name's last
session ended, so no visit makes OpenVPN drop a live session of the same
name inside the measurement.

Usage: cost.py --pki DIR --ns NS --remote IP --server hooks:PORT:LOG
               --server plain:PORT:LOG [--server true:PORT:LOG]
               --clients N --rounds R --pidfile F --ledger F --out JSON
Every client PID is appended to --pidfile before anything else happens, so
the harness can end them if this process dies. Common names of sessions on
the hooks server are appended to --ledger (one line per session), so their
events are expected like every other session's. Exit 1 if a tunnel fails.
"""

import argparse
import json
import re
import os
import select
import signal
import statistics
import subprocess
import sys
import time

DONE = b"Initialization Sequence Completed"


# explicit-exit-notify 3: the exit notice is resent for up to 3 s (reaped in
# the background, so that costs nothing); through the delay relay a single
# lost notice would leave the session open until OpenVPN's ping timeout.
def spawn(a, i, port, tag):  # tag: one letter, keeps tun names unique
    cmd = [
        "ip", "netns", "exec", a.ns, "openvpn", "--client", "--dev", f"ovtk{i:02d}{tag}", "--dev-type", "tun",
        "--proto", "udp", "--remote", a.remote, str(port), "--nobind", "--remote-cert-tls", "server",
        "--ca", f"{a.pki}/ca.crt", "--cert", f"{a.pki}/client{i:02d}.crt", "--key", f"{a.pki}/client{i:02d}.key",
        "--explicit-exit-notify", "3", "--connect-retry", "1", "--resolv-retry", "0", "--verb", "3",
    ]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with open(a.pidfile, "a") as f:
        f.write(f"{p.pid}\n")
    return p


def round_trip(a, port, tag, ids):
    """One visit: seconds until the tunnels of clients `ids` are all up (None on failure)."""
    start = time.monotonic()
    procs = [spawn(a, i, port, tag) for i in ids]
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
    # SIGTERM: the client sends its exit notice, then takes about a second
    # to exit. Reaped later (see reap), so that second is not spent idle.
    # Its pipe stays open until then: a closed one would kill it (SIGPIPE)
    # before it sent the exit notice.
    for p in procs:
        p.send_signal(signal.SIGTERM)
    STOPPING.extend(procs)
    if not ok:
        sys.stderr.write(f"cost: only {len(up)}/{len(procs)} tunnels on port {port}\n")
        return None
    return elapsed


STOPPING = []


def reap(block=False):
    """Collects clients that exited; with block, waits for all (KILL after 10 s)."""
    for p in list(STOPPING):
        if block:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.poll() is not None:
            p.stdout.close()
            STOPPING.remove(p)


STARTED = re.compile(r" (\S+)/(\S+) MULTI: primary virtual IP for ")
ENDED = re.compile(r" (\S+)/(\S+) .*client-instance exiting")
REPLACED = re.compile(r"MULTI: new connection by client '([^']+)' will cause previous active sessions")


def live(log):
    """Common names with a session still open on the server of this log."""
    open_ = {}
    with open(log, errors="replace") as f:
        for line in f:
            if m := STARTED.search(line):
                open_.setdefault(m[1], set()).add(m[2])
            elif m := ENDED.search(line):
                open_.get(m[1], set()).discard(m[2])
            elif m := REPLACED.search(line):
                open_.pop(m[1], None)
    return {cn for cn, addrs in open_.items() if addrs}


def wait_free(log, names=None, timeout=15.0):
    """Waits until none of `names` (None: nobody) has an open session."""
    deadline = time.monotonic() + timeout
    while True:
        busy = live(log) if names is None else live(log) & set(names)
        if not busy or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if busy:
        sys.stderr.write(f"cost: {log}: sessions of {sorted(busy)} still open; going on\n")


def main():
    ap = argparse.ArgumentParser()
    for k in ("pki", "ns", "remote", "pidfile", "ledger", "out"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--server", action="append", required=True, help="NAME:PORT:LOG")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--singles", type=int, default=20)
    ap.add_argument("--pool", type=int, default=30, help="client certificates available")
    a = ap.parse_args()
    servers = [(n, int(p)) for n, p, _ in (x.split(":", 2) for x in a.server)]
    logs = {n: log for n, _, log in (x.split(":", 2) for x in a.server)}
    times = {n: [] for n, _ in servers}
    singles = {n: [] for n, _ in servers}

    def visit(name, port, ids, into):
        reap()
        t = round_trip(a, port, name[0], ids)
        if t is None:
            return False
        into[name].append(t)
        if name == "hooks":
            with open(a.ledger, "a") as f:
                f.writelines(f"cost ovt-client-{i:02d}\n" for i in ids)
        return True

    def rotation(r):
        k = r % len(servers)
        order = servers[k:] + servers[:k]
        return order[::-1] if (r // len(servers)) % 2 else order

    try:
        return measure(a, servers, logs, times, singles, visit, rotation)
    finally:
        reap(block=True)


def measure(a, servers, logs, times, singles, visit, rotation):
    # Bursts take their certificates in slices that rotate through the pool,
    # so a server sees the same common names again only after the sessions
    # that used them ended (else it would drop them inside the measurement).
    slices = max(1, a.pool // a.clients)
    visits = {n: 0 for n, _ in servers}
    for r in range(a.rounds):
        for name, port in rotation(r):
            k = visits[name] % slices
            ids = [(k * a.clients + i) % a.pool + 1 for i in range(a.clients)]
            wait_free(logs[name], [f"ovt-client-{i:02d}" for i in ids])
            if not visit(name, port, ids, times):
                return 1
            visits[name] += 1
    for r in range(a.singles):
        for name, port in rotation(r):
            i = r % a.pool + 1
            wait_free(logs[name], [f"ovt-client-{i:02d}"])
            if not visit(name, port, [i], singles):
                return 1
    reap(block=True)
    for name, _ in servers:  # the hooks server's last disconnects, before the harness checks events
        wait_free(logs[name])
    med = {n: statistics.median(v) for n, v in times.items()}
    med1 = {n: statistics.median(v) for n, v in singles.items()}
    res = {
        "clients": a.clients,
        "rounds": a.rounds,
        "singles": a.singles,
        "times_s": times,
        "singles_s": singles,
        "median_s": med,
        "median_single_s": med1,
    }
    res["ratio"] = med["hooks"] / med["plain"]
    res["ratio_single"] = med1["hooks"] / med1["plain"]
    if "true" in med:
        res["ratio_vs_true"] = med["hooks"] / med["true"]
        res["ratio_single_vs_true"] = med1["hooks"] / med1["true"]
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
