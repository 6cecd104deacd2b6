"""OpenAI's image generations over HTTP, run by `ImageDeployment.GenerateImage`.

`POST /v1/images/generations` takes OpenAI's `prompt`, `n`, `size`,
`response_format` (b64_json: Maestro returns images inline, it hosts no
URLs) and `output_format` / `output_compression`, plus Maestro's own fields
as extra body keys: `negative_prompt`, `seed`, `steps`, `guidance_scale`,
`scheduler`, `loras` ([{name, weight}]), `style` (a preset of the model's;
OpenAI's own `vivid` / `natural` are no Maestro preset: NOT_FOUND). Sizes,
steps and the rest are checked by the image family as over gRPC.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.errors import InvalidArgument
from deployments.openai_api.calls import HttpContext, converted, run_unary
from deployments.openai_api.fields import Body, reject_unsupported
from maestro.v1 import image_pb2

__all__ = ["image_generations", "image_request"]

_SIZE = re.compile(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")
_FORMATS = {
    "png": image_pb2.IMAGE_FORMAT_PNG,
    "jpeg": image_pb2.IMAGE_FORMAT_JPEG,
    "webp": image_pb2.IMAGE_FORMAT_WEBP,
}
_UNSUPPORTED = {
    "stream": "false (stream progress with gRPC ImageService.StreamImage)",
    "partial_images": "none",
    "mask": "none",
}


def _size(body: Body) -> tuple[int, int]:
    size = body.string("size", "auto")
    if size == "auto":
        return 0, 0  # the model's default
    match = _SIZE.fullmatch(size)
    if match is None:
        raise InvalidArgument(
            field="size", value=size, allowed="WIDTHxHEIGHT (e.g. 512x512) or auto"
        )
    return int(match[1]), int(match[2])


def _loras(body: Body) -> list[image_pb2.LoraWeight]:
    loras = []
    for i, lora in enumerate(body.objects("loras")):
        entry = Body(lora)
        if not entry.string("name"):
            raise InvalidArgument(field=f"loras[{i}].name", allowed="a LoRA's name")
        weight = entry.number("weight")
        loras.append(
            image_pb2.LoraWeight(
                name=entry.string("name"), weight=1.0 if weight is None else weight
            )
        )
    return loras


def _small(body: Body, name: str) -> int:
    """An int32 field where 0 (or absent) means the default."""
    value = body.integer(name, bits=32) or 0
    if value < 0:
        raise InvalidArgument(field=name, value=value, allowed=f"{name} >= 0")
    return value


def image_request(body: Body) -> image_pb2.GenerateImageRequest:
    """An OpenAI images/generations body as `GenerateImageRequest`."""
    reject_unsupported(body, _UNSUPPORTED)
    response_format = body.string("response_format", "b64_json")
    if response_format != "b64_json":
        raise InvalidArgument(
            field="response_format",
            value=response_format,
            allowed="b64_json (images are returned inline; no URLs are hosted)",
        )
    output_format = body.string("output_format", "png")
    if output_format not in _FORMATS:
        raise InvalidArgument(
            field="output_format", value=output_format, allowed="png, jpeg, webp"
        )
    width, height = _size(body)
    seed = body.integer("seed")
    return image_pb2.GenerateImageRequest(
        model=body.string("model"),
        prompt=body.string("prompt"),
        negative_prompt=body.string("negative_prompt"),
        width=width,
        height=height,
        steps=_small(body, "steps"),
        guidance_scale=body.number("guidance_scale"),
        seed=seed,
        num_images=_small(body, "n") or 1,
        scheduler=body.string("scheduler"),
        format=_FORMATS[output_format],
        quality=_small(body, "output_compression"),
        loras=_loras(body),
        request_id=body.string("request_id"),
        style=body.string("style"),
    )


def _render(reply: image_pb2.GenerateImageResponse) -> Response:
    return JSONResponse(
        {
            "created": int(time.time()),
            "model": reply.model,
            "data": [
                {
                    "b64_json": base64.b64encode(image.data).decode(),
                    "mime_type": image.mime_type,
                    "width": image.width,
                    "height": image.height,
                    "seed": image.seed,
                }
                for image in reply.images
            ],
        }
    )


async def image_generations(ingress: Any, request: Request) -> Response:
    """POST /v1/images/generations."""
    _, message = await converted(request, image_request)
    context = HttpContext(request.headers.items())
    return await run_unary(ingress.GenerateImage, message, context, _render)
