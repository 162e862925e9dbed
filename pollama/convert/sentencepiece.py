"""The pieces of a SentencePiece ``tokenizer.model``, read from its protobuf without the sentencepiece library.

Only ``ModelProto.pieces`` matters to llama.cpp: each piece's text, score and type, the type numbered as
GGUF's token types are (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte). The rest of the
model (trainer and normalizer specs) is skipped field by field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Piece", "SentencePieceError", "read_pieces"]

_NORMAL = 1
_PIECES_FIELD = 1
_PIECE_TEXT, _PIECE_SCORE, _PIECE_TYPE = 1, 2, 3
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class SentencePieceError(ValueError):
    """Not a SentencePiece model."""


@dataclass(frozen=True)
class Piece:
    text: str
    score: float
    type: int


def read_pieces(data: bytes) -> list[Piece]:
    """Every piece of a serialized ``ModelProto``, in id order."""
    pieces = []
    for field, wire, value in _fields(data):
        if field == _PIECES_FIELD and wire == _LENGTH:
            assert isinstance(value, bytes)
            pieces.append(_piece(value))
    if not pieces:
        raise SentencePieceError("tokenizer.model holds no pieces")
    return pieces


def _piece(data: bytes) -> Piece:
    text, score, kind = "", 0.0, _NORMAL
    for field, wire, value in _fields(data):
        if field == _PIECE_TEXT and wire == _LENGTH:
            assert isinstance(value, bytes)
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise SentencePieceError("tokenizer.model has a piece that is not UTF-8") from None
        elif field == _PIECE_SCORE and wire == _FIXED32:
            assert isinstance(value, bytes)
            (score,) = struct.unpack("<f", value)
        elif field == _PIECE_TYPE and wire == _VARINT:
            assert isinstance(value, int)
            kind = value
    return Piece(text, score, kind)


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of one message: ints for varints, bytes otherwise."""
    fields: list[tuple[int, int, int | bytes]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        field, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, position = _varint(data, position)
        elif wire == _FIXED64:
            value, position = data[position : position + 8], position + 8
        elif wire == _FIXED32:
            value, position = data[position : position + 4], position + 4
        elif wire == _LENGTH:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        else:
            raise SentencePieceError("tokenizer.model is not a SentencePiece model")
        if position > len(data):
            raise SentencePieceError("tokenizer.model is truncated")
        fields.append((field, wire, value))
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise SentencePieceError("tokenizer.model is truncated")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
