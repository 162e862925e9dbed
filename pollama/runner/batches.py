"""Writing tokens into a llama.cpp batch, shared by the engine and the draft model."""

from __future__ import annotations

import llama_cpp

__all__ = ["put"]


def put(batch: llama_cpp.llama_batch, token: int, position: int, seq: int, *, output: bool) -> None:
    """Append one token of sequence ``seq`` to ``batch``."""
    index = batch.n_tokens
    batch.token[index] = token
    batch.pos[index] = position  # type: ignore[call-overload]  # the binding's hint is wrong: pos is llama_pos*
    batch.n_seq_id[index] = 1
    batch.seq_id[index][0] = seq
    batch.logits[index] = output
    batch.n_tokens += 1
