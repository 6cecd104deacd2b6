"""End to end: the image application of serve_config.yaml, through the client."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from maestro.v1 import image_pb2, models_pb2

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def image_server(server: str) -> str:
    """The server once the image engine answers (it loads beside vLLM)."""
    with MaestroClient(server, timeout=5) as client:
        client.wait_until_serving(120, ["image"])
    return server


@pytest.fixture
def image_client(image_server: str) -> MaestroClient:
    with MaestroClient(image_server, timeout=60) as c:
        yield c


def _image_model(client: MaestroClient) -> models_pb2.ModelInfo:
    (model,) = default_models(client.list_models(["image"]))
    return model


def test_generate_image_is_seeded_and_described(image_client: MaestroClient) -> None:
    reply = image_client.generate_image("a red box", seed=11, num_images=2)
    assert reply.model == "maestro-demo-sd" and reply.request_id
    assert [i.seed for i in reply.images] == [11, 12]
    first = reply.images[0]
    assert (first.mime_type, first.width, first.height) == ("image/png", 64, 64)
    assert Image.open(io.BytesIO(first.data)).size == (64, 64)
    again = image_client.generate_image("a red box", seed=11, num_images=2)
    assert [i.data for i in again.images] == [i.data for i in reply.images]
    jpeg = image_client.generate_image("a red box", seed=11, format="jpeg", quality=50)
    assert jpeg.images[0].mime_type == "image/jpeg"


def test_stream_image_sends_progress_then_the_result(
    image_client: MaestroClient,
) -> None:
    messages = list(
        image_client.stream_image("a kite", seed=2, steps=5, preview_every=2)
    )
    progress = [m.progress for m in messages if m.HasField("progress")]
    assert [p.step for p in progress] == [1, 2, 3, 4, 5]
    assert all(p.total_steps == 5 for p in progress)
    assert [p.step for p in progress if p.previews] == [2, 4]
    assert messages[-1].HasField("result")
    result = messages[-1].result
    assert len(result.images) == 1 and result.model == "maestro-demo-sd"
    unary = image_client.generate_image("a kite", seed=2, steps=5)
    assert unary.images[0].data == result.images[0].data


def test_lora_and_image_to_image(image_client: MaestroClient) -> None:
    base = image_client.generate_image("a map", seed=4).images[0].data
    styled = image_client.generate_image("a map", seed=4, loras={"demo-style": 0.8})
    assert styled.images[0].data != base
    edited = image_client.generate_image(
        "a map", seed=4, init_image=base, strength=0.5, width=96, height=64
    )
    assert (edited.images[0].width, edited.images[0].height) == (96, 64)


async def test_concurrent_requests_are_batched(image_server: str) -> None:
    async with AsyncMaestroClient(image_server, timeout=60) as client:
        replies = await asyncio.gather(
            *(client.generate_image(f"cat {i}", seed=i) for i in range(6))
        )
        assert all(len(r.images) == 1 for r in replies)
        (model,) = default_models(await client.list_models(["image"]))
    assert model.family == models_pb2.FAMILY_IMAGE and model.ready
    assert "euler" in model.limits["schedulers"]
    assert model.limits["max_batch_size"] == "8"
    sizes = dict(pair.split(":") for pair in model.stats["batch_sizes"].split() if pair)
    assert any(int(size) > 1 for size in sizes)


def test_deadline_cancels_the_request(image_client: MaestroClient) -> None:
    before = int(_image_model(image_client).stats["cancelled_requests"])
    with pytest.raises(MaestroRpcError) as info:
        for _ in image_client.stream_image("slow", steps=50, timeout=0.5):
            pass
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if int(_image_model(image_client).stats["cancelled_requests"]) > before:
            break
        time.sleep(0.2)
    assert int(_image_model(image_client).stats["cancelled_requests"]) > before
    assert image_client.generate_image("after", seed=1).images


@pytest.mark.parametrize("streaming", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"width": 100}, grpc.StatusCode.INVALID_ARGUMENT, "width"),
        ({"height": 1024}, grpc.StatusCode.INVALID_ARGUMENT, "height"),
        ({"steps": -1}, grpc.StatusCode.INVALID_ARGUMENT, "steps"),
        ({"steps": 51}, grpc.StatusCode.INVALID_ARGUMENT, "steps"),
        ({"guidance_scale": -1.0}, grpc.StatusCode.INVALID_ARGUMENT, "guidance"),
        ({"num_images": 9}, grpc.StatusCode.INVALID_ARGUMENT, "num_images"),
        (
            {"num_images": 8, "width": 256, "height": 256},
            grpc.StatusCode.INVALID_ARGUMENT,
            "num_images",
        ),
        ({"scheduler": "warp"}, grpc.StatusCode.INVALID_ARGUMENT, "scheduler"),
        ({"format": 7}, grpc.StatusCode.INVALID_ARGUMENT, "format"),
        ({"init_image": b"nope"}, grpc.StatusCode.INVALID_ARGUMENT, "init_image"),
        ({"loras": {"nope": 1.0}}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({"model": "other"}, grpc.StatusCode.NOT_FOUND, "other"),
    ],
)
def test_bad_input_gets_a_clear_status(
    image_client: MaestroClient,
    params: dict,
    code: grpc.StatusCode,
    field: str,
    streaming: bool,
) -> None:
    with pytest.raises(MaestroRpcError) as info:
        if streaming:
            list(image_client.stream_image("x", **params))
        else:
            image_client.generate_image("x", **params)
    assert info.value.code == code
    assert field in info.value.details and "Traceback" not in info.value.details


def test_cli_image_writes_files_with_a_progress_bar(
    image_server: str, tmp_path: Path
) -> None:
    cli = [str(Path(sys.executable).parent / "maestro"), "--target", image_server]
    out = tmp_path / "out.png"
    run = subprocess.run(
        [
            *cli,
            "image",
            "a cat",
            "-o",
            str(out),
            "--seed",
            "3",
            "--steps",
            "3",
            "--size",
            "64x64",
            "--lora",
            "demo-style:0.8",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Image.open(out).size == (64, 64) and "seed 3" in run.stdout
    assert "denoising" in run.stderr  # tqdm's bar
    edited = tmp_path / "edited.webp"
    subprocess.run(
        [*cli, "image", "a cat", "-o", str(edited), "--init", str(out)]
        + ["--strength", "0.5", "--steps", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Image.open(edited).format == "WEBP"
    bad = subprocess.run(
        [*cli, "image", "x", "-o", str(tmp_path / "bad.png"), "--size", "100x64"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "INVALID_ARGUMENT: width" in bad.stderr


SD3 = "maestro-demo-sd3"  # serve_config.yaml's second image model (a DiT)


def test_the_dit_model_streams_after_its_lazy_load(image_client: MaestroClient) -> None:
    messages = list(image_client.stream_image("a kite", model=SD3, seed=4, steps=3))
    kinds = [m.WhichOneof("event") for m in messages]
    # Loaded on this first request (unless an earlier one did), then per-step
    # progress and the result, as for the UNet model.
    assert kinds[-1] == "result" and kinds[-4:-1] == ["progress"] * 3
    assert set(kinds[:-4]) <= {"model_load"}
    result = messages[-1].result
    assert result.model == SD3 and result.images[0].seed == 4
    again = image_client.generate_image("a kite", model=SD3, seed=4, steps=3)
    assert again.images[0].data == result.images[0].data
    with pytest.raises(MaestroRpcError) as bad:
        image_client.generate_image("a kite", model=SD3, scheduler="euler")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "flow_match_euler" in bad.value.details
    rows = {m.id: m for m in image_client.list_models(["image"])}
    assert rows[SD3].ready and rows["maestro-demo-sd"].ready  # budget 2


def test_a_lora_loaded_at_run_time_is_used_by_the_next_request(
    image_client: MaestroClient,
) -> None:
    params = {"seed": 5, "steps": 2}
    plain = image_client.generate_image("a barn", **params).images[0].data
    styled = (
        image_client.generate_image("a barn", loras={"demo-style": 0.8}, **params)
        .images[0]
        .data
    )
    reply = image_client.load_adapter(
        "maestro-demo-sd", "style-copy", "models/demo/image/loras/demo-style"
    )
    assert "style-copy" in reply.model.limits["loras"] and reply.load_seconds > 0
    copy = (
        image_client.generate_image("a barn", loras={"style-copy": 0.8}, **params)
        .images[0]
        .data
    )
    assert copy == styled != plain  # the same weights under a new name
    with pytest.raises(MaestroRpcError) as outside:
        image_client.load_adapter("maestro-demo-sd", "x", "models/demo/text")
    assert outside.value.code == grpc.StatusCode.INVALID_ARGUMENT
    info = image_client.unload_adapter("maestro-demo-sd", "style-copy")
    assert "style-copy" not in info.limits["loras"]
    with pytest.raises(MaestroRpcError) as gone:
        image_client.generate_image("a barn", loras={"style-copy": 0.8}, **params)
    assert gone.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(MaestroRpcError) as configured:  # the config's stays
        image_client.unload_adapter("maestro-demo-sd", "demo-style")
    assert configured.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # The start-time adapter is untouched.
    again = image_client.generate_image("a barn", loras={"demo-style": 0.8}, **params)
    assert again.images[0].data == styled


def test_a_style_preset_is_its_fields_written_out(image_client: MaestroClient) -> None:
    """serve_config.yaml's `watercolor` preset gives the same pixels as the
    request that spells out its template, negative prompt, LoRA, steps and
    guidance; the request's own fields win; ListModels lists the presets."""
    styled = image_client.generate_image("a boat", seed=5, style="watercolor")
    spelled = image_client.generate_image(
        "a boat, soft watercolor painting, paper texture",
        seed=5,
        negative_prompt="photo, harsh lines",
        loras={"demo-style": 0.8},
        steps=12,
        guidance_scale=6.0,
    )
    plain = image_client.generate_image("a boat", seed=5)
    assert styled.images[0].data == spelled.images[0].data
    assert styled.images[0].data != plain.images[0].data
    fewer_steps = image_client.generate_image(
        "a boat", seed=5, style="watercolor", steps=2
    )
    assert fewer_steps.images[0].data != styled.images[0].data
    assert _image_model(image_client).limits["styles"] == "watercolor, sketch"
    with pytest.raises(MaestroRpcError) as info:
        image_client.generate_image("a boat", style="oil")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "available: sketch, watercolor" in info.value.details


def test_a_control_image_steers_the_picture(
    image_client: MaestroClient, tmp_path: Path
) -> None:
    """The demo ControlNet (canny): edges the server computes from a plain
    picture change the image, reproducibly; the CLI sends the same."""
    square = np.zeros((64, 64, 3), np.uint8)
    square[16:48, 16:48] = 230
    photo = tmp_path / "square.png"
    Image.fromarray(square).save(photo)
    control = image_pb2.ControlImage(
        type="canny", image=photo.read_bytes(), preprocess=True
    )
    controlled = image_client.generate_image("a box", seed=9, controls=[control])
    again = image_client.generate_image("a box", seed=9, controls=[control])
    plain = image_client.generate_image("a box", seed=9)
    assert controlled.images[0].data == again.images[0].data
    assert controlled.images[0].data != plain.images[0].data
    assert _image_model(image_client).limits["controlnets"] == "demo-canny (canny)"
    with pytest.raises(MaestroRpcError) as info:
        image_client.generate_image(
            "a box", controls=[image_pb2.ControlImage(type="pose", image=b"x")]
        )
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "control type 'pose' not found; available: canny" in info.value.details


def test_a_reference_image_steers_the_ip_adapter_model(
    image_client: MaestroClient,
) -> None:
    """serve_config.yaml's `maestro-demo-sd-ip` (the demo IP-Adapter): a
    reference image changes the picture, reproducibly, at its scale."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")
    model, reference = "maestro-demo-sd-ip", buffer.getvalue()
    steered = image_client.generate_image(
        "a box", model=model, seed=6, ip_adapter_image=reference
    )
    again = image_client.generate_image(
        "a box", model=model, seed=6, ip_adapter_image=reference
    )
    plain = image_client.generate_image("a box", model=model, seed=6)
    assert steered.images[0].data == again.images[0].data != plain.images[0].data
    rows = {m.id: m for m in image_client.list_models(["image"])}
    assert rows[model].limits["ip_adapter"].startswith("scale 0.0..2.0")
    assert rows["maestro-demo-sd"].limits["ip_adapter"] == "none"
    with pytest.raises(MaestroRpcError) as info:
        image_client.generate_image("a box", ip_adapter_image=reference)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "ip_adapter_image" in info.value.details


def test_cli_video_writes_clips_with_a_progress_bar(
    image_server: str, tmp_path: Path
) -> None:
    """`maestro video` on serve_config.yaml's default model: text-to-video
    to MP4 (decoded: frames, fps, codec), image-to-video to GIF."""
    import av

    cli = [str(Path(sys.executable).parent / "maestro"), "--target", image_server]
    clip = tmp_path / "clip.mp4"
    run = subprocess.run(
        [*cli, "video", "a cat", "-o", str(clip), "--frames", "4", "--fps", "6"]
        + ["--steps", "2", "--seed", "3", "--interpolate", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264" and stream.average_rate == 12
    assert len(frames) == (4 - 1) * 2 + 1 and (frames[0].width, frames[0].height) == (
        64,
        64,
    )
    assert "7 frames at 12 fps" in run.stdout and "seed 3" in run.stdout
    assert "denoising" in run.stderr  # tqdm's bar
    first = tmp_path / "first.png"
    Image.fromarray(frames[0].to_ndarray(format="rgb24")).save(first)
    moving = tmp_path / "moving.gif"
    subprocess.run(
        [*cli, "video", "--image", str(first), "-o", str(moving), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Image.open(moving).n_frames == 8  # the demo SVD UNet's clip length
    bad = subprocess.run(
        [*cli, "video", "x", "-o", str(tmp_path / "bad.mp4"), "--fps", "99"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "INVALID_ARGUMENT: fps" in bad.stderr


def test_a_video_deadline_stops_the_clip(image_client: MaestroClient) -> None:
    before = int(_image_model(image_client).stats["cancelled_requests"])
    with pytest.raises(MaestroRpcError) as info:
        for _ in image_client.stream_video("slow", steps=50, timeout=1.0):
            pass
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 20  # never-hang bound
    while time.monotonic() < deadline:
        if int(_image_model(image_client).stats["cancelled_requests"]) > before:
            break
        time.sleep(0.2)
    assert int(_image_model(image_client).stats["cancelled_requests"]) > before
    # The next clip runs at once after it (the worker is free again).
    after = image_client.generate_video("after", num_frames=2, steps=1, seed=1)
    assert after.video.num_frames == 2 and after.model == "maestro-demo-sd"
    with pytest.raises(MaestroRpcError) as refused:
        image_client.generate_video("x", model="maestro-demo-sd3")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "video" in refused.value.details
