"""The response cache: results of deterministic requests, served once.

`config.CacheConfig` is a family's `cache:` block; `keys` makes the key
(canonical request + model identity); `stores` keeps entries in memory or
Redis; `responses.ResponseCache` is what a family deployment calls.
"""
