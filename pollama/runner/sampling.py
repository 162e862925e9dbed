"""Per-request sampling: a llama.cpp sampler chain built from Ollama's options, and logprobs.

The chain follows llama.cpp's server order (logit bias, penalties, top-k, typical, top-p, min-p,
temperature, then a seeded draw; with mirostat, temperature then mirostat's own draw), so a given
seed reproduces the same text.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np

from pollama.runner.messages import Sampling

__all__ = ["Sampler", "token_logprobs"]

_RANDOM_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random seed
_MIROSTAT_CANDIDATES = 100  # llama.cpp's m for mirostat 1: tokens used to estimate s_hat


class Sampler:
    """A sampler chain for one sequence (a format's constraint is applied to the logits before it)."""

    def __init__(self, options: Sampling, *, n_vocab: int, n_ctx: int):
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        self._penalties: Any = None  # the penalties sampler, a llama_sampler pointer
        # A window beyond the context sees nothing more (and would not fit llama.cpp's int32).
        self._penalty_window = n_ctx if options.repeat_last_n < 0 else min(options.repeat_last_n, n_ctx)
        add = lambda sampler: llama_cpp.llama_sampler_chain_add(self.chain, sampler)  # noqa: E731
        # llama.cpp indexes the logits by these ids unchecked: one outside the vocabulary is no bias at all.
        logit_bias = [(token, bias) for token, bias in options.logit_bias.items() if 0 <= token < n_vocab]
        if logit_bias:
            biases = (llama_cpp.llama_logit_bias * len(logit_bias))(
                *(llama_cpp.llama_logit_bias(token, bias) for token, bias in logit_bias)
            )
            add(llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(logit_bias), biases))
        penalised = options.repeat_penalty != 1.0 or options.presence_penalty or options.frequency_penalty
        if self._penalty_window and penalised:
            self._penalties = llama_cpp.llama_sampler_init_penalties(
                n_vocab,
                self._penalty_window,
                options.repeat_penalty,
                options.frequency_penalty,
                options.presence_penalty,
            )
            add(self._penalties)
        if options.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return
        seed = _RANDOM_SEED if options.seed < 0 else options.seed & 0xFFFFFFFF
        if options.mirostat == 1:
            add(llama_cpp.llama_sampler_init_temp(options.temperature))
            mirostat_1 = llama_cpp.llama_sampler_init_mirostat
            add(mirostat_1(n_vocab, seed, options.mirostat_tau, options.mirostat_eta, _MIROSTAT_CANDIDATES))
            return
        if options.mirostat == 2:
            add(llama_cpp.llama_sampler_init_temp(options.temperature))
            add(llama_cpp.llama_sampler_init_mirostat_v2(seed, options.mirostat_tau, options.mirostat_eta))
            return
        if options.top_k > 0:
            add(llama_cpp.llama_sampler_init_top_k(options.top_k))
        if 0 < options.typical_p < 1:
            add(llama_cpp.llama_sampler_init_typical(options.typical_p, 1))
        if 0 < options.top_p < 1:
            add(llama_cpp.llama_sampler_init_top_p(options.top_p, 1))
        if options.min_p > 0:
            add(llama_cpp.llama_sampler_init_min_p(options.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(options.temperature))
        add(llama_cpp.llama_sampler_init_dist(seed))

    def remember_prompt(self, tokens: list[int]) -> None:
        """Let repeat penalties see the prompt, as llama.cpp's server does."""
        if self._penalties is None:
            return
        for token in tokens[-self._penalty_window :]:
            llama_cpp.llama_sampler_accept(self._penalties, token)

    def sample(self, context: llama_cpp.llama_context_p, index: int) -> int:
        return llama_cpp.llama_sampler_sample(self.chain, context, index)

    def close(self) -> None:
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None


def token_logprobs(
    context: llama_cpp.llama_context_p, index: int, n_vocab: int, chosen: int, top: int
) -> tuple[float, list[tuple[int, float]]]:
    """Log-probability of ``chosen`` and the ``top`` most likely tokens, from the raw logits at ``index``."""
    pointer = llama_cpp.llama_get_logits_ith(context, index)
    logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    peak = float(logits.max())
    log_total = peak + math.log(float(np.exp(logits - peak).sum()))
    alternatives: list[tuple[int, float]] = []
    if top > 0:
        candidates = np.argpartition(-logits, top)[:top] if top < n_vocab else np.arange(n_vocab)
        ordered = candidates[np.argsort(-logits[candidates], kind="stable")]
        # A format's constraint leaves forbidden tokens at -inf: they are no alternatives (nor valid JSON).
        alternatives = [(int(token), float(logits[token]) - log_total) for token in ordered if logits[token] > -np.inf]
    return float(logits[chosen]) - log_total, alternatives
