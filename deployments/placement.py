"""Where a replica runs, and why a family's replicas are still waiting.

A family whose replica Ray cannot place (no GPU left, not enough CPU) has no
replica to answer its own ListModels or Health: a call to it waits in Ray's
queue until the client's deadline. The other applications can still say what
is going on, because Ray Serve's controller knows: `serve.status()` holds each
application's state and, once a replica has waited longer than
`RAY_SERVE_SLOW_STARTUP_WARNING_S` (30 s by default), a message naming the
resources each replica requires and what the cluster has free. The studio
reads it for the families it chains (see `StudioDeployment.ListModels`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["waiting_families", "replica_placement", "waiting_reasons"]

_RUNNING = "RUNNING"


def replica_placement() -> dict[str, str]:
    """This replica's id, its node and the GPU ids Ray assigned it ("none" on
    CPU).

    Fractional replicas sharing a card report the same id; exclusive ones
    distinct ids. Reported in each family's ListModels stats.
    """
    import ray

    if not ray.is_initialized():  # an engine ingress built without Ray
        return {}
    gpu_ids = ray.get_gpu_ids()
    placement = {
        "node_id": ray.get_runtime_context().get_node_id()[:12],
        "gpu_ids": ",".join(str(i) for i in gpu_ids) if gpu_ids else "none",
    }
    try:
        from ray import serve

        placement["replica"] = serve.get_replica_context().replica_id.unique_id
    except Exception:  # not inside a Serve replica (a plain Ray task or test)
        pass
    return placement


def waiting_reasons(status: Any, apps: Iterable[str]) -> dict[str, str]:
    """{app: why it is not RUNNING} from a `serve.status()` result.

    Applications that are RUNNING are left out; one that is not deployed at
    all says so. The reason joins the application's message and each
    deployment's status and message (Ray's "taken more than 30s to be
    scheduled ... Resources required for each replica: {'GPU': 1.0} ..." for
    a replica that does not fit).
    """
    reasons: dict[str, str] = {}
    for app in apps:
        state = status.applications.get(app)
        if state is None:
            reasons[app] = "not deployed"
            continue
        app_status = str(getattr(state.status, "value", state.status))
        if app_status == _RUNNING:
            continue
        parts = [app_status]
        if state.message:
            parts.append(state.message)
        for name, deployment in state.deployments.items():
            dep_status = str(getattr(deployment.status, "value", deployment.status))
            if deployment.message:
                parts.append(f"{name} {dep_status}: {deployment.message}")
            elif dep_status != "HEALTHY":
                parts.append(
                    f"{name} {dep_status}: replicas starting (Ray names the "
                    "missing resources once one has waited "
                    "RAY_SERVE_SLOW_STARTUP_WARNING_S)"
                )
        reasons[app] = "; ".join(parts)
    return reasons


async def waiting_families(apps: Iterable[str]) -> dict[str, str]:
    """`waiting_reasons` of the live cluster, read off the event loop.

    Empty outside Ray (tests with fake handles): `serve.status()` would start
    a local Ray instance there.
    """
    import ray
    from ray import serve

    if not ray.is_initialized():
        return {}
    status = await asyncio.to_thread(serve.status)
    return waiting_reasons(status, apps)
