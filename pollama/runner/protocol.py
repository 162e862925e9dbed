"""The runner's wire protocol: one JSON object per line, over the runner's stdin and stdout.

The messages themselves, typed, are in ``messages``.

Server → runner (``op``): ``completion {id, prompt, sampling, control}``, ``embed {id, content, truncate}``,
``tokenize {id, content, add_special}``, ``count {id, content, limit}``, ``detokenize {id, tokens}``,
``cancel {id}``, ``health {id}``, ``shutdown``. Closing stdin also shuts the runner down.

Runner → server (``event``): ``ready {n_ctx, n_ctx_train, num_parallel, weights_bytes, total_bytes,
vram_bytes, gpu_offload}`` or ``load_error {error, status}`` once at start; then per request id:
``token {text, logprobs?}``, ``done {done_reason, text, prompt_eval_count, prompt_cached_count,
prompt_eval_duration, eval_count, eval_duration, context?}``, ``embedding {embedding, prompt_eval_count}``,
``tokens {tokens}``, ``count {count}`` (the content's tokens, counted no further than ``limit``),
``content {content}``,
``health {active, waiting, rss_bytes}`` or ``error {status, error}``.

No line is longer than ``LINE_LIMIT``, so a reader can refuse anything longer as garbage: a message
whose line would be longer than ``WHOLE_LINE_LIMIT`` (a prompt, an embedding, the tokens of a long
text) travels as consecutive fragment lines ``{fragment: i, of: n, data}``, ``data`` being the base64
of the i-th slice of its line. A writer sends one message's lines together, never between another's,
so a ``Decoder`` reassembles them without ids. No message has a ``fragment`` key of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

__all__ = ["LINE_LIMIT", "WHOLE_LINE_LIMIT", "Decoder", "encode"]

WHOLE_LINE_LIMIT = 1 << 20  # longer message lines are fragmented
_SLICE_BYTES = 3 << 18  # 768 KiB of a message's line per fragment: 1 MiB of base64
LINE_LIMIT = 2 << 20  # above the longest line either side writes (a fragment: 1 MiB and a header)


def encode(message: dict[str, Any]) -> Iterator[bytes]:
    """The lines that carry ``message``: its own, or the fragments of it when that is too long.

    The message is serialized at once; fragments are made as they are taken, so a writer can encode
    before it takes its lock and hold only the fragments one at a time.
    """
    line = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(line) <= WHOLE_LINE_LIMIT:
        return iter((line + b"\n",))
    return _fragments(line)


def _fragments(line: bytes) -> Iterator[bytes]:
    view = memoryview(line)
    count = -(-len(line) // _SLICE_BYTES)
    for index in range(count):
        data = base64.b64encode(view[index * _SLICE_BYTES : (index + 1) * _SLICE_BYTES])
        yield b'{"fragment":%d,"of":%d,"data":"%s"}\n' % (index, count, data)  # base64 needs no JSON escapes


class Decoder:
    """Lines back to messages: ``feed`` returns each message at its last line, None while fragments gather.

    A line that breaks the protocol raises ValueError and drops whatever fragments were gathered.
    """

    def __init__(self) -> None:
        self._slices: list[bytes] = []
        self._count = 0

    def feed(self, line: bytes) -> dict[str, Any] | None:
        try:
            if len(line) > LINE_LIMIT:
                raise ValueError(f"a protocol line is longer than {LINE_LIMIT} bytes")
            message = _json_object(line)
            if "fragment" not in message:
                if self._slices:
                    raise ValueError("a message came between the fragments of another")
                return message
            self._gather(message)
            if len(self._slices) < self._count:
                return None
            whole = b"".join(self._slices)
            self._slices, self._count = [], 0
            return _json_object(whole)
        except ValueError:
            self._slices, self._count = [], 0
            raise

    def _gather(self, fragment: dict[str, Any]) -> None:
        index, count, data = fragment.get("fragment"), fragment.get("of"), fragment.get("data")
        if not (isinstance(index, int) and isinstance(count, int) and isinstance(data, str)):
            raise ValueError("a fragment needs an integer fragment and of, and string data")
        if index != len(self._slices) or count < 2 or (self._slices and count != self._count):
            raise ValueError(f"fragment {index} of {count} out of order (after {len(self._slices)} of {self._count})")
        try:
            self._slices.append(base64.b64decode(data, validate=True))
        except binascii.Error as error:
            raise ValueError(f"a fragment's data is not base64: {error}") from None
        self._count = count


def _json_object(data: bytes) -> dict[str, Any]:
    message = json.loads(data)  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(message, dict):
        raise ValueError("a protocol message must be a JSON object")
    return message
