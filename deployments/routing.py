"""Model affinity: a call naming a model goes to a replica that holds it.

A family with several replicas loads models on demand in each (see
`deployments.registry`); without affinity, calls for one model would spread
over every replica and each would load (and evict for) it. Two paths:

- **Clients over gRPC** (HAProxy ingress, Ray 2.60): HAProxy balances each
  call on its `multiplexed_model_id` metadata (the launcher sets
  `RAY_SERVE_HAPROXY_BALANCE_ALGORITHM=hdr(multiplexed_model_id)`; clients set
  the header from the request's `model`), so every call for a model lands on
  the same replica, the one that loaded it. It is a hash, not a lookup: it
  ignores load, and it remaps when the replica set changes. Calls without
  the header (the default model, which every replica loads) go round robin.
  Ray's own HAProxy config never routes on the model id: the replica reads
  it (ray-project/ray#65976 is fixed in 2.60), HAProxy does not.
- **DeploymentHandle calls** (the studio's calls to the families): Ray's
  router prefers replicas that reported holding the model. Ray takes these
  reports from `@serve.multiplexed`, which owns loading and its own LRU;
  Maestro's registry does its own, so `report_models` sends the same report
  the decorator sends, through Ray's private controller client. If a Ray
  upgrade moves it, handle affinity lapses with one warning; nothing fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["report_models"]

logger = logging.getLogger("maestro.routing")
_warned = False


def report_models(model_ids: Sequence[str]) -> None:
    """Tell Ray's router which models this replica holds (or is loading)."""
    global _warned
    try:
        from ray.serve._private.common import RequestRoutingInfo
        from ray.serve.context import _get_global_client, _get_internal_replica_context

        context = _get_internal_replica_context()
        if context is None:  # not in a replica (an engine test): nobody to tell
            return
        _get_global_client().record_request_routing_info(
            RequestRoutingInfo(
                replica_id=context.replica_id, multiplexed_model_ids=list(model_ids)
            )
        )
    except Exception as exc:
        if not _warned:
            _warned = True
            logger.warning("cannot report loaded models to Ray's router: %s", exc)
