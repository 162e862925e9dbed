"""A tokenizer of one token per byte, plus three special tokens, for checking what an llguidance grammar accepts.

It is enough to hold a grammar against any text (llguidance marks a special token's bytes with a leading 0xFF),
and it builds in milliseconds, without a model. The ``byte_tokenizer`` fixture (tests/unit/conftest.py) is one.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["EOS", "SPECIAL", "accepts", "byte_tokenizer"]

TOOL_CALL, END_TOOL_CALL, EOS = 256, 257, 258
SPECIAL = {"<tool_call>": TOOL_CALL, "</tool_call>": END_TOOL_CALL}


class _ByteTokenizer:
    eos_token_id = EOS
    bos_token_id = None
    tokens = [bytes([byte]) for byte in range(256)] + [b"\xff<tool_call>", b"\xff</tool_call>", b"\xff<eos>"]
    special_token_ids = [TOOL_CALL, END_TOOL_CALL, EOS]

    def __call__(self, text: bytes | str) -> list[int]:
        return list(text.encode() if isinstance(text, str) else text)


def byte_tokenizer() -> Any:
    from llguidance import LLTokenizer, TokenizerWrapper

    return LLTokenizer(TokenizerWrapper(_ByteTokenizer()))


def accepts(tokenizer: Any, grammar: str, text: str, *, specials: bool = False) -> bool:
    """Whether ``text`` is a whole answer the grammar allows; ``specials``: the tags are written as special tokens."""
    from llguidance import LLMatcher

    matcher = LLMatcher(tokenizer, grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    sequence: list[int] = []
    pieces = re.split(r"(</?tool_call>)", text) if specials else [text]
    for piece in pieces:
        sequence += [SPECIAL[piece]] if piece in SPECIAL else list(piece.encode())
    return matcher.consume_tokens(sequence) and not matcher.is_error() and matcher.is_accepting()
