"""Frames to a video file: MP4 (H.264), animated WebP or GIF.

MP4 is encoded by libx264 through PyAV (FFmpeg's libraries in a wheel), in
yuv420p so every player shows it, with `+faststart` so playback can begin
before the whole file arrives; `quality` maps linearly onto x264's CRF
(100: CRF 0, 1: CRF 51; the default 60 is CRF 20, x264's own is 23).
Animated WebP and GIF are Pillow's. GIF has 256 colours per frame and frame
delays in hundredths of a second, WebP in milliseconds: their fps is the
nearest those delays allow (25 fps is exact in both, 30 is not in GIF).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VIDEO_MIME_TYPES", "encode_video"]

VIDEO_MIME_TYPES = {"mp4": "video/mp4", "webp": "image/webp", "gif": "image/gif"}


def encode_video(
    frames: np.ndarray, fmt: str, fps: int, quality: int
) -> tuple[bytes, str]:
    """Encode F x H x W x 3 uint8 frames; returns (bytes, mime type)."""
    if fmt == "mp4":
        return _mp4(frames, fps, quality), VIDEO_MIME_TYPES[fmt]
    from PIL import Image

    images = [Image.fromarray(frame, mode="RGB") for frame in frames]
    options: dict[str, Any] = {
        "save_all": True,
        "append_images": images[1:],
        "duration": round(1000 / fps),  # ms per frame
        "loop": 0,  # forever
    }
    if fmt == "webp":
        options.update(quality=quality, method=4)
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt.upper(), **options)
    return buffer.getvalue(), VIDEO_MIME_TYPES[fmt]


def _mp4(frames: np.ndarray, fps: int, quality: int) -> bytes:
    import av

    # +faststart rewrites the file to put the index first: FFmpeg reopens it
    # by name for that, so it is written to a temporary file, not to memory.
    with tempfile.TemporaryDirectory(prefix="maestro-video-") as folder:
        path = Path(folder) / "clip.mp4"
        with av.open(
            str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            crf = round(51 * (100 - quality) / 99)
            stream = container.add_stream(
                "libx264", rate=fps, options={"crf": str(crf), "preset": "medium"}
            )
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            for frame in frames:
                picture = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(frame), "rgb24"
                )
                container.mux(stream.encode(picture))
            container.mux(stream.encode(None))  # flush the delayed frames
        return path.read_bytes()
