"""Parsers of model output: thinking sections (and, with structured output, tool calls)."""
