"""The runner: one subprocess per loaded model, driving llama.cpp.

This package imports ``llama_cpp`` and small pure modules only — never anything from
``pollama.server`` — so that a crash in native code takes down the runner, not the server.
Importing the package itself loads nothing; ``python -m pollama.runner`` starts one.
"""
