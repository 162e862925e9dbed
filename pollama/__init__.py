"""pollama: an Ollama-compatible local LLM server and CLI."""

from pollama.version import OLLAMA_VERSION, __version__

__all__ = ["OLLAMA_VERSION", "__version__"]
