"""``python -m pollama.convert MODEL_DIR OUT.gguf [--outtype f16|bf16|f32] [--name NAME]``, or for a PEFT
LoRA adapter ``python -m pollama.convert ADAPTER_DIR OUT.gguf --adapter-for BASE.gguf``.

Prints ``converting DONE/TOTAL`` after each tensor (the server reads these as progress) and, on a checkpoint
it cannot convert, ``error: WHY`` with exit status 2. ``OUT.gguf`` is left half-written on failure: the
caller writes to a scratch path and removes it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pollama.convert.lora import convert_lora
from pollama.convert.model import OUTTYPES, convert_model

INVALID_CHECKPOINT = 2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pollama.convert", description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--outtype", choices=sorted(OUTTYPES), default="f16")
    parser.add_argument("--name")
    parser.add_argument("--adapter-for", type=Path, metavar="BASE_GGUF", help="convert a LoRA adapter for this model")
    args = parser.parse_args(argv)
    logging.getLogger("gguf").setLevel(logging.ERROR)  # its per-key chatter is not progress

    def progress(done: int, total: int) -> None:
        print(f"converting {done}/{total}", flush=True)

    try:
        if args.adapter_for is not None:
            pairs = convert_lora(args.model_dir, args.adapter_for, args.target, progress=progress)
            print(f"converted adapter: {pairs} LoRA pairs", flush=True)
        else:
            converted = convert_model(
                args.model_dir, args.target, outtype=args.outtype, name=args.name, progress=progress
            )
            print(f"converted {converted.architecture}: {converted.tensors} tensors", flush=True)
    except ValueError as error:
        print(f"error: {error}", flush=True)
        return INVALID_CHECKPOINT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
