"""A GGUF loaded with llama.cpp: the model, its vocabulary and one shared context."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from pollama.runner import ggml, rpc

__all__ = [
    "EMBEDDING_SEQUENCES",
    "UNSAFE_BUFFER_TYPES",
    "LoadError",
    "LoadOptions",
    "LoadedModel",
    "drop_unsafe_buffer_types",
    "load",
    "set_fields",
]

# Extra CPU buffer types never used: llama.cpp's AMX matmul segfaults at the first batch of more than
# one token on Sapphire Rapids and later Xeons (llama.cpp#20824, ollama#17006).
UNSAFE_BUFFER_TYPES = ("AMX",)

# The inputs of an embedding model computed in one batch, at most: on all-MiniLM, 32 sentences of 8 to 20
# words fill about three quarters of its 512-token batch (bench.embeddings).
EMBEDDING_SEQUENCES = 32

_KV_TYPES = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}
_WARM_UP_TEXT = "The quick brown fox jumps over the lazy dog."
_PROBE_TEXT = "probe"
_FLASH = {
    None: llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    True: llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    False: llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


class LoadError(Exception):
    """The model could not be loaded; ``status`` 400 when what the model names is at fault (an adapter)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LoadOptions:
    path: Path
    num_ctx: int  # per sequence
    num_parallel: int
    num_batch: int
    num_thread: int
    num_gpu: int  # layers to offload; -1 = as many as fit (all)
    main_gpu: int = 0
    tensor_split: tuple[float, ...] = ()  # per GPU index; empty: everything on main_gpu
    use_mmap: bool = True
    flash_attention: bool | None = None  # None = llama.cpp decides
    kv_cache_type: str = "f16"
    embedding: bool = False  # an embedding model: pooled outputs, no logits
    extra_buffers: bool = True  # llama.cpp's repacked CPU weight layouts (minus UNSAFE_BUFFER_TYPES)
    projector: Path | None = None  # a vision projector GGUF (mmproj) to load beside the model
    adapters: tuple[Path, ...] = ()  # LoRA adapter GGUFs applied to the context, each at scale 1.0
    rpc_servers: tuple[str, ...] = ()  # ggml-rpc-server endpoints the offloaded layers are split over
    draft_tokens: int = 0  # draft tokens a step, at most (engine: speculative decoding; 0: off)
    draft_model: Path | None = None  # a GGUF with the same vocabulary that drafts them; None: n-gram drafts


class LoadedModel:
    """Owns the llama.cpp model and context; freed by ``close``."""

    def __init__(self, model: llama_cpp.llama_model_p, context: llama_cpp.llama_context_p, options: LoadOptions):
        self.model = model
        self.context = context
        self.options = options
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.memory = llama_cpp.llama_get_memory(context)
        # llama.cpp pads the context up (to 256); the limits users set are the ones that count.
        self.n_ctx_seq = min(llama_cpp.llama_n_ctx_seq(context), options.num_ctx)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        self.n_batch = llama_cpp.llama_n_batch(context)
        self.n_seq_max = llama_cpp.llama_n_seq_max(context)
        self.n_embd = llama_cpp.llama_model_n_embd(model)
        self.bos = llama_cpp.llama_vocab_bos(self.vocab)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.add_eos = bool(llama_cpp.llama_vocab_get_add_eos(self.vocab))
        self.encoder_only = bool(llama_cpp.llama_model_has_encoder(model)) and not llama_cpp.llama_model_has_decoder(
            model
        )
        self.can_shift = bool(llama_cpp.llama_memory_can_shift(self.memory))
        self._piece_buffer = ctypes.create_string_buffer(256)
        self.special_prefix, self.special_suffix = self._specials()

    def tokenize(self, text: str | bytes, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """One call of llama.cpp's tokenizer: ``pieces.bounded_tokens`` is the one for texts of any length."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        capacity = len(data) + 8
        tokens = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, parse_special)
        if count < 0:
            capacity = -count
            tokens = (llama_cpp.llama_token * capacity)()
            count = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, parse_special)
        return self.without_doubled_bos(tokens[:count])

    def without_doubled_bos(self, tokens: list[int]) -> list[int]:
        # Chat templates often write the BOS text themselves; tokenizing adds another one.
        if self.add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == self.bos:
            del tokens[0]
        return tokens

    def _specials(self) -> tuple[list[int], list[int]]:
        """The tokens tokenizing with ``add_special`` puts before and after a text, whichever the vocabulary's kind."""
        plain = self.tokenize(_PROBE_TEXT, add_special=False)
        special = self.tokenize(_PROBE_TEXT)
        for start in range(len(special) - len(plain) + 1):
            if special[start : start + len(plain)] == plain:
                return special[:start], special[start + len(plain) :]
        return [], []  # the vocabulary changes the text itself when adding specials: none known

    def piece(self, token: int, *, special: bool = False) -> bytes:
        length = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buffer, 256, 0, special)
        if length < 0:
            buffer = ctypes.create_string_buffer(-length)
            length = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, -length, 0, special)
            return buffer.raw[:length]
        return self._piece_buffer.raw[:length]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(token, special=True) for token in tokens).decode("utf-8", errors="replace")

    def valid_token(self, token: int) -> bool:
        return 0 <= token < self.n_vocab

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def weights_bytes(self) -> int:
        return int(llama_cpp.llama_model_size(self.model))

    def close(self) -> None:
        llama_cpp.llama_free(self.context)
        llama_cpp.llama_model_free(self.model)


def load(
    options: LoadOptions,
    *,
    before_first_decode: Callable[[], None] | None = None,
    last_error: Callable[[], str] = lambda: "",
) -> LoadedModel:
    """Load the weights and create the context; ``before_first_decode`` runs just before the warm-up decode.

    ``last_error`` says what llama.cpp last logged as an error (``logs.BufferLog.last_error``): the reason
    an adapter was refused, which its load call does not return.
    """
    llama_cpp.llama_backend_init()
    if options.extra_buffers:
        drop_unsafe_buffer_types()
    model_params = llama_cpp.llama_model_default_params()
    set_fields(
        model_params,
        n_gpu_layers=999 if options.num_gpu < 0 else options.num_gpu,
        main_gpu=options.main_gpu,
        load_mode=llama_cpp.LLAMA_LOAD_MODE_MMAP if options.use_mmap else llama_cpp.LLAMA_LOAD_MODE_NONE,
        use_extra_bufts=options.extra_buffers,
    )
    devices = _offload_devices(options.rpc_servers)  # read by the load below: kept alive until it returns
    if devices is not None:
        # The offloaded layers go to the servers and the local GPUs, by each one's free memory (llama.cpp's
        # default split, as llama-server's --rpc gives); the scheduler planned no local split to pass.
        set_fields(model_params, devices=ctypes.addressof(devices), split_mode=llama_cpp.LLAMA_SPLIT_MODE_LAYER)
    elif options.tensor_split:
        size = max(len(options.tensor_split), llama_cpp.llama_max_devices())  # llama.cpp reads that many
        split = (ctypes.c_float * size)(*options.tensor_split)
        set_fields(model_params, split_mode=llama_cpp.LLAMA_SPLIT_MODE_LAYER, tensor_split=split)
    elif options.num_gpu != 0 and llama_cpp.llama_supports_gpu_offload():
        set_fields(model_params, split_mode=llama_cpp.LLAMA_SPLIT_MODE_NONE)  # the whole model on main_gpu
    model = llama_cpp.llama_model_load_from_file(str(options.path).encode(), model_params)
    if not model:
        raise LoadError("error loading model")

    flash = _FLASH[options.flash_attention]
    kv_type = _KV_TYPES.get(options.kv_cache_type, llama_cpp.GGML_TYPE_F16)
    if flash == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED:
        kv_type = llama_cpp.GGML_TYPE_F16  # quantized V cache needs flash attention

    params = llama_cpp.llama_context_default_params()
    # An embedding model (one num_ctx context: num_parallel is 1) packs its inputs into shared batches, each
    # input a sequence of its own that is dropped once pooled: the sequences share that context (kv_unified).
    sequences = EMBEDDING_SEQUENCES if options.embedding else options.num_parallel
    # Every sequence may need an output in one batch; llama.cpp asserts there is room for them.
    batch = max(options.num_batch, sequences)
    set_fields(
        params,
        n_ctx=options.num_ctx * options.num_parallel,
        n_seq_max=sequences,
        n_batch=batch,
        n_ubatch=batch,
        n_threads=options.num_thread,
        n_threads_batch=options.num_thread,
        flash_attn_type=flash,
        type_k=kv_type,
        type_v=kv_type,
        kv_unified=options.embedding,  # else each sequence gets num_ctx cells of its own, as Ollama promises
        embeddings=options.embedding,
        no_perf=True,
    )
    context = llama_cpp.llama_init_from_model(model, params)
    if not context:
        llama_cpp.llama_model_free(model)
        raise LoadError("unable to create a context for the model (not enough memory?)")
    try:
        _apply_adapters(model, context, options, last_error)
    except LoadError:
        llama_cpp.llama_free(context)
        llama_cpp.llama_model_free(model)  # frees the adapters loaded so far with it
        raise
    loaded = LoadedModel(model, context, options)
    if not loaded.encoder_only:
        _warm_up(loaded, before_first_decode)
    return loaded


def _offload_devices(endpoints: tuple[str, ...]) -> ctypes.Array[ctypes.c_void_p] | None:
    """``llama_model_params.devices`` for a model split over RPC servers: a NULL-terminated array of
    ``ggml_backend_dev_t``; None without servers (llama.cpp then picks the local devices itself)."""
    if not endpoints:
        return None
    try:
        devices = rpc.offload_devices(endpoints)
    except rpc.RpcError as error:
        raise LoadError(str(error)) from None
    for device in devices:
        print(
            f"runner: offloading to {device.name} ({device.description}, {device.free_memory >> 20} MiB free)",
            file=sys.stderr,
            flush=True,
        )
    return (ctypes.c_void_p * (len(devices) + 1))(*(device.handle for device in devices), None)


def _apply_adapters(
    model: llama_cpp.llama_model_p,
    context: llama_cpp.llama_context_p,
    options: LoadOptions,
    last_error: Callable[[], str],
) -> None:
    """Load the LoRA adapters and set them on the context (the only one), each at scale 1.0, as Ollama does.

    llama.cpp checks each against the model (architecture, a base tensor for every pair, shapes) and
    refuses a misfit with NULL; the adapters stay the model's, freed with it.
    """
    if not options.adapters:
        return
    adapters = []
    for path in options.adapters:
        if not path.is_file():
            raise LoadError(f"the adapter {path} does not exist")
        adapter = llama_cpp.llama_adapter_lora_init(model, str(path).encode())
        if not adapter:
            reason = last_error().strip().removeprefix("failed to apply lora adapter: ")
            raise LoadError(
                f"the adapter {path.name} does not match the model {options.path.name}"
                + (f": {reason}" if reason else ""),
                status=400,
            )
        adapters.append(adapter)
    array = (llama_cpp.llama_adapter_lora_p_ctypes * len(adapters))(*adapters)
    scales = (ctypes.c_float * len(adapters))(*([1.0] * len(adapters)))
    if llama_cpp.llama_set_adapters_lora(context, array, len(adapters), scales) != 0:
        raise LoadError("unable to apply the adapters to the model's context")


def drop_unsafe_buffer_types() -> None:
    """Keep llama.cpp from choosing ``UNSAFE_BUFFER_TYPES`` for any model this process loads."""
    ggml.drop_extra_buffer_types(UNSAFE_BUFFER_TYPES)


def _decode(model: LoadedModel, tokens: list[int]) -> int:
    array = (llama_cpp.llama_token * len(tokens))(*tokens)  # the batch points into it: keep it alive
    return int(llama_cpp.llama_decode(model.context, llama_cpp.llama_batch_get_one(array, len(tokens))))


def set_fields(struct: ctypes.Structure, **values: Any) -> None:
    """Set fields of a llama.cpp parameter struct, refusing names it lacks.

    A ctypes structure takes any attribute silently; a field that a new llama.cpp renamed (``use_mmap``
    became ``load_mode``) would otherwise be dropped without a word.
    """
    fields = {name for name, *_type in type(struct)._fields_}
    for name, value in values.items():
        if name not in fields:
            raise TypeError(f"{type(struct).__name__} has no field {name!r}: llama-cpp-python changed")
        setattr(struct, name, value)


def _warm_up(model: LoadedModel, before_first_decode: Callable[[], None] | None) -> None:
    """Decode a short prompt and one more token, as a request would, then forget them.

    The first request then does not pay for allocating compute buffers, and a kernel that crashes on
    this machine (AMX did, on any batch of more than one token) crashes here, while loading, where
    the server can retry in a safer configuration, instead of under a user's request.
    """
    prompt = model.tokenize(_WARM_UP_TEXT)[: max(1, min(16, model.n_batch))]
    llama_cpp.llama_set_warmup(model.context, True)
    _decode(model, prompt[:1])
    llama_cpp.llama_memory_clear(model.memory, True)
    llama_cpp.llama_synchronize(model.context)
    llama_cpp.llama_set_warmup(model.context, False)
    if before_first_decode is not None:
        before_first_decode()
    if _decode(model, prompt) != 0 or _decode(model, prompt[-1:]) != 0:
        raise LoadError("the model failed its first decode")
    llama_cpp.llama_synchronize(model.context)
    llama_cpp.llama_memory_clear(model.memory, True)
