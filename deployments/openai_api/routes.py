"""`HttpIngress`: the HTTP entry point of a family deployment.

Ray Serve hands an HTTP request for the application's route prefix to the
deployment's `__call__`; this one dispatches on method and path to the
family's handlers (`deployments/<family>/openai_api.py`), on the same replica
that holds the engine, so HTTP costs no hop more than gRPC. Paths are matched
whole, so the route prefixes in serve_config.yaml must put `/v1` on text,
`/v1/images` on image and `/v1/audio` on voice (Ray routes on the longest
prefix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.openai_api.calls import error_json

__all__ = ["Handler", "HttpIngress"]

Handler = Callable[[Any, Request], Awaitable[Response]]


class HttpIngress:
    """Dispatches `(method, path)` through the class's `http_routes`."""

    http_routes: ClassVar[Mapping[tuple[str, str], Handler]] = {}

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        handler = self.http_routes.get((request.method, path))
        if handler is not None:
            return await handler(self, request)
        if any(route_path == path for _, route_path in self.http_routes):
            allowed = sorted(m for m, p in self.http_routes if p == path)
            return JSONResponse(
                error_json(
                    f"{request.method} is not allowed on {path}; use "
                    + ", ".join(allowed),
                    "invalid_request_error",
                    "method_not_allowed",
                ),
                status_code=405,
                headers={"allow": ", ".join(allowed)},
            )
        served = ", ".join(f"{m} {p}" for m, p in sorted(self.http_routes))
        return JSONResponse(
            error_json(
                f"no route {request.method} {path}; served here: {served}",
                "not_found_error",
                "not_found",
            ),
            status_code=404,
        )
