"""Image bytes in and out: PNG/JPEG/WebP encoding and init-image decoding.

PNG is written without timestamps or text chunks, so the same pixels always
give the same bytes (the engine's determinism promise is about bytes). Pillow
is the only dependency; it ships with diffusers.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

from deployments.errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL.Image import Image

__all__ = ["MIME_TYPES", "decode_image", "encode_image"]

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# zlib level 6: PNG's default trade-off; fixed so bytes do not depend on Pillow's.
_PNG_COMPRESS_LEVEL = 6


def encode_image(pixels: np.ndarray, fmt: str, quality: int) -> tuple[bytes, str]:
    """Encode an HxWx3 uint8 array; returns (bytes, mime type).

    `quality` (1..100) applies to JPEG and lossy WebP; PNG is lossless.
    """
    from PIL import Image

    image = Image.fromarray(pixels, mode="RGB")
    options: dict[str, Any] = (
        {"compress_level": _PNG_COMPRESS_LEVEL, "optimize": False}
        if fmt == "png"
        else {"quality": quality}
    )
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMAT[fmt], **options)
    return buffer.getvalue(), MIME_TYPES[fmt]


def decode_image(data: bytes, *, field: str, max_pixels: int) -> Image:
    """Decode an encoded image to RGB, or raise InvalidArgument naming `field`.

    The pixel count is checked from the header before decoding, so a small
    file that would inflate to a huge bitmap is refused cheaply.
    """
    from PIL import Image, UnidentifiedImageError

    allowed = f"a PNG, JPEG or WebP image of at most {max_pixels} pixels"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidArgument(
                    field=field, value=f"{width}x{height}", allowed=allowed
                )
            if image.format not in ("PNG", "JPEG", "WEBP"):
                raise InvalidArgument(field=field, value=image.format, allowed=allowed)
            return image.convert("RGB")
    except InvalidArgument:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidArgument(
            field=field,
            value=f"{len(data)} bytes",
            allowed=allowed,
            reason="not a decodable image",
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InvalidArgument(
            field=field, allowed=allowed, reason="too large"
        ) from None
