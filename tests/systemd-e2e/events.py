#!/usr/bin/env python3
"""tests/systemd-e2e/events.py: waits for events in the receiver's store
(receiver.py --db DIR keeps first-seen events in DIR/events.ndjson).

Usage: events.py DIR [--type T] [--cn CN] [--id ID ...] [--positive FIELD ...]
                     [--eq FIELD=VALUE ...] [--min N] [--timeout S]

Waits (up to S seconds, default 20) until at least N (default 1) stored
events match every given filter: type, common_name, event_id among the
--id values (then N defaults to their count), each --positive FIELD an
integer > 0, each --eq FIELD=VALUE equal as a string. Prints a JSON summary {"matched": n, "last": event} and exits
0, or prints what it saw and exits 1 on time-out. Runs inside the container
(python3 standard library only).
"""

import argparse
import json
import os
import sys
import time


def load(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--type")
    ap.add_argument("--cn")
    ap.add_argument("--id", action="append", default=[])
    ap.add_argument("--positive", action="append", default=[])
    ap.add_argument("--eq", action="append", default=[])
    ap.add_argument("--min", type=int)
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    want = a.min if a.min is not None else (len(a.id) or 1)
    ids = set(a.id)

    def ok(e):
        if a.type and e.get("type") != a.type:
            return False
        if a.cn and e.get("common_name") != a.cn:
            return False
        if ids and e.get("event_id") not in ids:
            return False
        for kv in a.eq:
            k, _, v = kv.partition("=")
            if str(e.get(k)) != v:
                return False
        for f in a.positive:
            v = e.get(f)
            if not isinstance(v, int) or v <= 0:
                return False
        return True

    path = os.path.join(a.db, "events.ndjson")
    deadline = time.monotonic() + a.timeout
    while True:
        events = load(path)
        hits = [e for e in events if ok(e)]
        if len(hits) >= want:
            print(json.dumps({"matched": len(hits), "last": hits[-1]}))
            return 0
        if time.monotonic() > deadline:
            types = {}
            for e in events:
                types[e.get("type")] = types.get(e.get("type"), 0) + 1
            print(json.dumps({"matched": len(hits), "wanted": want, "stored_by_type": types}))
            return 1
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
