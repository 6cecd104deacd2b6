"""API keys, scopes and per-key quotas, checked in the ingress layer of every replica.

`config` (the `auth:` block), `keys` (hashing, the local key, resolution by
the launcher), `quotas` (memory and Redis counters), `guard` (the per-RPC
check). See README "Security".
"""
