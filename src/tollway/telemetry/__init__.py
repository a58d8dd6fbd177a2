"""Telemetry: Prometheus metrics (`metrics`) and OpenTelemetry traces (`tracing`, optional
extra `tollway[otel]`, imported only when traces are on)."""
