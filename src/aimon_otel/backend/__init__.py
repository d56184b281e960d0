"""What the backend is given, generated from the same code as the telemetry: Prometheus recording and alert
rules (``alerts``) and spend reports read back from Prometheus (``report``)."""
