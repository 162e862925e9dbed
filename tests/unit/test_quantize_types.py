"""Quantization type names as Ollama takes them, and the llama.cpp ftypes they map to."""

from __future__ import annotations

import llama_cpp
import pytest

from pollama.errors import InvalidRequest
from pollama.model.quantize import TYPES, quantize_type


@pytest.mark.parametrize(
    ("name", "canonical"), [("q4_K_M", "Q4_K_M"), ("q4_k", "Q4_K_M"), ("Q8_0", "Q8_0"), ("f16", "F16")]
)
def test_names_are_case_insensitive_with_ollamas_alias(name: str, canonical: str) -> None:
    assert quantize_type(name) == canonical


def test_an_unknown_type_names_the_supported_ones() -> None:
    with pytest.raises(InvalidRequest, match=r"^unsupported quantization type q9 - supported types are .*Q4_K_M"):
        quantize_type("q9")


def test_every_type_is_llama_cpps_ftype_of_that_name() -> None:
    # The server does not import llama_cpp, so the table keeps the numbers: checked here against the binding.
    for name, ftype in TYPES.items():
        prefix = "LLAMA_FTYPE_ALL_" if name == "F32" else "LLAMA_FTYPE_MOSTLY_"
        assert getattr(llama_cpp, prefix + name) == ftype, name
