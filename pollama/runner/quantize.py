"""``python -m pollama.runner.quantize SOURCE TARGET FTYPE THREADS [--requantize]``: llama.cpp's quantizer, apart.

``--requantize`` accepts a quantized source (the server never passes it: like Ollama, it quantizes only
F16 and F32 weights); the test models' F16 copies are made with it.

A crash in llama.cpp's quantizer kills this process, never the server (as a runner's would). llama.cpp
logs one ``[ i/ n] tensor ...`` line per tensor on stderr; the server reads them as progress.
"""

from __future__ import annotations

import sys

import llama_cpp

from pollama.runner.model import set_fields


def main(argv: list[str]) -> int:
    source, target, ftype, threads = argv[0], argv[1], int(argv[2]), int(argv[3])
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    set_fields(params, ftype=ftype, nthread=threads, allow_requantize="--requantize" in argv[4:])
    status = llama_cpp.llama_model_quantize(source.encode(), target.encode(), params)
    if status != 0:
        print(f"quantize: llama_model_quantize failed with status {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
