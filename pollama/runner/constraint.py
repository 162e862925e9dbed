"""Constrained sampling: llguidance computes, per step, which tokens keep the output inside a grammar.

The mask costs about 20 µs to compute and 30-80 µs to apply on a 49k-151k vocabulary (SmolLM2,
Qwen2.5) — under 1 % of a decode step — so it is applied before every constrained draw and the
draw itself stays llama.cpp's sampler chain. (llama.cpp's own GBNF sampler walks the whole
vocabulary through its grammar stacks instead, halving the decode speed: see bench/structured.py.)

A constraint can wait for a piece of text before it starts (a thinking model's closing tag), so
the thinking runs free and only the answer is held to the format; if the model answers without
opening its thinking, the constraint starts with the first token of the answer.
"""

from __future__ import annotations

import ctypes
import functools
import warnings

import llama_cpp
import numpy as np
from llguidance import LLMatcher, LLTokenizer

__all__ = ["Constraint", "ConstraintError", "tokenizer_for"]


class ConstraintError(ValueError):
    pass


@functools.cache
def tokenizer_for(vocab_address: int, n_vocab: int) -> LLTokenizer:
    """llguidance's view of a llama.cpp vocabulary (about 0.3-1 s to build, so once per model)."""
    from llguidance.llamacpp import lltokenizer_from_vocab

    vocab = llama_cpp.llama_vocab_p(vocab_address)
    ends = [token for token in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, token)]
    with warnings.catch_warnings():  # it calls a llama-cpp-python function deprecated under another name
        warnings.simplefilter("ignore", DeprecationWarning)
        return lltokenizer_from_vocab(vocab, eos_token=ends or None)


class Constraint:
    def __init__(self, tokenizer: LLTokenizer, grammar: str, n_vocab: int, *, start_after: str = "", opening: str = ""):
        self.matcher = LLMatcher(tokenizer, grammar)
        if self.matcher.is_error():
            raise ConstraintError(f"invalid format: {self.matcher.get_error()}")
        self.n_vocab = n_vocab
        self._mask = np.zeros((n_vocab + 31) // 32, dtype=np.int32)
        self._start_after = start_after.encode()
        self._opening = opening.encode()  # the thinking must open with this (unless the prompt opened it)
        self._before = b""  # text generated while waiting for ``start_after``

    @property
    def active(self) -> bool:
        return not self._start_after

    @property
    def awaits_opening(self) -> bool:
        """Still waiting, and the answer might yet start without the thinking's opening tag."""
        return not self.active and bool(self._opening)

    @property
    def failed(self) -> bool:
        return self.active and self.matcher.is_error()

    def restrict(self, context: llama_cpp.llama_context_p, index: int) -> None:
        """Make every token the grammar forbids impossible in the logits at ``index``."""
        if not self.active:
            return
        self.matcher.unsafe_compute_mask_ptr(self._mask.ctypes.data, self._mask.nbytes)
        pointer = llama_cpp.llama_get_logits_ith(context, index)
        logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,))
        allowed = np.unpackbits(self._mask.view(np.uint8), bitorder="little")[: self.n_vocab]
        logits[allowed == 0] = -np.inf

    def skips_thinking(self, piece: bytes) -> bool:
        """Whether a drawn token shows the answer starting without the thinking it was waiting for.

        Then the constraint starts at once, and the caller draws that token again under it.
        """
        if not self.awaits_opening:
            return False
        said = (self._before + piece).lstrip()
        if said.startswith(self._opening):
            self._opening = b""  # the thinking has opened: only its closing matters now
            return False
        if self._opening.startswith(said):
            return False
        self._start_after = b""
        return True

    def advance(self, token: int, piece: bytes) -> None:
        """Record a sampled token: the grammar consumes it, or it brings the start text closer."""
        if self.active:
            self.matcher.consume_token(token)
            return
        self._before += piece
        if self._start_after in self._before:
            self._start_after = b""
