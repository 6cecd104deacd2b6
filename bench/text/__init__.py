"""The text family's benchmark: prompts, servers, runs, result and report.

`bench.text_bench` is the script; `measure` there returns a `TextResult`
(`bench.text.result`) and `bench.text.section` renders one to Markdown.
"""
