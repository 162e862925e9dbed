"""Hugging Face checkpoints (safetensors) to GGUF, as llama.cpp's ``convert_hf_to_gguf.py`` writes them.

The server converts what ``create`` is given (``FROM ./folder``) in a process of its own,
``python -m pollama.convert``; every error is a ``ValueError`` that says what is wrong with the checkpoint.
"""

from pollama.convert.lora import convert_lora
from pollama.convert.model import OUTTYPES, Converted, convert_model

__all__ = ["OUTTYPES", "Converted", "convert_lora", "convert_model"]
