"""OpenAI-compatible HTTP on the family replicas, as a converter over their RPCs.

`calls` (`HttpContext`: an HTTP request run through a family's own
`unary_rpc` / `stream_rpc` method; the status it set answered as HTTP),
`routes` (`HttpIngress.__call__`, dispatch by method and path), `fields`
(typed reads of the JSON body), `sse` (server-sent events), `models`
(`GET /v1/models` over every family). Each family's conversions live in
`deployments/<family>/openai_api.py`. See README "OpenAI-compatible HTTP".
"""
