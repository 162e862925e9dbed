"""Build a small, hand-made vision projector (a llama.cpp ``mmproj`` GGUF) for a language model.

No vision-language model small enough for the tests can be had from a package registry (see the
README), so the test vision model is SmolLM2 with this projector: a CLIP-style vision tower and a
LLaVA MLP projector (``clip.projector_type = mlp``) of the structure llama.cpp's ``mtmd`` loads for
LLaVA, with fixed, constructed weights rather than trained ones:

- the patch embedding averages each 8×8 patch's red, green and blue into three features (the others
  stay zero); the transformer blocks add nothing (zero attention-out and FFN-down weights), so a
  patch's features are its mean colour;
- the projector's first layer has one unit per colour word (red, green, blue, yellow, purple, cyan,
  white, black) that fires only when the patch is that colour; its second layer writes the language
  model's own embedding of the word.

An image thus reaches the model as the word of each patch's colour, one embedding per patch: the
same image always gives the same embeddings, different colours different ones, and a model asked
the colour of a plain image can answer it. It knows nothing of shapes.

    python -m tools.vision_projector LANGUAGE_MODEL.gguf OUT.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

__all__ = ["COLOURS", "IMAGE_SIZE", "PATCH_SIZE", "build_projector"]

IMAGE_SIZE = 64
PATCH_SIZE = 8  # 64 patches, so 64 image tokens
_HIDDEN = 16  # the vision tower's width; three features used
_FFN = 32
_HEADS = 4
_BLOCKS = 2  # LLaVA's graph uses all but the last block
_GAIN = 10.0  # how sharply a colour unit fires: GELU(10) ≈ 10, GELU(-10) ≈ 0

# A colour word and its corner of the RGB cube, in the tower's normalized pixels (-1 … 1).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (1, -1, -1),
    "green": (-1, 1, -1),
    "blue": (-1, -1, 1),
    "yellow": (1, 1, -1),
    "purple": (1, -1, 1),
    "cyan": (-1, 1, 1),
    "white": (1, 1, 1),
    "black": (-1, -1, -1),
}


def _token_embeddings(model: Path) -> tuple[dict[str, np.ndarray], int]:
    """The language model's input embedding of each colour word (its first token, with a leading space)."""
    reader = gguf.GGUFReader(model)
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    width = int(reader.fields[f"{arch}.embedding_length"].parts[-1][0])
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    vocabulary = {str(bytes(tokens_field.parts[index]), "utf-8"): n for n, index in enumerate(tokens_field.data)}
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    table = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1, width)
    embeddings = {}
    for word in COLOURS:
        token = vocabulary.get("Ġ" + word)  # GPT-2 style byte-level BPE marks a leading space so
        if token is None:
            raise ValueError(f"{model}: no single token for ' {word}'")
        embeddings[word] = table[token].astype(np.float32)
    return embeddings, width


def build_projector(language_model: Path, target: Path) -> None:
    """Write the projector for ``language_model`` (a byte-level BPE vocabulary, as SmolLM2's) to ``target``."""
    embeddings, width = _token_embeddings(language_model)
    writer = gguf.GGUFWriter(target, "clip")
    writer.add_type("mmproj")
    writer.add_name("pollama test projector (colour words)")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", IMAGE_SIZE)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", _HIDDEN)
    writer.add_uint32("clip.vision.feed_forward_length", _FFN)
    writer.add_uint32("clip.vision.projection_dim", width)
    writer.add_uint32("clip.vision.block_count", _BLOCKS)
    writer.add_uint32("clip.vision.attention.head_count", _HEADS)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def tensor(name: str, value: np.ndarray) -> None:
        writer.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))

    patch = np.zeros((_HIDDEN, 3, PATCH_SIZE, PATCH_SIZE), np.float32)
    for channel in range(3):
        patch[channel, channel] = 1.0 / (PATCH_SIZE * PATCH_SIZE)
    tensor("v.patch_embd.weight", patch)
    tensor("v.patch_embd.bias", np.zeros(_HIDDEN))
    tensor("v.position_embd.weight", np.zeros(((IMAGE_SIZE // PATCH_SIZE) ** 2, _HIDDEN)))
    for block in range(_BLOCKS):
        prefix = f"v.blk.{block}"
        for norm in ("ln1", "ln2"):
            tensor(f"{prefix}.{norm}.weight", np.ones(_HIDDEN))
            tensor(f"{prefix}.{norm}.bias", np.zeros(_HIDDEN))
        for attention in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensor(f"{prefix}.{attention}.weight", np.zeros((_HIDDEN, _HIDDEN)))
            tensor(f"{prefix}.{attention}.bias", np.zeros(_HIDDEN))
        tensor(f"{prefix}.ffn_up.weight", np.zeros((_FFN, _HIDDEN)))
        tensor(f"{prefix}.ffn_up.bias", np.zeros(_FFN))
        tensor(f"{prefix}.ffn_down.weight", np.zeros((_HIDDEN, _FFN)))
        tensor(f"{prefix}.ffn_down.bias", np.zeros(_HIDDEN))

    units = len(COLOURS)
    detect = np.zeros((units, _HIDDEN), np.float32)
    write = np.zeros((width, units), np.float32)
    for unit, (word, corner) in enumerate(COLOURS.items()):
        # corner · x is 3 at the corner itself and at most 1 at any other: fire above 2.
        detect[unit, :3] = _GAIN * np.array(corner, np.float32)
        write[:, unit] = embeddings[word] / _GAIN
    tensor("mm.0.weight", detect)
    tensor("mm.0.bias", np.full(units, -2.0 * _GAIN))
    tensor("mm.2.weight", write)
    tensor("mm.2.bias", np.zeros(width))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    build_projector(Path(sys.argv[1]), Path(sys.argv[2]))
