"""End to end: StudioService.Compose through the real stack of serve_config.yaml.

The studio replica calls the text, image and voice deployments through
DeploymentHandles; these tests check what a client sees (events, files, the
HTML storyboard in a real browser) and that a cancelled or timed-out Compose
leaves no work behind in any engine (their ListModels running counts).
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import grpc
import pytest
from PIL import Image, ImageChops

from maestro import AsyncMaestroClient, MaestroClient, MaestroRpcError
from maestro.models_client import default_models
from maestro.v1 import models_pb2

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READY_S = 180
BRIEF = "a lighthouse keeper befriends a comet"
SMALL = {"width": 64, "height": 64, "steps": 2}
# Long enough that children are surely running when the call is cancelled,
# small enough that one denoising step (where a cancelled batch stops) takes
# seconds on a CPU: at 512x512 a single step of the demo pipeline takes minutes.
HEAVY = {"num_scenes": 4, "width": 128, "height": 128, "steps": 50}


@pytest.fixture(scope="module")
def studio(server: str) -> str:
    """The server, once the studio (and so every family) answers SERVING."""
    with MaestroClient(server, timeout=10) as client:
        client.wait_until_serving(READY_S, ["studio"])
    return server


@pytest.fixture
def client(studio: str):
    with MaestroClient(studio, timeout=240) as c:
        yield c


def _image_stats(client: MaestroClient) -> dict[str, int]:
    (image,) = default_models(client.list_models(["image"]))
    return {"cancelled_requests": int(image.stats["cancelled_requests"])}


def _busy(client: MaestroClient) -> dict[str, int]:
    """Requests each engine still holds."""
    models = {
        models_pb2.Family.Name(m.family): m.stats
        for m in default_models(client.list_models(["text", "image", "voice"]))
    }
    image = models["FAMILY_IMAGE"]
    return {
        "text": int(models["FAMILY_TEXT"]["unfinished_requests"]),
        "image": int(image["running_requests"]) + int(image["queued_requests"]),
        "voice": int(models["FAMILY_VOICE"]["queued_segments"]),
    }


def _settled(client: MaestroClient, timeout: float = 30.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while any((busy := _busy(client)).values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return busy


def test_compose_streams_plan_scenes_then_done(client: MaestroClient) -> None:
    events = list(client.compose(BRIEF, num_scenes=3, seed=7, **SMALL))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "done", kinds
    plan = events[0].plan
    assert plan.title and len(plan.scenes) == 3
    assert all(s.narration and s.image_prompt for s in plan.scenes)
    errors = [e.scene_error for e in events if e.HasField("scene_error")]
    assert not errors, errors
    images = {
        e.scene_image.scene: e.scene_image.image
        for e in events[1:-1]
        if e.HasField("scene_image")
    }
    audio = {
        e.scene_audio.scene: e.scene_audio
        for e in events[1:-1]
        if e.HasField("scene_audio")
    }
    assert sorted(images) == sorted(audio) == [0, 1, 2] and len(events) == 8
    for image in images.values():
        assert Image.open(io.BytesIO(image.data)).size == (64, 64)
    for clip in audio.values():
        with wave.open(io.BytesIO(clip.audio)) as wav:
            assert wav.getnframes() > 0
    done = events[-1].done
    assert (done.scenes_succeeded, done.scenes_failed) == (3, 0)
    stages = {t.stage: t.seconds for t in done.timings}
    assert set(stages) == {"plan", "image", "audio", "total"}
    assert len(done.trace_id) == 32  # the trace holding every child call
    (info,) = client.list_models(["studio"])
    assert info.family == models_pb2.FAMILY_STUDIO and info.ready
    assert info.stats["voice"].startswith("reachable, ready")


def test_same_seed_same_plan_and_scene_seeds(client: MaestroClient) -> None:
    def run() -> tuple[bytes, list[int]]:
        events = list(client.compose(BRIEF, num_scenes=2, seed=21, **SMALL))
        seeds = sorted(
            (e.scene_image.scene, e.scene_image.image.seed)
            for e in events
            if e.HasField("scene_image")
        )
        return events[0].plan.SerializeToString(), [s for _, s in seeds]

    assert run() == run()


def test_bad_request_names_the_field(client: MaestroClient) -> None:
    with pytest.raises(MaestroRpcError) as info:
        list(client.compose(BRIEF, num_scenes=99))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "num_scenes" in info.value.details


def test_bad_image_settings_fail_each_scene_not_the_call(
    client: MaestroClient,
) -> None:
    events = list(client.compose(BRIEF, num_scenes=2, seed=3, width=63, steps=2))
    errors = [e.scene_error for e in events if e.HasField("scene_error")]
    assert {(e.stage, e.code) for e in errors} == {("image", "INVALID_ARGUMENT")}
    assert all("width" in e.message for e in errors)
    assert events[-1].done.scenes_failed == 2


def test_each_stage_runs_on_the_model_it_names(client: MaestroClient) -> None:
    events = list(
        client.compose(
            BRIEF,
            num_scenes=1,
            seed=1,
            text_model="maestro-demo-llm",
            voice_model="maestro-demo-tts",
            image_model="no-such-image-model",
            **SMALL,
        )
    )
    (error,) = [e.scene_error for e in events if e.HasField("scene_error")]
    assert (error.stage, error.code) == ("image", "NOT_FOUND")
    assert "no-such-image-model" in error.message
    assert "maestro-demo-sd" in error.message  # the ids that are registered
    assert [e for e in events if e.HasField("scene_audio")]
    with pytest.raises(MaestroRpcError) as info:
        list(client.compose(BRIEF, num_scenes=1, text_model="no-such-llm", **SMALL))
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "maestro-demo-llm" in info.value.details


async def test_disconnect_mid_render_cancels_every_child(
    studio: str, client: MaestroClient
) -> None:
    assert not any(_settled(client).values())
    before = int(
        default_models(client.list_models(["image"]))[0].stats["cancelled_requests"]
    )
    async with AsyncMaestroClient(studio, timeout=240) as aclient:
        stream = aclient.compose(BRIEF, seed=5, **HEAVY)
        assert (await stream.__anext__()).HasField("plan")
        deadline = time.monotonic() + 30
        while not _busy(client)["image"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert _busy(client)["image"], "no image request in flight"
        await stream.aclose()  # the client leaves: the call is cancelled
    assert _settled(client) == {"text": 0, "image": 0, "voice": 0}
    after = int(
        default_models(client.list_models(["image"]))[0].stats["cancelled_requests"]
    )
    assert after > before


def test_deadline_cancels_every_child(client: MaestroClient) -> None:
    with pytest.raises(MaestroRpcError) as info:
        list(client.compose(BRIEF, seed=6, timeout=4, **HEAVY))
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _settled(client) == {"text": 0, "image": 0, "voice": 0}
    # Still serving afterwards.
    events = list(client.compose(BRIEF, num_scenes=1, seed=1, **SMALL))
    assert events[-1].done.scenes_succeeded == 1


CHROMIUM = shutil.which("chromium")


def _screenshot(html: Path, png: Path, profile: Path) -> Image.Image:
    subprocess.run(
        [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1400,900",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return Image.open(png).convert("RGB")


def test_cli_writes_a_storyboard_whose_html_shows_the_images(
    studio: str, tmp_path: Path
) -> None:
    out = tmp_path / "board"
    cli = [str(Path(sys.executable).parent / "maestro"), "--target", studio]
    run = subprocess.run(
        [
            *cli,
            "compose",
            BRIEF,
            "--out",
            str(out),
            "--scenes",
            "2",
            "--seed",
            "4",
            "--width",
            "128",
            "--height",
            "128",
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "plan:" in run.stderr and "scene 2/2" in run.stderr and "done:" in run.stderr
    board = json.loads((out / "storyboard.json").read_text())
    assert board["title"] and len(board["scenes"]) == 2
    for scene in board["scenes"]:
        assert (out / scene["image"]["file"]).stat().st_size > 0
        assert (out / scene["audio"]["file"]).stat().st_size > 44
    page = (out / "index.html").read_text()
    assert page.count("<img ") == 2 and page.count("<audio controls") == 2
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    # The same page with the images' files missing: where the screenshots
    # differ is where real images were drawn (a broken image is a small icon).
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.html").write_text(page)
    shot = _screenshot(out / "index.html", tmp_path / "a.png", tmp_path / "p1")
    blank = _screenshot(broken / "index.html", tmp_path / "b.png", tmp_path / "p2")
    diff = ImageChops.difference(shot, blank).convert("L").point(lambda v: v > 8)
    changed = sum(diff.getdata())
    # Each image is drawn 256 px wide (pixelated up from 128): expect most of
    # the two 256x256 areas to differ.
    assert changed > 0.5 * 2 * 256 * 256, changed


def test_a_character_reference_reaches_every_scene(client: MaestroClient) -> None:
    """One IP-Adapter reference and one seed for every scene's image (on the
    demo IP-Adapter model): another reference changes every scene."""

    def storyboard(rgb: tuple[int, int, int]) -> list[bytes]:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), rgb).save(buffer, format="PNG")
        events = list(
            client.compose(
                BRIEF,
                num_scenes=2,
                seed=5,
                image_model="maestro-demo-sd-ip",
                reference_image=buffer.getvalue(),
                reference_scale=1.0,
                same_seed=True,
                **SMALL,
            )
        )
        images = sorted(
            (e.scene_image.scene, e.scene_image.image)
            for e in events
            if e.HasField("scene_image")
        )
        assert [i for i, _ in images] == [0, 1], events[-1]
        assert {img.seed for _, img in images} == {images[0][1].seed}  # one seed
        return [img.data for _, img in images]

    red, blue = storyboard((220, 30, 30)), storyboard((30, 30, 220))
    assert red[0] != blue[0] and red[1] != blue[1]
