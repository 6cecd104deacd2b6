"""What every benchmark shares: processes, probes, stacks, machine, Markdown.

- `log`: progress on stderr and the UTC stamp results are named by;
- `procs`: a started server (`Server`), its session, and stopping it;
- `probes`: readiness probes and the one `wait_until_serving`;
- `serve_config`: serve_config.yaml as it is, with free ports;
- `stack`: a Maestro stack (`serve run`), ready, then stopped;
- `memory`: what every process of a stack holds, sampled per phase;
- `machine`: what the figures were measured on;
- `results`: result dataclasses to and from their JSON documents;
- `markdown`: a report page (lines, charts, target rows) and number formats.
- `signals`: SIGTERM and SIGINT unwind like Ctrl-C (stacks are stopped).

Benchmarks import these, never each other's private helpers.
"""
