"""The RPCs to fuzz: every method of the `maestro.v1` services, from descriptors."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import message as _message
from google.protobuf.message_factory import GetMessageClass

from maestro.v1 import image_pb2, models_pb2, studio_pb2, text_pb2, voice_pb2

_SERVICE_FAMILY = {
    "TextService": "text",
    "ImageService": "image",
    "VoiceService": "voice",
    "StudioService": "studio",
    "ModelService": None,  # every application answers it
}


@dataclass(frozen=True)
class Rpc:
    """One method of a `maestro.v1` service, as its descriptor has it."""

    service: str  # full name, e.g. maestro.v1.TextService
    method: str
    family: str | None  # None: any application answers it
    request: type[_message.Message]
    response: type[_message.Message]
    streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def name(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}/{self.method}"


def discover_rpcs() -> list[Rpc]:
    """Every RPC of the Text, Image, Voice, Studio and Model services."""
    rpcs = []
    for module in (text_pb2, image_pb2, voice_pb2, studio_pb2, models_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpcs.append(
                    Rpc(
                        service=service.full_name,
                        method=method.name,
                        family=_SERVICE_FAMILY[service.name],
                        request=GetMessageClass(method.input_type),
                        response=GetMessageClass(method.output_type),
                        streaming=method.server_streaming,
                    )
                )
    return rpcs
