//! Delivery to the telemetry server (issue 3): not built yet.
