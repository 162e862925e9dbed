"""Images a request carries, decoded into the RGB pixels a runner's projector takes.

Decoding happens here, in the server, so that a bad image is the request's 400 before any model
loads, and so that one decoder (Pillow) answers for every format a client may send: PNG, JPEG, WebP
and GIF (its first frame), as Ollama accepts. Every image's cost is bounded: more than
``MAX_PIXELS`` is refused before its pixels are decoded, and a large image is scaled down to
``MAX_SIDE`` (every projector resizes to far less) before it travels to the runner.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import warnings
from collections.abc import Iterable

from PIL import Image, UnidentifiedImageError

from pollama.errors import InvalidRequest
from pollama.runner.messages import ImageInput

__all__ = ["FORMATS", "MAX_PIXELS", "MAX_SIDE", "decode_image", "decode_images"]

FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "GIF": "GIF"}
MAX_PIXELS = 64 << 20  # 8192 × 8192
MAX_SIDE = 2048
_WHITE = (255, 255, 255)


def decode_image(data: str | bytes) -> ImageInput:
    """One image, base64 (a string, as the APIs carry it) or raw bytes; InvalidRequest naming what is wrong."""
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise InvalidRequest("invalid base64 image data") from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except UnidentifiedImageError:
            raise InvalidRequest(f"unsupported image format ({_sniff(data)}): send PNG, JPEG, WebP or GIF") from None
        except (OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            raise InvalidRequest(f"invalid image data: {error}") from None
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise InvalidRequest(
                    f"image too large: {image.width}x{image.height} pixels, at most {MAX_PIXELS} are accepted"
                )
            try:
                rgb = _rgb(image)
            except (OSError, ValueError, SyntaxError) as error:  # a truncated or corrupt file shows while decoding
                name = FORMATS.get(image.format or "", "image")
                raise InvalidRequest(f"invalid {name} image data: {error}") from None
    return ImageInput(rgb.width, rgb.height, rgb.tobytes())


async def decode_images(images: Iterable[str]) -> dict[str, ImageInput]:
    """Each distinct image of a request, decoded off the event loop."""
    distinct = list(dict.fromkeys(images))
    if not distinct:
        return {}
    decoded = await asyncio.to_thread(lambda: [decode_image(image) for image in distinct])
    return dict(zip(distinct, decoded, strict=True))


def _rgb(image: Image.Image) -> Image.Image:
    image.seek(0)  # a GIF's first frame
    image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # a JPEG decodes straight to a smaller size, when it can
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, _WHITE)  # transparent pixels show as white, not as their hidden colour
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = image.convert("RGB")
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BICUBIC)
    return rgb


def _sniff(data: bytes) -> str:
    """A name for what the bytes look like, for the error message."""
    signatures = {
        b"BM": "BMP",
        b"II*\x00": "TIFF",
        b"MM\x00*": "TIFF",
        b"%PDF": "PDF",
        b"RIFF": "RIFF (audio?)",
        b"\x00\x00\x01\x00": "ICO",
    }
    for signature, name in signatures.items():
        if data.startswith(signature):
            return name
    if data[4:12] in (b"ftypheic", b"ftypavif", b"ftypmif1"):
        return data[8:12].decode().upper()
    return "not an image" if data else "empty"
