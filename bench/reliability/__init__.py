"""Overload and faults on one Maestro stack: settings, processes, calls, runs.

`bench.reliability_bench` is the script; `bench.reliability.run.run` starts
the stack and measures, `overload` and `faults` hold the two measurements,
`results` their dataclasses and `report` the Markdown and JSON forms.
"""
