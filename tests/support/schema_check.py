#!/usr/bin/env python3
"""Validates JSON documents against the payload schema in docs/schema/ with
the `jsonschema` package (Draft 2020-12), for tests/schema.rs.

  schema_check.py SCHEMA_DIR FILE...

Every *.schema.json under SCHEMA_DIR is itself checked against the
metaschema and registered by its $id; each line of each FILE (one JSON
document a line: the receiver's `bodies`, one POST body each) is validated
against envelope.schema.json. Prints one JSON object:
  {"documents": N, "events": {TYPE: count}, "errors": [{"file", "line", "path", "message"}]}
and exits 0 when there are no errors, 1 when there are, 3 when the package
is missing. The package is looked for in $OVT_SCHEMA_PY, then
$CARGO_TARGET_DIR/schema-py or target/schema-py (tests/setup.sh installs a
pinned version there), before anything installed system-wide.
"""

import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(here, "..", "..", "target")
for d in reversed(list(filter(None, [os.environ.get("OVT_SCHEMA_PY"), os.path.join(target, "schema-py")]))):
    if os.path.isdir(d):
        sys.path.insert(0, d)
try:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
except ImportError as e:
    print("schema_check: needs the jsonschema package (tests/setup.sh installs it into target/schema-py; "
          "or set OVT_SCHEMA_PY): %s" % e, file=sys.stderr)
    sys.exit(3)


def main():
    schema_dir, files = sys.argv[1], sys.argv[2:]
    schemas = {}
    for root, _, names in os.walk(schema_dir):
        for n in sorted(names):
            if n.endswith(".schema.json"):
                with open(os.path.join(root, n)) as f:
                    s = json.load(f)
                Draft202012Validator.check_schema(s)
                schemas[os.path.relpath(os.path.join(root, n), schema_dir)] = s
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    validator = Draft202012Validator(schemas["envelope.schema.json"], registry=registry)
    documents, events, errors = 0, {}, []
    for path in files:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                documents += 1
                doc = json.loads(raw)
                for e in validator.iter_errors(doc):
                    errors.append({"file": path, "line": number, "path": "/".join(map(str, e.absolute_path)),
                                   "message": e.message[:300]})
                for ev in doc.get("events", []) if isinstance(doc, dict) else []:
                    t = ev.get("type") if isinstance(ev, dict) else None
                    events[str(t)] = events.get(str(t), 0) + 1
    print(json.dumps({"documents": documents, "events": events, "errors": errors}))
    sys.exit(1 if errors else 0)


main()
