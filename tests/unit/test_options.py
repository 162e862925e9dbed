"""Options: Ollama's ``api.FormatParams`` (Modelfile PARAMETER text), ``Options.FromMap`` (API JSON),
and Go's ``%v`` / ``%#v`` formatting, ported from ``api/types.go``, ``api/types_test.go`` and Go's
``strconv`` / ``fmt`` tests."""

from __future__ import annotations

import pytest

from pollama.gocompat.gostrconv import quote as go_quote
from pollama.model.options import (
    DEPRECATED_PARAMETERS,
    OPTIONS,
    OptionError,
    OptionKind,
    coerce_option,
    coerce_options,
    format_go_syntax,
    format_go_value,
    merge_parameter,
    parse_parameter,
)

# --- the option table (api.Options / api.Runner, spec A.12) ---------------------------------------

EXPECTED_KINDS = {
    "num_keep": OptionKind.INT,
    "seed": OptionKind.INT,
    "num_predict": OptionKind.INT,
    "top_k": OptionKind.INT,
    "top_p": OptionKind.FLOAT,
    "min_p": OptionKind.FLOAT,
    "typical_p": OptionKind.FLOAT,
    "repeat_last_n": OptionKind.INT,
    "temperature": OptionKind.FLOAT,
    "repeat_penalty": OptionKind.FLOAT,
    "presence_penalty": OptionKind.FLOAT,
    "frequency_penalty": OptionKind.FLOAT,
    "stop": OptionKind.STRINGS,
    "num_ctx": OptionKind.INT,
    "num_batch": OptionKind.INT,
    "num_gpu": OptionKind.INT,
    "main_gpu": OptionKind.INT,
    "use_mmap": OptionKind.BOOL,
    "num_thread": OptionKind.INT,
    "draft_num_predict": OptionKind.INT,
}
LOAD_TIME = {"num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "draft_num_predict"}
# Ours: a model's default for the request's "think" (ollama#10961), per-model parallelism (ollama#8842),
# and the Mirostat samplers, which Ollama's Modelfile docs list but its engine ignores.
OURS = {
    "think": OptionKind.THINK,
    "num_parallel": OptionKind.INT,
    "mirostat": OptionKind.INT,
    "mirostat_tau": OptionKind.FLOAT,
    "mirostat_eta": OptionKind.FLOAT,
}


def test_option_table_matches_ollama() -> None:
    assert {name: spec.kind for name, spec in OPTIONS.items()} == {**EXPECTED_KINDS, **OURS}
    assert {name for name, spec in OPTIONS.items() if spec.load_time} == LOAD_TIME | {"num_parallel"}


def test_deprecated_parameters() -> None:
    assert {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
    } == DEPRECATED_PARAMETERS


# --- parse_parameter (FormatParams) ---------------------------------------------------------------

INTS = [
    ("1", 1),
    ("0", 0),
    ("-1", -1),
    ("+5", 5),  # strconv.ParseInt accepts a sign
    ("-0", 0),
    ("007", 7),
    ("4096", 4096),
    ("9223372036854775807", 9223372036854775807),
    ("-9223372036854775808", -9223372036854775808),
]


@pytest.mark.parametrize(("text", "expected"), INTS)
def test_parse_int(text: str, expected: int) -> None:
    value = parse_parameter("num_ctx", text)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1.0",
        "1e3",
        "0x10",
        "0o10",
        "1_000",
        "9223372036854775808",
        "-9223372036854775809",
        " 12",  # ParseInt does not trim
        "12 ",
        "١٢",  # Arabic-Indic digits are not ASCII digits
        "１２",  # full-width digits
        "true",
    ],
)
def test_parse_int_errors(text: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_parameter("top_k", text)
    assert str(info.value) == f"invalid int value [{text}]"


FLOATS = [
    ("0.5", 0.5),
    ("1", 1.0),
    ("1.0", 1.0),
    ("-0.25", -0.25),
    (".5", 0.5),
    ("5.", 5.0),
    ("+1.5", 1.5),
    ("1e-3", 0.001),
    ("1E3", 1000.0),
    ("625e-3", 0.625),
    # float32 precision: the value is what float32 keeps, printed shortest (as Go marshals a float32)
    ("0.1", 0.1),
    ("0.7", 0.7),
    ("0.123456789", 0.12345679),
    ("16777217", 16777216.0),
    ("1e-45", 1e-45),  # smallest float32 denormal
    # atof32tests: largest float32, and the borderline that still rounds to it
    ("340282346638528859811704183484516925440", 3.4028235e38),
    ("3.402823567e38", 3.4028235e38),
    # Go's ParseFloat accepts hexadecimal floats and underscores between digits
    ("0x1p-2", 0.25),
    ("0x1.8p1", 3.0),
    ("1_23.50_0_0e+1_2", 1.235e14),
]


@pytest.mark.parametrize(("text", "expected"), FLOATS)
def test_parse_float(text: str, expected: float) -> None:
    value = parse_parameter("temperature", text)
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1.0.0",
        "1e",
        "0x1",  # a hex float needs its p exponent
        "1p2",
        " 1.0",
        "1.0 ",
        "1__0.5",
        "_1.5",
        "1.5_",
        "3.4028236e38",  # atof32tests: next float32 - too large
        "3.4028235678e38",  # borderline - too large
        "1e39",
        "-1e39",
        "١.٥",
        # pollama refuses non-finite values (they cannot be stored as JSON), documented in options.py
        "inf",
        "-Inf",
        "NaN",
        "Infinity",
    ],
)
def test_parse_float_errors(text: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_parameter("top_p", text)
    assert str(info.value) == f"invalid float value [{text}]"


BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


@pytest.mark.parametrize(("text", "expected"), list(BOOLS.items()))
def test_parse_bool(text: str, expected: bool) -> None:
    assert parse_parameter("use_mmap", text) is expected


@pytest.mark.parametrize("text", ["foo", "", "yes", "no", "tRUE", "on", "2", " true"])
def test_parse_bool_errors(text: str) -> None:
    # TestUseMmapFormatParams: errors.New("invalid bool value [foo]")
    with pytest.raises(OptionError) as info:
        parse_parameter("use_mmap", text)
    assert str(info.value) == f"invalid bool value [{text}]"


def test_main_gpu_format_params() -> None:
    # TestMainGPUFormatParams
    assert parse_parameter("main_gpu", "0") == 0


@pytest.mark.parametrize("text", ["### User:", "<|im_end|>", " spaced ", "", "a\nb"])
def test_parse_stop(text: str) -> None:
    assert parse_parameter("stop", text) == [text]


@pytest.mark.parametrize(
    "name", ["numa", "num_gqa", "penalize_newline", "tfs_z", "Temperature", "TOP_K", "", "stop_words"]
)
def test_parse_unknown_parameter(name: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_parameter(name, "1")
    assert str(info.value) == f"unknown parameter '{name}'"


def test_merge_parameter() -> None:
    # CreateRequest: list values append, everything else is replaced by the later line
    params: dict[str, object] = {}
    merge_parameter(params, "stop", ["a"])
    merge_parameter(params, "stop", ["b"])
    merge_parameter(params, "temperature", 0.5)
    merge_parameter(params, "temperature", 0.7)
    assert params == {"stop": ["a", "b"], "temperature": 0.7}


# --- coerce_option (Options.FromMap) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        # JSON numbers arrive as float64; integer options truncate toward zero
        ("num_ctx", 4096, 4096),
        ("num_ctx", 4096.0, 4096),
        ("num_predict", 1.9, 1),
        ("num_predict", -1.9, -1),
        ("seed", -1, -1),
        ("main_gpu", 0, 0),
        ("main_gpu", 1, 1),
        # float32 options accept any JSON number
        ("temperature", 0.5, 0.5),
        ("temperature", 1, 1),
        ("top_p", 0, 0),
        # bools
        ("use_mmap", True, True),
        ("use_mmap", False, False),
        # string arrays
        ("stop", [], []),
        ("stop", ["a", "b"], ["a", "b"]),
    ],
)
def test_coerce_option(name: str, value: object, expected: object) -> None:
    result = coerce_option(name, value)
    assert result == expected
    if OPTIONS[name].kind is OptionKind.INT:
        assert type(result) is int


@pytest.mark.parametrize("name", ["num_ctx", "temperature", "use_mmap", "stop", "main_gpu"])
def test_coerce_option_null_is_ignored(name: str) -> None:
    assert coerce_option(name, None) is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("num_ctx", "4096", 'option "num_ctx" must be of type integer'),
        ("num_ctx", True, 'option "num_ctx" must be of type integer'),
        ("num_ctx", [1], 'option "num_ctx" must be of type integer'),
        ("num_ctx", {"a": 1}, 'option "num_ctx" must be of type integer'),
        ("main_gpu", "0", 'option "main_gpu" must be of type integer'),
        ("main_gpu", False, 'option "main_gpu" must be of type integer'),
        ("temperature", "0.5", 'option "temperature" must be of type float32'),
        ("temperature", True, 'option "temperature" must be of type float32'),
        ("temperature", [0.5], 'option "temperature" must be of type float32'),
        ("use_mmap", 1, 'option "use_mmap" must be of type boolean'),
        ("use_mmap", "true", 'option "use_mmap" must be of type boolean'),
        ("use_mmap", 0.0, 'option "use_mmap" must be of type boolean'),
        # a non-array is "must be of type array"; an array with a non-string is "an array of strings"
        ("stop", "###", 'option "stop" must be of type array'),
        ("stop", 1, 'option "stop" must be of type array'),
        ("stop", {"a": "b"}, 'option "stop" must be of type array'),
        ("stop", ["a", 1], 'option "stop" must be of an array of strings'),
        ("stop", [None], 'option "stop" must be of an array of strings'),
        ("stop", [["a"]], 'option "stop" must be of an array of strings'),
    ],
)
def test_coerce_option_type_errors(name: str, value: object, message: str) -> None:
    with pytest.raises(OptionError) as info:
        coerce_option(name, value)
    assert str(info.value) == message


def test_coerce_option_unknown_name() -> None:
    with pytest.raises(KeyError):
        coerce_option("numa", True)


def test_coerce_options_skips_unknown_names() -> None:
    # FromMap: unknown keys are ignored with a warning
    typed, unknown = coerce_options({"temperature": 0.5, "numa": True, "num_ctx": 2048.0, "foo": 1})
    assert typed == {"temperature": 0.5, "num_ctx": 2048}
    assert unknown == ["numa", "foo"]


def test_coerce_options_propagates_type_errors() -> None:
    with pytest.raises(OptionError, match='^option "top_k" must be of type integer$'):
        coerce_options({"top_k": "40"})


# --- format_go_value (%v) and format_go_syntax (%#v) ----------------------------------------------

GO_V = [
    (True, "true"),
    (False, "false"),
    (4096, "4096"),
    (-1, "-1"),
    (0, "0"),
    ("<|im_end|>", "<|im_end|>"),
    ("a b", "a b"),
    # float64 %v is %g with the shortest digits; exponent form below 1e-4 and from 1e+06 (exponent >= 6)
    (0.7, "0.7"),
    (1.0, "1"),
    (0.0, "0"),
    (-0.0, "-0"),
    (-2.5, "-2.5"),
    (100000.0, "100000"),
    (123456.7, "123456.7"),
    (999999.0, "999999"),
    (1000000.0, "1e+06"),
    (1234567.0, "1.234567e+06"),
    (1e21, "1e+21"),
    (1e100, "1e+100"),
    (1.5e300, "1.5e+300"),
    (0.0001, "0.0001"),
    (0.00012, "0.00012"),
    (0.00001, "1e-05"),
    (1.5e-7, "1.5e-07"),
    (5e-324, "5e-324"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1.2345678, "1.2345678"),
    (-1234567.0, "-1.234567e+06"),
]


@pytest.mark.parametrize(("value", "text"), GO_V)
def test_format_go_value(value: object, text: str) -> None:
    assert format_go_value(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # fmt_test.go: whole number floats are printed without decimals (Issue 27634)
        (1.0, "1"),
        (1000000.0, "1e+06"),
        (1.2345678, "1.2345678"),
        (0.7, "0.7"),
        (4096, "4096"),
        (True, "true"),
        ("foo", '"foo"'),
        ("<|im_end|>", '"<|im_end|>"'),
        ("### User:", '"### User:"'),
        ("", '""'),
        ('say "hi"\n', '"say \\"hi\\"\\n"'),
    ],
)
def test_format_go_syntax(value: object, text: str) -> None:
    assert format_go_syntax(value) == text


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("abc", '"abc"'),
        ("", '""'),
        ('"', '"\\""'),
        ("\\", '"\\\\"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00", '"\\x00"'),
        ("\x1b[0m", '"\\x1b[0m"'),
        ("\x7f", '"\\x7f"'),
        ("'", '"\'"'),
        ("é日本語👋", '"é日本語👋"'),  # printable runes are kept
        ("\u00a0", '"\\u00a0"'),  # no-break space is not printable
        ("\u200b", '"\\u200b"'),  # zero width space (format character)
        ("\u2028", '"\\u2028"'),
        ("\ue000", '"\\ue000"'),  # private use
        ("\U000f0000", '"\\U000f0000"'),  # supplementary private use
        ("\ufeff", '"\\ufeff"'),
        ("\ufffd", '"\ufffd"'),  # the replacement character itself is printable
        ("<|im_start|>user", '"<|im_start|>user"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    # strconv.Quote
    assert go_quote(text) == quoted


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("high", "high"), ("max", "max")])
def test_think_parameter(text: str, value: object) -> None:
    assert parse_parameter("think", text) == value
    assert coerce_option("think", value) == value


def test_think_parameter_rejects_other_values() -> None:
    with pytest.raises(OptionError, match=r"invalid think value \[loud\]"):
        parse_parameter("think", "loud")
    with pytest.raises(OptionError, match='option "think" must be'):
        coerce_option("think", "loud")
