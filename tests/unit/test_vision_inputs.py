"""Pure parts of the image path: decoding, [img-N] splitting, the runner's image message, projector fit."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from pollama.errors import InvalidRequest
from pollama.model.projector import projector_mismatch
from pollama.runner.messages import CompletionRequest, ImageInput, decode_request, with_id
from pollama.runner.vision import split_prompt
from pollama.service.images import MAX_SIDE, decode_image
from pollama.store.gguf import GGUFFile, read_gguf
from tests.ggufs import write_gguf


def encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    decoded = decode_image(base64.b64encode(encoded(Image.new("RGB", (7, 5), (255, 0, 0)), fmt)).decode())
    assert (decoded.width, decoded.height) == (7, 5)
    red, green, blue = decoded.rgb[:3]
    assert red > 200 and green < 60 and blue < 60


def test_transparent_pixels_become_white() -> None:
    decoded = decode_image(encoded(Image.new("RGBA", (2, 2), (255, 0, 0, 0)), "PNG"))
    assert decoded.rgb[:3] == b"\xff\xff\xff"


def test_large_images_are_scaled_down_keeping_their_shape() -> None:
    decoded = decode_image(encoded(Image.new("RGB", (MAX_SIDE * 2, MAX_SIDE)), "PNG"))
    assert (decoded.width, decoded.height) == (MAX_SIDE, MAX_SIDE // 2)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (encoded(Image.new("RGB", (2, 2)), "BMP"), "BMP"),
        (encoded(Image.new("RGB", (2, 2)), "TIFF"), "TIFF"),
        (b"hello", "not an image"),
        (b"", "empty"),
    ],
)
def test_other_formats_are_named_in_the_error(data: bytes, named: str) -> None:
    with pytest.raises(InvalidRequest, match="PNG, JPEG, WebP or GIF") as refused:
        decode_image(data)
    assert named in refused.value.message


def test_a_truncated_image_is_a_request_error() -> None:
    whole = encoded(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    with pytest.raises(InvalidRequest, match="image"):
        decode_image(whole[: len(whole) // 2])


def test_bad_base64_is_a_request_error() -> None:
    with pytest.raises(InvalidRequest, match="base64"):
        decode_image("no base64 here!")


def test_img_tags_split_the_prompt_and_unknown_ones_stay_text() -> None:
    assert split_prompt("a[img-0]b[img-1]c", 2) == ["a", 0, "b", 1, "c"]
    assert split_prompt("[img-1][img-0]", 2) == [1, 0]
    assert split_prompt("x[img-5]y", 2) == ["x[img-5]y"]
    assert split_prompt("just text", 0) == ["just text"]


def test_images_travel_to_the_runner_and_back() -> None:
    image = ImageInput(2, 1, b"\x01\x02\x03\x04\x05\x06")
    request = CompletionRequest("[img-0]hi", images=(image,))
    request_id, decoded = decode_request(with_id("7", request))
    assert request_id == "7" and decoded == request


def test_an_image_of_the_wrong_byte_count_is_malformed() -> None:
    wire = with_id("1", CompletionRequest("p", images=(ImageInput(1, 1, b"abc"),)))
    wire["images"][0]["width"] = 2
    with pytest.raises(ValueError, match="needs 6 bytes"):
        decode_request(wire)


def test_a_projector_must_be_as_wide_as_the_model(tmp_path: Path) -> None:
    model = read_gguf(write_gguf(tmp_path / "m.gguf"))  # embedding_length 8

    def projector(width: int) -> GGUFFile:
        keys = {"general.type": "mmproj", "clip.has_vision_encoder": True, "clip.vision.projection_dim": width}
        return read_gguf(write_gguf(tmp_path / f"p{width}.gguf", arch="clip", kv=keys, file_type=None))

    assert projector_mismatch(model, projector(8)) is None
    problem = projector_mismatch(model, projector(16))
    assert problem is not None and "16" in problem and "8" in problem
    assert "architecture" in (projector_mismatch(model, model) or "")
