"""Merging options into a RunnerConfig (spec A.12, G.2, G.3) and reading ``keep_alive`` (spec G.4)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pollama.config import Settings
from pollama.errors import PollamaError
from pollama.gocompat.durations import FOREVER, MINUTE, SECOND, parse_keep_alive
from pollama.model.capabilities import capabilities_of
from pollama.runtime.devices import physical_cores
from pollama.runtime.options import DEFAULT_OPTIONS, resolve
from pollama.server.errors import status_of
from pollama.store import Store
from pollama.store.layers import CONFIG_MEDIA_TYPE, Layer, Manifest, MediaType, params_blob
from pollama.store.models import StoredModel, load_model
from pollama.store.names import ModelName

LOAD_TIME = ("num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "draft_num_predict")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "models")
    s.ensure()
    return s


@pytest.fixture
def stored(store: Store, make_gguf: Callable[..., Path]) -> Callable[..., StoredModel]:
    """Put a GGUF (and optionally PARAMETERs) into the store as a model and load it back."""
    counter = iter(range(1000))

    def make(parameters: dict[str, Any] | None = None, **gguf_kwargs: Any) -> StoredModel:
        data = make_gguf(**gguf_kwargs).read_bytes()
        weights, _ = store.blobs.write_bytes(data)
        layers = [Layer(MediaType.MODEL, weights, len(data))]
        if parameters is not None:
            blob = params_blob(parameters)
            digest, _ = store.blobs.write_bytes(blob)
            layers.append(Layer(MediaType.PARAMS, digest, len(blob)))
        config = b'{"model_format":"gguf","model_family":"llama"}'
        config_digest, _ = store.blobs.write_bytes(config)
        name = ModelName.parse_valid(f"test-{next(counter)}")
        store.manifests.write(name, Manifest.build(Layer(CONFIG_MEDIA_TYPE, config_digest, len(config)), layers))
        return load_model(store, name)

    return make


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"HOME": str(tmp_path), **env})


EMBEDDING = {"kv": {"llama.pooling_type": 1}}  # a GGUF with <arch>.pooling_type is an embedding model


# --- merging --------------------------------------------------------------------------------------


def test_defaults(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    model = stored()
    resolved = resolve(settings(tmp_path), model, None)
    assert resolved.options == {**DEFAULT_OPTIONS, "num_ctx": 2048}  # 4096 clamped to the GGUF's 2048
    assert resolved.options["num_keep"] == 4
    assert resolved.options["temperature"] == 0.8
    config = resolved.config
    assert config.model_path == model.model_path
    assert config.num_ctx == 2048
    assert config.num_parallel == 1
    assert config.num_batch == 512
    assert config.num_thread == physical_cores()
    assert config.num_gpu == -1
    assert config.main_gpu == -1  # the scheduler chooses
    assert config.use_mmap is True
    assert config.flash_attention is None
    assert config.kv_cache_type == "f16"
    assert config.embedding is False


def test_default_option_values_match_ollama() -> None:
    assert DEFAULT_OPTIONS == {
        "num_keep": 4,
        "seed": -1,
        "num_predict": -1,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_last_n": 64,
        "temperature": 0.8,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }


def test_model_parameters_override_defaults(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    model = stored({"temperature": 0.2, "stop": ["<|im_end|>"], "num_ctx": 1024, "top_k": 10})
    resolved = resolve(settings(tmp_path), model, {})
    assert resolved.options["temperature"] == 0.2
    assert resolved.options["stop"] == ["<|im_end|>"]
    assert resolved.options["top_k"] == 10
    assert resolved.options["top_p"] == 0.9
    assert resolved.config.num_ctx == 1024


def test_request_options_override_model_parameters(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    model = stored({"temperature": 0.2, "stop": ["<|im_end|>"], "num_ctx": 1024})
    resolved = resolve(settings(tmp_path), model, {"temperature": 1.5, "stop": ["x", "y"], "num_ctx": 256, "seed": 7})
    assert resolved.options["temperature"] == 1.5
    assert resolved.options["stop"] == ["x", "y"]  # replaced, not appended
    assert resolved.options["seed"] == 7
    assert resolved.config.num_ctx == 256
    assert resolved.options["num_ctx"] == 256


def test_null_request_option_keeps_the_model_value(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    model = stored({"temperature": 0.2})
    resolved = resolve(settings(tmp_path), model, {"temperature": None})
    assert resolved.options["temperature"] == 0.2


def test_unknown_options_are_ignored_with_a_warning(
    tmp_path: Path, stored: Callable[..., StoredModel], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        resolved = resolve(settings(tmp_path), stored(), {"penalize_newline": True, "bogus": 1, "top_k": 3})
    assert "bogus" not in resolved.options
    assert "penalize_newline" not in resolved.options
    assert resolved.options["top_k"] == 3
    assert "invalid option provided: bogus" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"num_ctx": "1024"}, 'option "num_ctx" must be of type integer'),
        ({"num_predict": True}, 'option "num_predict" must be of type integer'),
        ({"use_mmap": 1}, 'option "use_mmap" must be of type boolean'),
        ({"stop": "x"}, 'option "stop" must be of type array'),
        ({"stop": ["x", 1]}, 'option "stop" must be of an array of strings'),
        ({"num_ctx": 10**30}, 'option "num_ctx" is out of range for an integer'),
        ({"temperature": 10**400}, 'option "temperature" is out of range for a float32'),
        ({"top_p": 1e39}, 'option "top_p" is out of range for a float32'),
        ({"num_thread": 1_000_000}, 'option "num_thread" must be at most 512'),
        ({"num_parallel": 100_000}, 'option "num_parallel" must be at most 256'),
    ],
)
def test_wrong_or_out_of_range_option_is_a_400(
    tmp_path: Path, stored: Callable[..., StoredModel], options: dict[str, Any], message: str
) -> None:
    # Ollama answers a wrong type with a 500; the request is what is wrong, so pollama answers 400.
    with pytest.raises(PollamaError) as caught:
        resolve(settings(tmp_path), stored(), options)
    assert status_of(caught.value) == 400
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tfs_z": 0.95}, 'option "tfs_z" is not supported: tail-free sampling was removed from llama.cpp'),
        ({"tfs_z": "0.9"}, 'option "tfs_z" is not supported'),
        ({"mirostat": 3}, 'option "mirostat" must be 0 (off), 1 or 2, not 3'),
        ({"mirostat": -1}, 'option "mirostat" must be 0 (off), 1 or 2, not -1'),
    ],
)
def test_an_option_the_engine_cannot_honour_is_a_400(
    tmp_path: Path, stored: Callable[..., StoredModel], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(PollamaError) as caught:
        resolve(settings(tmp_path), stored(), options)
    assert status_of(caught.value) == 400
    assert caught.value.message.startswith(message)


def test_a_stored_mirostat_the_engine_cannot_honour_is_a_400(
    tmp_path: Path, stored: Callable[..., StoredModel]
) -> None:
    # a params layer written elsewhere (the create path refuses it here)
    with pytest.raises(PollamaError) as caught:
        resolve(settings(tmp_path), stored({"mirostat": 7}), {})
    assert status_of(caught.value) == 400


def test_neutral_and_honoured_sampling_options_pass(
    tmp_path: Path, stored: Callable[..., StoredModel], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        resolved = resolve(
            settings(tmp_path), stored(), {"tfs_z": 1.0, "mirostat": 2, "mirostat_tau": 4.0, "mirostat_eta": 0.2}
        )
    assert "tfs_z" not in resolved.options and "tfs_z" not in caplog.text  # disabled is what the engine does
    assert (resolved.options["mirostat"], resolved.options["mirostat_tau"], resolved.options["mirostat_eta"]) == (
        2,
        4.0,
        0.2,
    )


def test_integer_options_accept_json_floats(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    resolved = resolve(settings(tmp_path), stored(), {"num_predict": 12.0, "num_ctx": 300.7})
    assert resolved.options["num_predict"] == 12
    assert resolved.config.num_ctx == 300


# --- num_ctx --------------------------------------------------------------------------------------


def test_num_ctx_clamped_to_the_trained_context(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    resolved = resolve(settings(tmp_path), stored(), {"num_ctx": 100_000})
    assert resolved.config.num_ctx == 2048
    assert resolved.options["num_ctx"] == 2048


@pytest.mark.parametrize("requested", [1, 3, -5])
def test_num_ctx_at_least_4(tmp_path: Path, stored: Callable[..., StoredModel], requested: int) -> None:
    assert resolve(settings(tmp_path), stored(), {"num_ctx": requested}).config.num_ctx == 4


def test_context_length_setting_when_no_num_ctx(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    env = settings(tmp_path, OLLAMA_CONTEXT_LENGTH="1000")
    assert resolve(env, stored(), None).config.num_ctx == 1000
    assert resolve(env, stored(), {"num_ctx": 300}).config.num_ctx == 300  # the request wins
    assert resolve(env, stored({"num_ctx": 600}), None).config.num_ctx == 600  # so does a PARAMETER
    big = settings(tmp_path, OLLAMA_CONTEXT_LENGTH="65536")
    assert resolve(big, stored(), None).config.num_ctx == 2048  # still clamped


# --- load-time options ----------------------------------------------------------------------------


def test_load_time_options_go_to_the_config(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    request = {
        "num_batch": 128,
        "num_gpu": 0,
        "main_gpu": 1,
        "use_mmap": False,
        "num_thread": 3,
        "draft_num_predict": 2,
        "num_ctx": 512,
    }
    resolved = resolve(settings(tmp_path), stored(), request)
    config = resolved.config
    assert (config.num_batch, config.num_gpu, config.main_gpu, config.use_mmap, config.num_thread) == (
        128,
        0,
        1,
        False,
        3,
    )
    for name in LOAD_TIME:
        assert name not in resolved.options
    assert resolved.options["num_ctx"] == 512  # the runner needs it for num_predict limits


def test_load_time_model_parameters_go_to_the_config(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    resolved = resolve(settings(tmp_path), stored({"num_thread": 5, "num_gpu": 0, "use_mmap": False}), None)
    assert (resolved.config.num_thread, resolved.config.num_gpu, resolved.config.use_mmap) == (5, 0, False)
    for name in LOAD_TIME:
        assert name not in resolved.options


def test_num_thread_zero_means_automatic(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    assert resolve(settings(tmp_path), stored(), {"num_thread": 0}).config.num_thread == physical_cores()


def test_settings_reach_the_config(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    env = settings(tmp_path, OLLAMA_NUM_PARALLEL="3", OLLAMA_FLASH_ATTENTION="1", OLLAMA_KV_CACHE_TYPE="Q8_0")
    config = resolve(env, stored(), None).config
    assert (config.num_parallel, config.flash_attention, config.kv_cache_type) == (3, True, "q8_0")


def test_unknown_kv_cache_type_falls_back_to_f16(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    config = resolve(settings(tmp_path, OLLAMA_KV_CACHE_TYPE="q3_weird"), stored(), None).config
    assert config.kv_cache_type == "f16"


def test_num_parallel_zero_means_one(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    assert resolve(settings(tmp_path, OLLAMA_NUM_PARALLEL="0"), stored(), None).config.num_parallel == 1


# --- embedding models -----------------------------------------------------------------------------


def test_embedding_model_gets_one_sequence_and_a_large_batch(
    tmp_path: Path, stored: Callable[..., StoredModel]
) -> None:
    model = stored(**EMBEDDING)
    assert capabilities_of(model) == ["embedding"]
    env = settings(tmp_path, OLLAMA_NUM_PARALLEL="4")
    config = resolve(env, model, None).config
    assert config.embedding is True
    assert config.num_parallel == 1
    assert config.num_ctx == 2048
    assert config.num_batch == 2048  # min(2048, num_ctx)
    assert resolve(env, model, {"num_ctx": 300}).config.num_batch == 300


def test_completion_model_is_not_an_embedding_model(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    config = resolve(settings(tmp_path, OLLAMA_NUM_PARALLEL="4"), stored(), {"num_ctx": 300}).config
    assert (config.embedding, config.num_parallel, config.num_batch) == (False, 4, 512)


@pytest.mark.parametrize("arch", ["mllama", "lfm2", "qwen3next"])
def test_single_sequence_architectures(tmp_path: Path, stored: Callable[..., StoredModel], arch: str) -> None:
    config = resolve(settings(tmp_path, OLLAMA_NUM_PARALLEL="4"), stored(arch=arch), None).config
    assert config.num_parallel == 1


def test_vision_model_context_at_least_2048(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    model = stored(kv={"llama.vision.block_count": 2})
    assert "vision" in capabilities_of(model)
    assert resolve(settings(tmp_path), model, {"num_ctx": 512}).config.num_ctx == 2048


def test_batch_never_exceeds_the_whole_context(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    config = resolve(settings(tmp_path), stored(), {"num_ctx": 256, "num_batch": 1 << 30}).config
    assert config.num_batch == 256 * config.num_parallel


def test_non_positive_thread_count_means_automatic(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    assert resolve(settings(tmp_path), stored(), {"num_thread": -5}).config.num_thread >= 1


def test_model_without_weights_is_an_error(tmp_path: Path, stored: Callable[..., StoredModel]) -> None:
    model = stored()
    model.model_path = None
    with pytest.raises(PollamaError) as caught:
        resolve(settings(tmp_path), model, None)
    assert status_of(caught.value) == 500


# --- keep_alive -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, 0),
        (0.0, 0),
        (30, 30 * SECOND),
        (1.5, 1_500_000_000),
        (0.25, 250_000_000),
        (-1, FOREVER),
        (-0.5, FOREVER),
        ("5m", 5 * MINUTE),
        ("1h30m", 90 * MINUTE),
        ("0", 0),
        ("0s", 0),
        ("-1m", FOREVER),
        ("-1s", FOREVER),
        ("1.5s", 1_500_000_000),
    ],
)
def test_parse_keep_alive(value: object, expected: int | None) -> None:
    assert parse_keep_alive(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10", 'time: missing unit in duration "10"'),
        ("-1", 'time: missing unit in duration "-1"'),
        ("5 minutes", 'time: unknown unit " minutes" in duration "5 minutes"'),
        ("", 'time: invalid duration ""'),
        (True, "Unsupported type: 'bool'"),
        (False, "Unsupported type: 'bool'"),
        ([], "Unsupported type: '[]interface {}'"),
        ([1, "5m"], "Unsupported type: '[]interface {}'"),
        ({}, "Unsupported type: 'map[string]interface {}'"),
        ({"seconds": 5}, "Unsupported type: 'map[string]interface {}'"),
    ],
)
def test_parse_keep_alive_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_keep_alive(value)
    assert str(caught.value) == message


@pytest.mark.parametrize("seconds", [1e20, 9.3e9, 1e300, 10**400, float("inf"), -1e300, float("-inf")])
def test_parse_keep_alive_huge_numbers_are_forever(seconds: float) -> None:
    assert parse_keep_alive(seconds) == FOREVER


def test_parse_keep_alive_refuses_nan() -> None:
    with pytest.raises(ValueError, match="invalid duration NaN"):
        parse_keep_alive(float("nan"))


# --- physical_cores -------------------------------------------------------------------------------


def cpuinfo(path: Path, cpus: list[tuple[int, int]]) -> Path:
    """A /proc/cpuinfo with one block per logical CPU: (physical id, core id)."""
    blocks = [
        f"processor\t: {index}\nvendor_id\t: GenuineIntel\nphysical id\t: {physical}\ncore id\t\t: {core}\n"
        for index, (physical, core) in enumerate(cpus)
    ]
    path.write_text("\n".join(blocks) + "\n")
    return path


@pytest.fixture
def affinity(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    def set_usable(count: int) -> None:
        monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(count)))

    return set_usable


def test_physical_cores_ignores_hyperthreads(tmp_path: Path, affinity: Callable[[int], None]) -> None:
    affinity(64)
    path = cpuinfo(tmp_path / "ht", [(0, 0), (0, 1), (0, 0), (0, 1)])
    assert physical_cores(path) == 2


def test_physical_cores_counts_every_socket(tmp_path: Path, affinity: Callable[[int], None]) -> None:
    affinity(64)
    path = cpuinfo(tmp_path / "sockets", [(0, 0), (0, 1), (1, 0), (1, 1)])
    assert physical_cores(path) == 4


def test_physical_cores_capped_by_affinity(tmp_path: Path, affinity: Callable[[int], None]) -> None:
    affinity(3)
    path = cpuinfo(tmp_path / "big", [(0, core) for core in range(16)])
    assert physical_cores(path) == 3


def test_physical_cores_without_core_ids(tmp_path: Path, affinity: Callable[[int], None]) -> None:
    affinity(6)
    path = tmp_path / "arm"
    path.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n")
    assert physical_cores(path) == 6


def test_physical_cores_without_cpuinfo(tmp_path: Path) -> None:
    assert physical_cores(tmp_path / "missing") >= 1
