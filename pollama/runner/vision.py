"""Images into a language model, through llama.cpp's multimodal library (``mtmd``) and a projector GGUF.

A prompt with images becomes ``Piece``s: runs of text tokens and ``ImagePiece``s. An image piece
takes as many sequence positions as it has embeddings; in a slot's cache those positions hold
stand-in token ids (negative, derived from the image's content), so the prefix cache matches an
image as it matches text, and the next turn of a chat about an image neither encodes nor decodes
it again. Embeddings are computed when a piece is first decoded and kept in a small LRU.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import llama_cpp.mtmd_cpp as mtmd
import numpy as np

from pollama.runner.messages import ImageInput
from pollama.runner.model import set_fields

__all__ = ["IMAGE_TAG", "ImagePiece", "Piece", "Vision", "VisionError", "is_image_token", "split_prompt"]

IMAGE_TAG = re.compile(r"\[img-(\d+)\]")
_CACHED_IMAGES = 16
_CACHED_BYTES = 256 << 20
_PROBE_SIZE = 32


class VisionError(Exception):
    pass


@dataclass(eq=False)
class ImagePiece:
    """One image's positions in a prompt; ``embeddings`` (positions × n_embd) once encoded."""

    key: bytes  # identifies the image's pixels
    n_tokens: int
    chunk: mtmd.mtmd_input_chunk_p | None = field(repr=False)  # owned: freed by Vision.release
    embeddings: np.ndarray | None = field(default=None, repr=False)

    def stand_ins(self) -> list[int]:
        """The cache's token ids for this image's positions: negative, so never a real token."""
        base = int.from_bytes(self.key[:4], "little") & 0x3FFFFFFF
        return [-1 - ((base + index) & 0x3FFFFFFF) for index in range(self.n_tokens)]


Piece = list[int] | ImagePiece


def is_image_token(token: int) -> bool:
    return token < 0


def split_prompt(prompt: str, count: int) -> list[str | int]:
    """The prompt's text runs and, in their places, the indexes of the images its ``[img-N]`` tags name.

    A tag naming no image (N ≥ ``count``) stays text, as in Ollama.
    """
    parts: list[str | int] = []
    start = 0
    for match in IMAGE_TAG.finditer(prompt):
        index = int(match.group(1))
        if index >= count:
            continue
        parts.append(prompt[start : match.start()])
        parts.append(index)
        start = match.end()
    parts.append(prompt[start:])
    return [part for part in parts if part != ""]


class Vision:
    """The projector loaded beside a model: tokenizes images into pieces and encodes them."""

    def __init__(self, projector: Path, model: llama_cpp.llama_model_p, *, threads: int, use_gpu: bool) -> None:
        params = mtmd.mtmd_context_params_default()
        # warmup: allocate the encoder's buffers now, not at the first image.
        set_fields(params, use_gpu=use_gpu, n_threads=threads, print_timings=False, warmup=True)
        context = mtmd.mtmd_init_from_file(str(projector).encode(), model, params)
        if not context:
            raise VisionError("failed to load the projector: it does not fit this model, or is no projector")
        self.context = context
        if not mtmd.mtmd_support_vision(context):
            self.close()
            raise VisionError("the projector has no vision encoder")
        if mtmd.mtmd_decode_use_mrope(context):
            self.close()
            raise VisionError("projectors with M-RoPE positions (Qwen2-VL and later) are not supported yet")
        self.n_embd = llama_cpp.llama_model_n_embd_inp(model)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.encoded = 0  # images encoded since load: tests and logs see the cache work
        self.image_tokens = self._probe_tokens()

    def close(self) -> None:
        mtmd.mtmd_free(self.context)

    def image(self, image: ImageInput) -> list[int | ImagePiece]:
        """An image's pieces: its own, and the text tokens the model wants around it (e.g. <start_of_image>)."""
        key = hashlib.sha256(b"%d:%d:" % (image.width, image.height) + image.rgb).digest()
        pixels = (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
        bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, pixels)
        if not bitmap:
            raise VisionError("could not make a bitmap of the image")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            part = mtmd.mtmd_input_part(None, bitmap)
            parts = (ctypes.POINTER(mtmd.mtmd_input_part) * 1)(ctypes.pointer(part))
            if mtmd.mtmd_tokenize_from_parts(self.context, chunks, parts, 1, False) != 0:
                raise VisionError("failed to tokenize the image")
            return [*self._pieces(chunks, key)]
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _pieces(self, chunks: mtmd.mtmd_input_chunks_p, key: bytes) -> list[int | ImagePiece]:
        pieces: list[int | ImagePiece] = []
        for index in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, index)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t(0)
                tokens = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                pieces.extend(tokens[i] for i in range(count.value))
            elif mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
                pieces.append(ImagePiece(key, n_tokens, mtmd.mtmd_input_chunk_copy(chunk)))
            else:
                raise VisionError("the projector made a kind of input other than text and images")
        return pieces

    def release(self, piece: ImagePiece) -> None:
        if piece.chunk:
            mtmd.mtmd_input_chunk_free(piece.chunk)
            piece.chunk = None

    def embeddings(self, piece: ImagePiece) -> np.ndarray:
        """The piece's embeddings: from the cache, or encoded now."""
        if piece.embeddings is not None:
            return piece.embeddings
        cached = self._cache.get(piece.key)
        if cached is None:
            if mtmd.mtmd_encode_chunk(self.context, piece.chunk) != 0:
                raise VisionError("failed to encode the image")
            output = mtmd.mtmd_get_output_embd(self.context)
            cached = np.ctypeslib.as_array(output, shape=(piece.n_tokens * self.n_embd,)).copy()
            cached = cached.reshape(piece.n_tokens, self.n_embd)
            self.encoded += 1
            self._remember(piece.key, cached)
        else:
            self._cache.move_to_end(piece.key)
        piece.embeddings = cached
        return cached

    def non_causal(self, piece: ImagePiece) -> bool:
        """Whether the model attends to an image's positions all at once (gemma3): then it needs one batch."""
        return bool(mtmd.mtmd_decode_use_non_causal(self.context, piece.chunk))

    def _remember(self, key: bytes, embeddings: np.ndarray) -> None:
        self._cache[key] = embeddings
        while len(self._cache) > _CACHED_IMAGES or sum(e.nbytes for e in self._cache.values()) > _CACHED_BYTES:
            self._cache.popitem(last=False)

    def _probe_tokens(self) -> int:
        """The positions a small image takes: exact for fixed-size encoders, the least for tiling ones."""
        probe = ImageInput(_PROBE_SIZE, _PROBE_SIZE, bytes(_PROBE_SIZE * _PROBE_SIZE * 3))
        pieces = self.image(probe)
        total = 0
        for piece in pieces:
            if isinstance(piece, ImagePiece):
                total += piece.n_tokens
                self.release(piece)
            else:
                total += 1
        return total


def pieces_of(
    prompt: str, images: tuple[ImageInput, ...], tokenize: Callable[[str, bool], list[int]], vision: Vision
) -> list[int | ImagePiece]:
    """The prompt as tokens and image pieces; ``tokenize(text, first)`` adds the special tokens to the first run."""
    pieces: list[int | ImagePiece] = []
    try:
        for position, part in enumerate(split_prompt(prompt, len(images))):
            if isinstance(part, int):
                pieces.extend(vision.image(images[part]))
            else:
                pieces.extend(tokenize(part, position == 0))
    except BaseException:
        for piece in pieces:
            if isinstance(piece, ImagePiece):
                vision.release(piece)
        raise
    return pieces
