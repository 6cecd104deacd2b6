"""Maestro's observability: tracing setup, metric definitions, config.

`config` reads the `observability:` block of serve_config.yaml; `tracing`
holds the span exporter Ray imports and the span helpers; `metrics` the
`maestro_*` metric table. Prometheus, alert and Grafana files live beside.
"""
