"""Video files and frame interpolation (no model): encode_video, interpolate,
resolve_video's defaults, and the proto converter."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from deployments.engines.image.video.encoding import encode_video
from deployments.engines.image.video.interpolation import interpolate
from deployments.engines.image.video.types import (
    VideoLimits,
    VideoRequest,
    resolve_video,
)
from deployments.errors import InvalidArgument
from deployments.image.converters import to_video_request
from maestro.v1 import image_pb2


def _square_at(x: int, size: int = 64) -> np.ndarray:
    frame = np.zeros((size, size, 3), np.uint8)
    frame[24:40, x : x + 16] = 255
    return frame


def _centre_x(frame: np.ndarray) -> float:
    weights = frame[..., 0].astype(float).sum(axis=0)
    return float((weights * np.arange(len(weights))).sum() / weights.sum())


def test_flow_interpolation_moves_the_square_halfway() -> None:
    frames = np.stack([_square_at(16), _square_at(24)])
    out = interpolate(frames, 2, "flow")
    assert out.shape == (3, 64, 64, 3)
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[2], frames[1])
    # The square moved 8 px: the in-between frame has it 4 px on, whole
    # (columns 20..35) and sharp; a cross-fade has the same centre but two
    # half-bright edges (128) where only one square should be.
    assert abs(_centre_x(out[1]) - (_centre_x(frames[0]) + 4)) < 1
    row = out[1][32, :, 0]
    assert row[20:36].min() > 200 and row[:18].max() < 20 and row[38:].max() < 20
    assert interpolate(frames, 2, "blend")[1][32, 18, 0] == 128


def test_blend_interpolation_is_the_cross_fade() -> None:
    frames = np.stack(
        [np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)]
    )
    out = interpolate(frames, 4, "blend")
    assert len(out) == 5
    assert [int(f[0, 0, 0]) for f in out] == [0, 50, 100, 150, 200]


@pytest.mark.parametrize("fps", [8, 24])
def test_mp4_holds_every_frame_at_the_fps(fps: int) -> None:
    frames = np.stack([_square_at(x) for x in range(0, 40, 4)])
    data, mime = encode_video(frames, "mp4", fps, 100)
    assert mime == "video/mp4"
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264" and stream.average_rate == fps
    assert len(decoded) == len(frames)
    # Quality 100 is CRF 0: the square's edges come back within yuv420p's
    # chroma rounding.
    assert np.abs(decoded[5].astype(int) - frames[5].astype(int)).mean() < 8


def test_gif_frames_and_delay() -> None:
    frames = np.stack([_square_at(x) for x in (0, 8, 16)])
    data, mime = encode_video(frames, "gif", 25, 60)
    clip = Image.open(io.BytesIO(data))
    assert mime == "image/gif" and clip.n_frames == 3
    assert clip.info["duration"] == 40  # 25 fps: 4 hundredths of a second


LIMITS = VideoLimits(
    text_to_video=True,
    image_to_video=True,
    default_width=64,
    default_height=64,
    image_to_video_frames=14,
)


def test_defaults_follow_the_mode() -> None:
    t2v = resolve_video(VideoRequest(prompt="x"), LIMITS)
    assert (t2v.num_frames, t2v.guidance_scale, t2v.format) == (16, 7.5, "mp4")
    assert t2v.motion_bucket_id is None
    i2v = resolve_video(VideoRequest(init_image=b"png"), LIMITS, init_size=(100, 70))
    assert (i2v.num_frames, i2v.guidance_scale) == (14, 3.0)
    assert (i2v.width, i2v.height) == (96, 64)  # the image's, down to 8s
    assert (i2v.motion_bucket_id, i2v.noise_aug_strength) == (127, 0.02)


def test_the_pixel_bound_counts_interpolated_frames() -> None:
    limits = VideoLimits(
        text_to_video=True,
        image_to_video=False,
        default_width=64,
        default_height=64,
        max_total_pixels=64 * 64 * 20,
    )
    resolve_video(VideoRequest(prompt="x", num_frames=20), limits)
    with pytest.raises(InvalidArgument, match="output frames"):
        resolve_video(
            VideoRequest(prompt="x", num_frames=20, interpolation_factor=2), limits
        )
    with pytest.raises(InvalidArgument, match="init_image"):
        resolve_video(VideoRequest(init_image=b"png"), limits)


def test_the_converter_keeps_unset_apart_from_zero() -> None:
    message = image_pb2.StreamVideoRequest(
        prompt="p",
        format=image_pb2.VIDEO_FORMAT_GIF,
        preview_every=2,
        interpolation_factor=2,
        interpolation="blend",
    )
    request = to_video_request(message, "rid")
    assert request.format == "gif" and request.preview_every == 2
    assert request.seed is None and request.guidance_scale is None
    message.seed = 0
    message.motion_bucket_id = 0
    request = to_video_request(message, "rid")
    assert request.seed == 0 and request.motion_bucket_id == 0
    unary = to_video_request(image_pb2.GenerateVideoRequest(format=9), "r")
    assert unary.format == "9" and unary.preview_every == 0
