"""The HTTP server: a FastAPI app serving Ollama's API."""
