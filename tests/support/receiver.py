#!/usr/bin/env python3
"""A small telemetry server for tests: real HTTP/1.1 (keep-alive) and real TLS
(optionally requiring a client certificate), python3 standard library only.

CLI (stable; the agent tests and the e2e helper both use it):
  receiver.py --listen 127.0.0.1:0 --ready-file F [--cert C --key K]
              [--client-ca CA] [--token TOKEN] [--db DIR] [--script SPEC]
              [--error-body-hex HEX] [--keep-bodies]

- writes the port it listens on to F (atomically) once it accepts;
- POST (any path): with --token, requires `Authorization: Bearer TOKEN`
  (else 401); gunzips `Content-Encoding: gzip`; parses the envelope
  {"server_id","sent_at","events":[...]} (else 400); stores first-seen
  events (by event_id) in DIR/events.ndjson and counts duplicates;
- GET /stats: {"requests","batches","events","duplicates", ...} where
  "log" lists every POST as {"t","status","events","bytes","gzip"}; with
  --db the same JSON is kept in DIR/stats.json (replaced atomically after
  every POST), so tests of TLS servers need no HTTPS client;
- --script: comma list of answers for successive POSTs before falling back
  to 200: `200` (answer normally), `503`, `400`, `401`, `hang` (read the
  request, never answer),
  `429:2` (with Retry-After: 2). `413>N` is a standing rule instead: 413
  whenever the (decoded) body is over N bytes.
- --error-body-hex: the body of every scripted non-2xx answer, as hex bytes
  (default `{"error":"scripted N"}`), e.g. a hostile server's terminal
  escape sequences;
- --otlp: the body must be an OTLP/HTTP JSON ExportLogsServiceRequest,
  parsed strictly by the opentelemetry-proto package (unknown or mistyped
  fields are a 400 and are counted in "otlp_errors"); each LogRecord must
  carry the event as its body and agree with it (eventName, openvpn.event_id,
  openvpn.seq, timeUnixNano), else it counts in "otlp_errors" too. The
  events are the records' bodies. The package is looked for in $OVT_OTLP_PY,
  then target/otlp-py (tests/setup.sh installs it there). Script step
  `partial:N` answers 200 with partialSuccess.rejectedLogRecords = N;
- --reject SPEC: a standing rule for every POST that would be taken, as a
  collector's memory limiter, quota or schema filter does: `all` (every
  event), `N` (the first N events, at most as many as the batch holds),
  `N!` (claims N whatever the batch held: a hostile count), `type=T` (the
  events of type T). With --otlp the answer is 200 with
  partialSuccess.rejectedLogRecords and an errorMessage; without, a batch
  with any rejected event is refused whole with 400 (the JSON API has no
  partial answer). Rejected events are not stored; "rejected" in /stats
  counts them (claimed, for `N!`);
- --reject-message-bytes K: the errorMessage (or 400 body) is K bytes of
  text full of terminal escapes and newlines, as a hostile server's;
- --keep-bodies (with --db): every POST body as received (gunzipped when
  gzip), appended to DIR/bodies followed by a newline, so a test can say
  what was ever sent, envelope or not.
"""

import argparse
import gzip
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.token = args.token
        self.db = args.db
        self.error_body = bytes.fromhex(args.error_body_hex) if args.error_body_hex else None
        self.keep_bodies = args.keep_bodies
        self.otlp = load_otlp() if args.otlp else None
        self.otlp_errors = 0
        self.otlp_error_examples = []
        self.steps = []
        self.reject = args.reject
        self.reject_message = hostile_text(args.reject_message_bytes) if args.reject_message_bytes else "rejected"
        self.rejected = 0
        self.max_body = None
        for item in filter(None, (args.script or "").split(",")):
            item = item.strip()
            if item.startswith("413>"):
                self.max_body = int(item[4:])
            else:
                self.steps.append(item)
        self.requests = 0
        self.batches = 0
        self.events = 0
        self.duplicates = 0
        self.seen = set()
        self.log = []
        self.hang = threading.Event()
        if self.db:
            os.makedirs(self.db, exist_ok=True)
            path = os.path.join(self.db, "events.ndjson")
            # A restarted receiver keeps deduplicating against what it stored.
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        try:
                            self.seen.add(json.loads(line)["event_id"])
                        except (ValueError, KeyError, TypeError):
                            pass
                self.events = len(self.seen)


    def stats_json(self):
        return json.dumps(
            {
                "requests": self.requests,
                "batches": self.batches,
                "events": self.events,
                "duplicates": self.duplicates,
                "rejected": self.rejected,
                "log": self.log,
                "otlp_errors": self.otlp_errors,
                "otlp_error_examples": self.otlp_error_examples[:5],
            }
        ).encode()

    def save_stats(self):
        """Called with the lock held."""
        if self.db:
            path = os.path.join(self.db, "stats.json")
            with open(path + ".tmp", "wb") as f:
                f.write(self.stats_json())
            os.replace(path + ".tmp", path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ovt-test-receiver"

    def log_message(self, fmt, *args):
        if os.environ.get("RECEIVER_VERBOSE"):
            sys.stderr.write("receiver: " + (fmt % args) + "\n")

    def answer(self, status, body=b"", headers=()):
        st = self.server.state
        with st.lock:
            st.save_stats()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        if self.path.rstrip("/") == "/stats":
            with st.lock:
                body = st.stats_json()
            self.answer(200, body)
        else:
            self.answer(404, b'{"error":"not found"}')

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) < length:
            # The sender went away mid-body (a test kills the agent with -9
            # while it posts): not a request, nothing to answer or count.
            self.close_connection = True
            return
        gz = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        with st.lock:
            st.requests += 1
            step = st.steps.pop(0) if st.steps else None
            if step is not None and step.startswith("2"):
                step = None  # a scripted 2xx is a normal answer
            entry = {"t": time.time(), "status": 0, "events": 0, "bytes": len(raw), "gzip": gz}
            st.log.append(entry)
            if st.keep_bodies and st.db:
                try:
                    kept = gzip.decompress(raw) if gz else raw
                except OSError:
                    kept = raw
                with open(os.path.join(st.db, "bodies"), "ab") as f:
                    f.write(kept + b"\n")
            st.save_stats()
        if step == "hang":
            with st.lock:
                entry["status"] = -1
                st.save_stats()
            st.hang.wait()
            return
        partial = 0
        if step is not None and step.startswith("partial:"):
            partial = int(step.partition(":")[2])
            step = None
        if step is not None:
            status, _, after = step.partition(":")
            status = int(status)
            entry["status"] = status
            headers = [("Retry-After", after)] if after else []
            body = st.error_body if st.error_body is not None else b'{"error":"scripted %d"}' % status
            return self.answer(status, body, headers)
        if st.token is not None and self.headers.get("Authorization") != "Bearer " + st.token:
            entry["status"] = 401
            return self.answer(401, b'{"error":"bad token"}')
        try:
            body = gzip.decompress(raw) if gz else raw
        except OSError:
            entry["status"] = 400
            return self.answer(400, b'{"error":"bad gzip"}')
        if st.max_body is not None and len(body) > st.max_body:
            entry["status"] = 413
            return self.answer(413, b'{"error":"too large"}')
        if st.otlp is not None:
            try:
                events, problems = otlp_events(st.otlp, body)
            except Exception as e:  # the strict parser's verdict
                with st.lock:
                    st.otlp_errors += 1
                    st.otlp_error_examples.append(str(e)[:300])
                entry["status"] = 400
                return self.answer(400, json.dumps({"error": str(e)[:300]}).encode())
            if problems:
                with st.lock:
                    st.otlp_errors += len(problems)
                    st.otlp_error_examples.extend(problems)
        else:
            try:
                env = json.loads(body)
                events = env["events"]
                assert isinstance(env["server_id"], str) and isinstance(env["sent_at"], str)
                assert isinstance(events, list) and all(isinstance(e, dict) for e in events)
            except (ValueError, KeyError, TypeError, AssertionError):
                entry["status"] = 400
                return self.answer(400, b'{"error":"bad envelope"}')
        refused = rejected_events(st.reject, events)
        claimed = len(refused)
        if st.reject and st.reject.endswith("!"):
            claimed = int(st.reject[:-1])
        if claimed and st.otlp is None:
            with st.lock:
                st.rejected += claimed
            entry["status"] = 400
            return self.answer(400, json.dumps({"error": st.reject_message}).encode())
        events = [ev for i, ev in enumerate(events) if i not in refused]
        with st.lock:
            st.rejected += claimed
            new = []
            for ev in events:
                eid = ev.get("event_id")
                if eid in st.seen:
                    st.duplicates += 1
                else:
                    st.seen.add(eid)
                    new.append(ev)
            if st.db and new:
                with open(os.path.join(st.db, "events.ndjson"), "a") as f:
                    for ev in new:
                        f.write(json.dumps(ev, separators=(",", ":")) + "\n")
            st.events += len(new)
            st.batches += 1
            entry["status"] = 200
            entry["events"] = len(events)
        if partial:
            answer = {"partialSuccess": {"rejectedLogRecords": str(partial), "errorMessage": "scripted partial"}}
            return self.answer(200, json.dumps(answer).encode())
        if claimed:
            answer = {"partialSuccess": {"rejectedLogRecords": str(claimed), "errorMessage": st.reject_message}}
            return self.answer(200, json.dumps(answer, ensure_ascii=False).encode())
        self.answer(200, b'{}' if st.otlp is not None else b'{"ok":true}')


def rejected_events(spec, events):
    """The indexes of the events --reject SPEC refuses."""
    if not spec:
        return set()
    if spec == "all":
        return set(range(len(events)))
    if spec.startswith("type="):
        return {i for i, ev in enumerate(events) if ev.get("type") == spec[5:]}
    return set(range(min(int(spec.rstrip("!")), len(events))))


def hostile_text(size):
    """`size` bytes of text a terminal or a log must not take as it is."""
    piece = "\x1b[2Jhostile\r\nERROR root: owned\u202e " + "x" * 100
    return (piece * (size // len(piece.encode()) + 1)).encode()[:size].decode("utf-8", "ignore")


def load_otlp():
    here = os.path.dirname(os.path.abspath(__file__))
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(here, "..", "..", "target")
    for d in filter(None, [os.environ.get("OVT_OTLP_PY"), os.path.join(target, "otlp-py")]):
        if os.path.isdir(d):
            sys.path.insert(0, d)
    try:
        from google.protobuf import json_format
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    except ImportError as e:
        sys.exit("receiver: --otlp needs the opentelemetry-proto package (tests/setup.sh installs it into "
                 "target/otlp-py; or set OVT_OTLP_PY): %s" % e)
    return json_format, ExportLogsServiceRequest


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def otlp_events(otlp, body):
    """Strictly parses an ExportLogsServiceRequest; returns the events (the
    records' bodies) and the records that disagree with their event."""
    json_format, Request = otlp
    req = json_format.Parse(body, Request(), ignore_unknown_fields=False)
    events, problems = [], []
    for rl in req.resource_logs:
        res = {a.key: any_value(a.value) for a in rl.resource.attributes}
        if res.get("service.name") != "openvpn-telemetry" or "openvpn.server_id" not in res:
            problems.append("resource without service.name/openvpn.server_id: %r" % res)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                ev = json.loads(rec.body.string_value)
                attrs = {a.key: any_value(a.value) for a in rec.attributes}
                if rec.event_name != ev.get("type"):
                    problems.append("eventName %r for type %r" % (rec.event_name, ev.get("type")))
                if attrs.get("openvpn.event_id") != ev.get("event_id") or attrs.get("openvpn.seq") != ev.get("seq"):
                    problems.append("attributes disagree with the body: %r" % attrs)
                if ev.get("instance") is not None and res.get("openvpn.instance") != ev.get("instance"):
                    problems.append("event of instance %r under resource %r" % (ev.get("instance"), res))
                if "event_time_vpn" in ev and rec.time_unix_nano == 0:
                    problems.append("no timeUnixNano for %r" % ev["event_time_vpn"])
                events.append(ev)
    return events, problems


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    p.add_argument("--token")
    p.add_argument("--db")
    p.add_argument("--script")
    p.add_argument("--error-body-hex")
    p.add_argument("--keep-bodies", action="store_true")
    p.add_argument("--otlp", action="store_true")
    p.add_argument("--reject")
    p.add_argument("--reject-message-bytes", type=int)
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    host = host.strip("[]")
    if ":" in host:
        Server.address_family = __import__("socket").AF_INET6
    srv = Server((host, int(port)), Handler)
    srv.state = State(args)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        # Handshake in the handler thread, so one stuck client cannot block accept().
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, args.ready_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
