"""The `maestro` command: talk to a running Maestro server.

maestro text "Once upon a time" --max-tokens 64     # streams to the terminal
maestro models                                      # every family's models
maestro health
maestro wait text --seconds 120                     # until text is SERVING
maestro --trace text "hi"                           # + the call's trace id
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from maestro import envs
from maestro.cli_cache import add_cache_parser
from maestro.cli_compose import add_compose_parser
from maestro.cli_image import add_image_parser
from maestro.cli_keys import add_keys_parser
from maestro.cli_progress import waiting_for_model
from maestro.cli_video import add_video_parser
from maestro.cli_voice import add_speak_parser
from maestro.client import _CHANNEL_OPTIONS as CHANNEL_OPTIONS
from maestro.client import FAMILIES, MaestroClient, MaestroRpcError
from maestro.tracing import traced_channel
from maestro.v1 import models_pb2, text_pb2


def _text(client: MaestroClient, args: argparse.Namespace) -> int:
    params = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "seed": args.seed,
        "stop": args.stop or None,
        "regex": args.regex,
        "choices": args.choice or None,
        "json_schema": Path(args.json_schema).read_text() if args.json_schema else None,
        "model": args.model,
        "adapter": args.adapter,
    }
    messages = [{"role": "system", "content": args.system}] if args.system else []
    prompt: str | None = args.prompt
    if args.chat or args.system:
        messages.append({"role": "user", "content": args.prompt})
        prompt = None
    if args.no_stream:
        reply = client.generate_text(prompt, messages=messages or None, **params)
        print(reply.text)
        last_usage, reason = reply.usage, reply.finish_reason
    else:
        last_usage, reason = text_pb2.Usage(), 0
        for chunk in client.stream_text(prompt, messages=messages or None, **params):
            if waiting_for_model(chunk):
                continue
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            if chunk.finish_reason:
                last_usage, reason = chunk.usage, chunk.finish_reason
        print()
    print(
        f"[{text_pb2.FinishReason.Name(reason).removeprefix('FINISH_REASON_').lower()}"
        f", {last_usage.prompt_tokens} prompt + {last_usage.completion_tokens} "
        "completion tokens]",
        file=sys.stderr,
    )
    return 0


def _models(client: MaestroClient, args: argparse.Namespace) -> int:
    action = getattr(args, "models_command", None) or "ls"
    if action in ("load", "unload"):
        if action == "load":
            info = client.load_model(args.model, family=args.family, pin=args.pin)
        else:
            info = client.unload_model(args.model, family=args.family)
        print(f"{info.id}: {info.stats.get('state', '')} ({info.status_message})")
        return 0
    if action == "load-adapter":
        reply = client.load_adapter(
            args.model,
            args.name,
            args.path,
            control_type=args.control_type or "",
            family=args.family,
        )
        print(
            f"{reply.model.id}: adapter {args.name} loaded in "
            f"{reply.load_seconds * 1000:.0f} ms"
        )
        return 0
    if action == "unload-adapter":
        info = client.unload_adapter(args.model, args.name, family=args.family)
        print(f"{info.id}: adapter {args.name} unloaded")
        return 0
    models = client.list_models()
    if args.json:
        print(json.dumps([_model_dict(m) for m in models], indent=2))
        return 0
    print(f"{'family':8} {'model':28} {'engine':16} {'device':6} status")
    for m in models:
        family = models_pb2.Family.Name(m.family).removeprefix("FAMILY_").lower()
        state = "ready" if m.ready else f"not ready: {m.status_message}"
        if m.stats.get("state") == "available":
            state = "available (loads on first request)"
        print(f"{family:8} {m.id:28} {m.engine:16} {m.device:6} {state}")
    return 0


def _model_dict(m: models_pb2.ModelInfo) -> dict[str, object]:
    return {
        "id": m.id,
        "family": models_pb2.Family.Name(m.family),
        "engine": m.engine,
        "device": m.device,
        "ready": m.ready,
        "status_message": m.status_message,
        "limits": dict(m.limits),
        "stats": dict(m.stats),
    }


def _health(client: MaestroClient, args: argparse.Namespace) -> int:
    worst = 0
    for family in args.families or FAMILIES:
        try:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(
                client.health(family)
            )
        except MaestroRpcError as error:
            status = error.code.name
        worst = worst or int(status != "SERVING")
        print(f"{family:8} {status}")
    return worst


def _wait(client: MaestroClient, args: argparse.Namespace) -> int:
    families = args.families or FAMILIES
    try:
        client.wait_until_serving(args.seconds, families)
    except TimeoutError as error:
        print(f"maestro: {error}", file=sys.stderr)
        return 1
    print(f"SERVING: {' '.join(families)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maestro", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--target",
        default=envs.MAESTRO_TARGET.get(),
        help="server address (env MAESTRO_TARGET; default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline, s")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="start a sampled trace per call (W3C traceparent) and print each "
        "call's trace id on stderr",
    )
    parser.add_argument(
        "--cache",
        choices=("bypass", "refresh"),
        default="",
        help="skip the server's response cache (bypass), or replace its entry "
        "with a fresh result (refresh)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    text = sub.add_parser("text", help="generate text (streams by default)")
    text.add_argument("prompt")
    text.add_argument("--chat", action="store_true", help="send as a user message")
    text.add_argument("--system", help="system message (implies chat rendering)")
    text.add_argument("--max-tokens", type=int)
    text.add_argument("--temperature", type=float)
    text.add_argument("--top-p", type=float)
    text.add_argument("--top-k", type=int)
    text.add_argument("--seed", type=int)
    text.add_argument("--stop", action="append", help="stop string (repeatable)")
    text.add_argument("--json-schema", metavar="FILE", help="constrain to a schema")
    text.add_argument("--regex", help="constrain to a regular expression")
    text.add_argument("--choice", action="append", help="allowed output (repeatable)")
    text.add_argument("--model", help="model id (default: the served one)")
    text.add_argument("--adapter", help="one of the model's LoRA adapters")
    text.add_argument("--no-stream", action="store_true", help="unary GenerateText")
    text.set_defaults(run=_text)

    add_image_parser(sub)
    add_video_parser(sub)
    add_speak_parser(sub)
    add_compose_parser(sub)
    add_keys_parser(sub)
    add_cache_parser(sub)

    models = sub.add_parser(
        "models", help="list (default), load or unload models (load/unload: admin)"
    )
    models.add_argument("--json", action="store_true")
    models.set_defaults(run=_models)
    actions = models.add_subparsers(dest="models_command")
    actions.add_parser("ls", help="every family's models").add_argument(
        "--json", action="store_true"
    )
    for name, what in (("load", "load now"), ("unload", "unload once drained")):
        action = actions.add_parser(name, help=f"{what} a registered model")
        action.add_argument("model", help="model id (see `maestro models`)")
        action.add_argument("--family", help="its family (default: found by id)")
        if name == "load":
            action.add_argument("--pin", action="store_true", help="never evict")
    for name, what in (
        ("load-adapter", "add a LoRA adapter (or a ControlNet) to"),
        ("unload-adapter", "remove a LoRA adapter (or a ControlNet) from"),
    ):
        action = actions.add_parser(name, help=f"{what} a model at run time")
        action.add_argument("model", help="model id (see `maestro models`)")
        action.add_argument("name", help="the name requests select it by")
        if name == "load-adapter":
            action.add_argument("path", help="folder under the model's adapter_dirs")
            action.add_argument(
                "--control-type",
                metavar="TYPE",
                help="image models: the folder is a ControlNet for this type "
                "(canny, depth, pose, ...)",
            )
        action.add_argument("--family", help="its family (default: found by id)")

    health = sub.add_parser("health", help="health of each application")
    health.add_argument("families", nargs="*", help=f"default: {' '.join(FAMILIES)}")
    health.set_defaults(run=_health)

    wait = sub.add_parser("wait", help="block until each application is SERVING")
    wait.add_argument("families", nargs="*", help=f"default: {' '.join(FAMILIES)}")
    wait.add_argument("--seconds", type=float, default=60.0, help="give up after")
    wait.set_defaults(run=_wait)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    channel, traces = None, None
    if args.trace:
        plain = grpc.insecure_channel(args.target, options=CHANNEL_OPTIONS)
        channel, traces = traced_channel(plain)
    try:
        with MaestroClient(
            args.target, timeout=args.timeout, channel=channel, cache=args.cache
        ) as c:
            return int(args.run(c, args))
    except MaestroRpcError as error:
        print(f"maestro: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for trace_id in traces.trace_ids if traces else ():
            print(f"trace_id: {trace_id}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
