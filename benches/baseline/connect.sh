#!/bin/bash
# Baseline only (make bench): the original installer's client-connect hook,
# which hands the event to its writer beside it and always exits 0.
"$(dirname "$0")/write-event" SESSION_CONNECTED >/dev/null 2>&1
exit 0
