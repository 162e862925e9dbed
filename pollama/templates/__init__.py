"""Prompt templates: Go ``text/template`` (Modelfile TEMPLATE) and jinja (GGUF chat templates)."""
