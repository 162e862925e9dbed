"""Version numbers: our own, and the Ollama release whose API we implement."""

__version__ = "0.1.0"

# `/api/version` reports the Ollama release whose API pollama implements, because
# clients gate features on it (VS Code Copilot, for one, refuses servers older than 0.6.4).
OLLAMA_VERSION = "0.33.0"
