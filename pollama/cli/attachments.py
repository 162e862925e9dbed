"""Image files named in a prompt become attachments, as in Ollama's CLI (``cmd/interactive.go``:
``extractFileNames``, ``normalizeFilePath``, ``extractFileData``, ``getImageData``).

A path in the text (typed, pasted, or dropped into a terminal, which backslash-escapes its spaces)
that names an existing image is read, removed from the text, and sent in the request's ``images``.
Ollama's matching is deliberately loose: the pattern also catches text that is no path at all, and
a file that does not exist is simply left in the text. ``~`` is not expanded, as Ollama does not.
Audio (``.wav``) is left out: pollama's server has no audio input.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "MAX_FILE_SIZE",
    "AttachmentError",
    "Attachments",
    "attach_images",
    "extract_file_data",
    "find_file_names",
    "is_multimodal",
    "names_a_file",
    "read_image",
    "sniff_content_type",
    "unescape_path",
]

MAX_FILE_SIZE = 100 * 1024 * 1024  # Ollama's getImageData limit (100MB)
SNIFF_LENGTH = 512  # http.DetectContentType looks at the first 512 bytes
# Ollama's pattern with ``.wav`` left out. Go's ``[\S\\ ]`` is "anything but \t \n \f \r" (Go's \s has
# no \v), spelled out here because Python's \S is Unicode-aware; re.ASCII keeps \b ASCII like Go's.
FILE_PATTERN = re.compile(r"(?:[a-zA-Z]:)?(?:\./|/|\\)[^\t\n\f\r]+?\.(?i:jpg|jpeg|png|webp)\b", re.ASCII)
# normalizeFilePath's strings.Replacer: one left-to-right pass over these backslash escapes.
ESCAPED = re.compile(r"\\([ ()\[\]{}$&;'\\*?~])")
# Ollama accepts jpeg/png/webp; pollama's server also decodes GIF, so a GIF is let through too.
ALLOWED_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/webp", "image/gif"})
# The prefixes of http.DetectContentType's signatures that an image file is likely to be mistaken for.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
)
BINARY_BYTES = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
# Errors that mean "this text names no file": Ollama skips only ENOENT, but a sentence the loose
# pattern caught (a long one, or one through an existing file) also gives these, and must not end
# the chat.
NOT_A_FILE = (FileNotFoundError, NotADirectoryError)
ENAMETOOLONG = 36


class AttachmentError(Exception):
    """A named image exists but cannot be sent; the message is the one Ollama's Go code gives."""

    def __init__(self, message: str, added: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.added = added or []  # the files attached before this one failed (already announced by Ollama)


@dataclass
class Attachments:
    """The text with the attached paths removed, the files' bytes, and the paths as they were read."""

    text: str
    images: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def encoded(self) -> list[str]:
        """The images as the API's ``images`` field wants them: base64 strings."""
        return [base64.b64encode(image).decode("ascii") for image in self.images]


def is_multimodal(info: Mapping[str, Any]) -> bool:
    """Whether ``/api/show`` describes a model that takes images (Ollama's ``opts.MultiModal``: the
    ``vision`` capability, or, for older servers, projector info or ``.vision.`` model info keys)."""
    if "vision" in (info.get("capabilities") or []):
        return True
    if info.get("projector_info"):
        return True
    return any(".vision." in key for key in info.get("model_info") or {})


def find_file_names(text: str) -> list[str]:
    """Every substring that may be an image path (Ollama's ``extractFileNames``), in order, as typed."""
    return FILE_PATTERN.findall(text)


def unescape_path(path: str) -> str:
    """A shell-escaped path (``\\ ``, ``\\(``, ``\\\\``, …) as the file system names it."""
    return ESCAPED.sub(r"\1", path)


def names_a_file(line: str) -> bool:
    """Whether a line starting with ``/`` is a path rather than an unknown command: Ollama checks
    that a candidate path begins with the line's first word (the file need not exist)."""
    words = line.split()
    return bool(words) and any(name.startswith(words[0]) for name in find_file_names(line))


def sniff_content_type(head: bytes) -> str:
    """The MIME type Go's ``http.DetectContentType`` gives for these first bytes, for the image formats
    and the few things an image file could really be; other files get its text/binary fallback."""
    data = head[:SNIFF_LENGTH]
    for prefix, content_type in SIGNATURES:
        if data.startswith(prefix):
            return content_type
    if data[:4] == b"RIFF" and data[8:14] == b"WEBPVP":
        return "image/webp"
    if any(byte in BINARY_BYTES for byte in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def read_image(path: str) -> bytes | None:
    """The file's bytes, or None when the path names no file. Checked in Ollama's order (first bytes,
    sniffed type, then size), raising AttachmentError with Go's messages."""
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_LENGTH)
            if not head:
                raise AttachmentError("EOF")  # Go's Read of an empty file
            content_type = sniff_content_type(head)
            if content_type not in ALLOWED_TYPES:
                raise AttachmentError(f"invalid file type: {content_type}")
            file.seek(0, 2)
            if file.tell() > MAX_FILE_SIZE:
                raise AttachmentError("file size exceeds maximum limit (100MB)")
            file.seek(0)
            return file.read()
    except NOT_A_FILE:
        return None
    except IsADirectoryError:
        raise AttachmentError(f"read {path}: is a directory") from None
    except OSError as err:
        if err.errno == ENAMETOOLONG:
            return None
        reason = (err.strerror or str(err)).lower()
        raise AttachmentError(f"open {path}: {reason}") from None


def extract_file_data(text: str) -> Attachments:
    """Ollama's ``extractFileData``: read each existing image named in the text and remove it (also
    quoted in single quotes, unescaped or as typed); the rest of the text is trimmed. Paths that name
    no file stay. The same path named twice is sent twice, as Ollama does."""
    result = Attachments(text)
    for typed in find_file_names(text):
        path = unescape_path(typed)
        try:
            data = read_image(path)
        except AttachmentError as err:
            raise AttachmentError(err.message, result.paths) from None
        if data is None:
            continue
        result.text = result.text.replace(f"'{path}'", "").replace(f"'{typed}'", "").replace(typed, "")
        result.images.append(data)
        result.paths.append(path)
    result.text = result.text.strip()
    return result


def attach_images(text: str, stderr: TextIO | None = None) -> Attachments:
    """``extract_file_data`` with Ollama's messages on stderr: ``Added image '<path>'`` for each file,
    and ``Couldn't process file: "<error>"`` before the error is raised (the command then fails)."""
    out = stderr or sys.stderr
    try:
        found = extract_file_data(text)
    except AttachmentError as err:
        for path in err.added:
            print(f"Added image '{path}'", file=out)
        print(f"Couldn't process file: {json.dumps(err.message, ensure_ascii=False)}", file=out)
        raise
    for path in found.paths:
        print(f"Added image '{path}'", file=out)
    out.flush()
    return found
