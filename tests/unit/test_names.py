"""Model names, ported from Ollama's ``types/model/name_test.go`` and ``internal/modelref``."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pollama.store.names import (
    DEFAULT_HOST,
    DEFAULT_NAMESPACE,
    DEFAULT_TAG,
    MISSING,
    ConflictingModelSource,
    InvalidModelName,
    ModelName,
    parse_model_ref,
)

PART80 = "8" * 80
PART350 = "3" * 350


# --- TestParseNameParts ---------------------------------------------------------------------------

PARSE_PARTS = [
    (
        "registry.ollama.ai/library/dolphin-mistral:7b-v2.6-dpo-laser-q6_K",
        ModelName("registry.ollama.ai", "library", "dolphin-mistral", "7b-v2.6-dpo-laser-q6_K"),
        ("registry.ollama.ai", "library", "dolphin-mistral", "7b-v2.6-dpo-laser-q6_K"),
    ),
    (
        "scheme://host:port/namespace/model:tag",
        ModelName("host:port", "namespace", "model", "tag", scheme="scheme"),
        ("host:port", "namespace", "model", "tag"),
    ),
    ("host/namespace/model:tag", ModelName("host", "namespace", "model", "tag"), ("host", "namespace", "model", "tag")),
    (
        "host:port/namespace/model:tag",
        ModelName("host:port", "namespace", "model", "tag"),
        ("host:port", "namespace", "model", "tag"),
    ),
    ("host/namespace/model", ModelName("host", "namespace", "model"), ("host", "namespace", "model", "latest")),
    (
        "host:port/namespace/model",
        ModelName("host:port", "namespace", "model"),
        ("host:port", "namespace", "model", "latest"),
    ),
    (
        "namespace/model",
        ModelName(namespace="namespace", model="model"),
        (DEFAULT_HOST, "namespace", "model", "latest"),
    ),
    ("model", ModelName(model="model"), (DEFAULT_HOST, "library", "model", "latest")),
    ("h/nn/mm:t", ModelName("h", "nn", "mm", "t"), ("h", "nn", "mm", "t")),
    (
        f"{PART80}/{PART80}/{PART80}:{PART80}",
        ModelName(PART80, PART80, PART80, PART80),
        (PART80, PART80, PART80, PART80),
    ),
    (
        f"{PART350}/{PART80}/{PART80}:{PART80}",
        ModelName(PART350, PART80, PART80, PART80),
        (PART350, PART80, PART80, PART80),
    ),
]


@pytest.mark.parametrize(("text", "bare", "filepath_parts"), PARSE_PARTS, ids=[c[0][:40] for c in PARSE_PARTS])
def test_parse_name_parts(text: str, bare: ModelName, filepath_parts: tuple[str, ...]) -> None:
    assert ModelName.parse_bare(text) == bare
    parsed = ModelName.parse(text)
    assert parsed.parts == filepath_parts
    assert parsed.scheme == (bare.scheme or "https")


def test_parse_fills_defaults() -> None:
    # TestNameparseNameDefault
    assert str(ModelName.parse("xx")) == "registry.ollama.ai/library/xx:latest"
    name = ModelName.parse("xx")
    assert (name.host, name.namespace, name.tag, name.scheme) == (DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG, "https")


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        # A separator with an empty side yields the placeholder (Ollama's cutPromised).
        ("mm:", ModelName(model="mm", tag=MISSING)),
        (":t", ModelName(model=MISSING, tag="t")),
        ("/mm", ModelName(namespace=MISSING, model="mm")),
        ("nn/", ModelName(namespace="nn", model=MISSING)),
        ("//mm", ModelName(host=MISSING, namespace=MISSING, model="mm")),
        ("hh//", ModelName(host="hh", namespace=MISSING, model=MISSING)),
        # The last colon only separates a tag when it follows the last slash.
        ("host:5000/model", ModelName(namespace="host:5000", model="model")),
        ("a/b/c/d:e", ModelName(host="a/b", namespace="c", model="d", tag="e")),
        # The scheme is cut at the first "://".
        ("http://h/n/m:t", ModelName("h", "n", "m", "t", scheme="http")),
    ],
)
def test_parse_bare_edge_cases(text: str, bare: ModelName) -> None:
    assert ModelName.parse_bare(text) == bare


# --- TestNameIsValid ------------------------------------------------------------------------------

VALIDITY = {
    "": False,
    "_why/_the/_lucky:_stiff": True,
    # minimal
    "h/n/m:t": True,
    "host/namespace/model:tag": True,
    "host/namespace/model": False,
    "namespace/model": False,
    "model": False,
    # long (but valid)
    f"{PART80}/{PART80}/{PART80}:{PART80}": True,
    f"{PART350}/{PART80}/{PART80}:{PART80}": True,
    "h/nn/mm:t": True,
    # unqualified
    "m": False,
    "n/m:": False,
    "h/n/m": False,
    "@t": False,
    "m@d": False,
    # invalids
    "^": False,
    "mm:": False,
    "/nn/mm": False,
    "//": False,
    "//mm": False,
    "hh//": False,
    "//mm:@": False,
    "00@": False,
    "@": False,
    # not starting with alphanum
    "-hh/nn/mm:tt": False,
    "hh/-nn/mm:tt": False,
    "hh/nn/-mm:tt": False,
    "hh/nn/mm:-tt": False,
    # hosts
    "host:https/namespace/model:tag": True,
    # colon in non-host part before tag
    "host/name:space/model:tag": False,
    # --- beyond Ollama's table: lengths, characters, dots ---
    f"{PART350}3/{PART80}/{PART80}:{PART80}": False,  # host of 351
    f"h/{PART80}8/m:t": False,  # namespace of 81
    f"h/n/{PART80}8:t": False,  # model of 81
    f"h/n/m:{PART80}8": False,  # tag of 81
    "h/n.s/m:t": False,  # no dot in a namespace
    "h.example.com:5000/n_s-x/m.v1-x_y:t.1-x_y": True,
    "h/n/m:t:u": False,  # colon in the model
    "h/n/m:t/": False,
    "h/n/.:t": False,
    "h/n/..:t": False,
    "h/n/m:..": False,
    "h/../m:t": False,
    "../n/m:t": False,
    "./n/m:t": False,
    "h/n/.hidden:t": False,
    "h/n/m..:t..": True,  # dots are fine after the first character
    "h/n/m m:t": False,
    "h/n/m\\x:t": False,
    "h/n/m:t\n": False,
    "h/n/ünï:t": False,  # ASCII only
    "h/n/m:t@sha256-abc": False,
    "h/n/m\x00:t": False,
}


@pytest.mark.parametrize(("text", "valid"), list(VALIDITY.items()), ids=[repr(k)[:40] for k in VALIDITY])
def test_name_is_valid(text: str, valid: bool) -> None:
    name = ModelName.parse_bare(text)
    assert name.is_valid() is valid
    if valid:
        # Round trip through str, as Ollama's TestNameIsValid checks.
        assert str(name) == text


# --- TestNameIsValidPart / TestIsValidNamespace ---------------------------------------------------


def _with(**part: str) -> ModelName:
    return ModelName(**{"host": "h", "namespace": "n", "model": "m", "tag": "t", **part})


@pytest.mark.parametrize(
    ("kind", "value", "valid"),
    [
        ("host", "", False),
        ("host", "a", True),
        ("host", "a.", True),
        ("host", "a.b", True),
        ("host", "a:123", True),
        ("host", "a:123/aa/bb", False),
        ("host", "_a", True),
        ("host", ".a", False),
        ("host", ":a", False),
        ("namespace", "bb", True),
        ("namespace", "a.", False),
        ("namespace", "a:b", False),
        ("model", "-h", False),
        ("model", "a:b", False),
        ("model", "a.b-c_d", True),
        ("tag", "q4_K_M", True),
        ("tag", "v1.0", True),
        ("tag", "a/b", False),
    ],
)
def test_name_is_valid_part(kind: str, value: str, valid: bool) -> None:
    assert _with(**{kind: value}).is_valid() is valid


@pytest.mark.parametrize(
    ("namespace", "valid"),
    [
        ("", False),
        ("a", True),
        ("a:b", False),
        ("a/b", False),
        ("a:b/c", False),
        ("a/b:c", False),
        ("a/b:c/d", False),
        ("a/b:c/d@e", False),
        ("a/b:c/d@sha256-100", False),
        ("himynameisjoe", True),
        ("himynameisreallyreallyreallyreallylongbutitshouldstillbevalid", True),
    ],
)
def test_is_valid_namespace(namespace: str, valid: bool) -> None:
    assert _with(namespace=namespace).is_valid() is valid


# --- TestParseNameFromFilepath --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("host", "namespace", "model", "tag"), ModelName("host", "namespace", "model", "tag", scheme="https")),
        (
            ("host:port", "namespace", "model", "tag"),
            ModelName("host:port", "namespace", "model", "tag", scheme="https"),
        ),
        (("..", "..", "model", "tag"), None),
        (("", "namespace", "model", "tag"), None),
        (("host", "namespace", ".", "tag"), None),
        ((".", ".", ".", "."), None),
        (("host", "namespace", "model", ".."), None),
        (("host", "name.space", "model", "tag"), None),
    ],
)
def test_from_parts(parts: tuple[str, str, str, str], expected: ModelName | None) -> None:
    assert ModelName.from_parts(parts) == expected


# --- TestDisplayShortest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shortest"),
    [
        ("registry.ollama.ai/library/model:latest", "model:latest"),
        ("registry.ollama.ai/library/model:tag", "model:tag"),
        ("registry.ollama.ai/namespace/model:tag", "namespace/model:tag"),
        ("host/namespace/model:tag", "host/namespace/model:tag"),
        ("host/library/model:tag", "host/library/model:tag"),
        # strings.EqualFold against the defaults
        ("REGISTRY.OLLAMA.AI/Library/Model:Tag", "Model:Tag"),
        ("Registry.Ollama.AI/NS/m:t", "NS/m:t"),
    ],
)
def test_display_shortest(text: str, shortest: str) -> None:
    assert ModelName.parse_bare(text).display_shortest() == shortest


@pytest.mark.parametrize(
    ("text", "shortest"),
    [("llama3.2", "llama3.2:latest"), ("me/mine", "me/mine:latest"), ("example.com/a/b:c", "example.com/a/b:c")],
)
def test_display_shortest_after_defaults(text: str, shortest: str) -> None:
    assert ModelName.parse(text).display_shortest() == shortest


# --- case-insensitive identity (Name.EqualFold) ---------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Llama3:Latest", "llama3:latest", True),
        ("llama3", "registry.ollama.ai/library/llama3:latest", True),
        ("REGISTRY.OLLAMA.AI/LIBRARY/LLAMA3:LATEST", "llama3", True),
        ("MyName/Model:Q4_K_M", "myname/model:q4_k_m", True),
        ("llama3:8b", "llama3:70b", False),
        ("a/llama3", "b/llama3", False),
        ("h1/n/m:t", "h2/n/m:t", False),
    ],
)
def test_names_compare_case_insensitively(a: str, b: str, same: bool) -> None:
    first, second = ModelName.parse(a), ModelName.parse(b)
    assert first.same_as(second) is same
    assert (first.key == second.key) is same


def test_key_is_lowercase_parts_and_ignores_scheme() -> None:
    name = ModelName.parse("http://Host/NS/Model:Tag")
    assert name.key == ("host", "ns", "model", "tag")
    assert name.same_as(ModelName.parse("host/ns/model:tag"))


def test_parse_valid_raises_for_invalid() -> None:
    with pytest.raises(InvalidModelName, match="invalid model name") as info:
        ModelName.parse_valid("bad name")
    assert info.value.text == "bad name"
    assert ModelName.parse_valid("llama3.2").parts == (DEFAULT_HOST, "library", "llama3.2", "latest")


# --- parse_model_ref (server/model_resolver.go + internal/modelref) -------------------------------


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("llama3.2", (DEFAULT_HOST, "library", "llama3.2", "latest")),
        ("  llama3.2\t", (DEFAULT_HOST, "library", "llama3.2", "latest")),
        ("qwen3:8b:local", (DEFAULT_HOST, "library", "qwen3", "8b")),
        ("gpt-oss:20b:local", (DEFAULT_HOST, "library", "gpt-oss", "20b")),
        ("qwen3:local", (DEFAULT_HOST, "library", "qwen3", "latest")),
        ("me/model:local", (DEFAULT_HOST, "me", "model", "latest")),
        ("example.com:5000/me/model:v1:local", ("example.com:5000", "me", "model", "v1")),
        # parseSourceSuffix looks only after the last ":" of the base, so a "-cloud" model name is fine
        ("my-model-cloud:local", (DEFAULT_HOST, "library", "my-model-cloud", "latest")),
        ("my-cloud-model:local", (DEFAULT_HOST, "library", "my-cloud-model", "latest")),
        # the source suffix is matched case-insensitively (strings.ToLower in parseSourceSuffix)
        ("qwen3:8b:LOCAL", (DEFAULT_HOST, "library", "qwen3", "8b")),
        ("qwen3:8b:Local", (DEFAULT_HOST, "library", "qwen3", "8b")),
    ],
)
def test_parse_model_ref(ref: str, parts: tuple[str, str, str, str]) -> None:
    assert parse_model_ref(ref).parts == parts


@pytest.mark.parametrize("ref", ["", "   ", "\t\n"])
def test_parse_model_ref_requires_a_model(ref: str) -> None:
    with pytest.raises(ValueError, match="^model is required$"):
        parse_model_ref(ref)


@pytest.mark.parametrize(
    "ref", ["foo:cloud:local", "gpt-oss:20b-cloud:local", "qwen3:8b:cloud:local", "foo:local:cloud"]
)
def test_parse_model_ref_conflicting_sources(ref: str) -> None:
    # modelref.ParseRef: fmt.Errorf("%w: %q", ErrConflictingSourceSuffix, raw)
    with pytest.raises(ConflictingModelSource) as raised:
        parse_model_ref(ref)
    assert str(raised.value) == f'use either :local or :cloud, not both: "{ref}"'


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("foo:cloud", ("registry.ollama.ai", "library", "foo", "cloud")),
        ("gpt-oss:20b:cloud", ("registry.ollama.ai", "library", "gpt-oss", "20b-cloud")),
        ("gpt-oss:20b-cloud", ("registry.ollama.ai", "library", "gpt-oss", "20b-cloud")),
    ],
)
def test_cloud_references_keep_ollamas_legacy_local_names(ref: str, parts: tuple[str, ...]) -> None:
    # modelref.NormalizePullName: "x:cloud" for an untagged base, "x:tag-cloud" for a tagged one
    assert parse_model_ref(ref).parts == parts


@pytest.mark.parametrize("ref", [":local", "bad name", "bad name:local", "a/b/c/d", "m:-t", "h/n.s/m:t"])
def test_parse_model_ref_invalid(ref: str) -> None:
    with pytest.raises(InvalidModelName):
        parse_model_ref(ref)


# --- a valid name can never escape the store ------------------------------------------------------

ESCAPING_PARTS = {"", ".", ".."}


def _assert_safe(name: ModelName) -> None:
    for part in name.parts:
        assert part not in ESCAPING_PARTS
        assert "/" not in part
        assert "\\" not in part
        assert "\x00" not in part
        assert not part.startswith(".")


@pytest.mark.parametrize("text", [k for k, v in VALIDITY.items() if v])
def test_valid_table_names_are_safe_paths(text: str) -> None:
    _assert_safe(ModelName.parse_bare(text))


NAME_CHARS = st.sampled_from(list("ab_-.:/@\\ \x00Zé9") + ["://", "..", "./", "../"])
NAME_TEXT = st.lists(NAME_CHARS, max_size=24).map("".join)


@settings(max_examples=500, deadline=None, database=None)
@given(NAME_TEXT)
@example("../../etc/passwd")
@example("h/../m:..")
@example("h/./.:.")
def test_valid_names_cannot_escape_the_store(text: str) -> None:
    for name in (ModelName.parse_bare(text), ModelName.parse(text)):
        if name.is_valid():
            _assert_safe(name)
            assert ModelName.from_parts(name.parts) is not None


@settings(max_examples=500, deadline=None, database=None)
@given(NAME_TEXT)
def test_fuzz_name_round_trip(text: str) -> None:
    # FuzzName: a valid bare name prints back as its input, and no part is ".." or too long.
    name = ModelName.parse_bare(text)
    if name.is_valid():
        assert str(name) == text
        assert all(len(part) <= 350 and part != ".." for part in name.parts)


@settings(max_examples=300, deadline=None, database=None)
@given(st.tuples(*[st.sampled_from(["", ".", "..", "a", "a/b", "_", "a.b", "a:1", "-a", "A"])] * 4))
def test_from_parts_rejects_escaping_parts(parts: tuple[str, str, str, str]) -> None:
    name = ModelName.from_parts(parts)
    if name is not None:
        _assert_safe(name)
