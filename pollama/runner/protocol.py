"""The runner's wire protocol: one JSON object per line, over the runner's stdin and stdout.

Server → runner (``op``): ``completion {id, prompt, options}``, ``embed {id, content, truncate}``,
``tokenize {id, content, add_special}``, ``detokenize {id, tokens}``, ``cancel {id}``,
``health {id}``, ``shutdown``. Closing stdin also shuts the runner down.

Runner → server (``event``): ``ready {n_ctx, n_ctx_train, num_parallel, weights_bytes, gpu_offload}``
or ``load_error {error}`` once at start; then per request id: ``token {text, logprobs?}``,
``done {done_reason, text, prompt_eval_count, prompt_eval_duration, eval_count, eval_duration,
context?}``, ``embedding {embedding, prompt_eval_count}``, ``tokens {tokens}``, ``content {content}``,
``health {active, waiting, rss_bytes}`` or ``error {status, error}``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["encode", "decode"]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError("a protocol message must be a JSON object")
    return message
