"""Modelfiles, ported from Ollama's ``parser/parser_test.go`` (spec section D)."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pollama.model.modelfile import Command, Modelfile, ModelfileError, format_value, parse_modelfile

ERR_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
ERR_ROLE = 'message role must be one of "system", "user", or "assistant"'

LLAMA3_TEMPLATE = (
    "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)


def commands(text: str | bytes) -> list[Command]:
    return parse_modelfile(text).commands


def C(name: str, args: str) -> Command:  # noqa: N802 - reads like Ollama's Command{Name, Args}
    return Command(name, args)


def parse_error(text: str | bytes) -> str:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    return str(info.value)


# --- TestParseFileFile / TestParseFileTrimSpace ---------------------------------------------------


def test_parse_file() -> None:
    text = (
        "\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nPARAMETER param2 value2\n"
        'TEMPLATE """' + LLAMA3_TEMPLATE + '"""    \n'
    )
    assert commands(text) == [
        C("model", "model1"),
        C("adapter", "adapter1"),
        C("license", "MIT"),
        C("param1", "value1"),
        C("param2", "value2"),
        C("template", LLAMA3_TEMPLATE),
    ]


def test_parse_file_draft() -> None:
    modelfile = parse_modelfile("\nFROM base\nDRAFT ./assistant\n")
    assert modelfile.commands == [C("model", "base"), C("draft", "./assistant")]
    assert "DRAFT ./assistant" in str(modelfile)


def test_parse_file_trim_space() -> None:
    text = (
        '\nFROM "     model 1"\nADAPTER      adapter3\nLICENSE "MIT       "\nPARAMETER param1        value1\n'
        'PARAMETER param2    value2\nTEMPLATE """   ' + LLAMA3_TEMPLATE + '   """    \n'
    )
    assert commands(text) == [
        C("model", "     model 1"),
        C("adapter", "adapter3"),
        C("license", "MIT       "),
        C("param1", "value1"),
        C("param2", "value2"),
        C("template", "   " + LLAMA3_TEMPLATE + "   "),
    ]


# --- TestParseFileFrom ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('FROM "FOO  BAR  "', [C("model", "FOO  BAR  ")]),
        ('FROM "FOO BAR"\nPARAMETER param1 value1', [C("model", "FOO BAR"), C("param1", "value1")]),
        ("FROM     FOOO BAR    ", [C("model", "FOOO BAR")]),
        ("FROM /what/is/the path ", [C("model", "/what/is/the path")]),
        ("FROM foo", [C("model", "foo")]),
        ("FROM /path/to/model", [C("model", "/path/to/model")]),
        ("FROM /path/to/model/fp16.bin", [C("model", "/path/to/model/fp16.bin")]),
        ("FROM llama3:latest", [C("model", "llama3:latest")]),
        ("FROM llama3:7b-instruct-q4_K_M", [C("model", "llama3:7b-instruct-q4_K_M")]),
        ("PARAMETER param1 value1\nFROM foo", [C("param1", "value1"), C("model", "foo")]),
        (
            "PARAMETER what the \nFROM lemons make lemonade ",
            [C("what", "the"), C("model", "lemons make lemonade")],
        ),
    ],
)
def test_parse_file_from(text: str, expected: list[Command]) -> None:
    assert commands(text) == expected


@pytest.mark.parametrize("text", ["", "PARAMETER param1 value1", "# just a comment\n", "\n\n   \n", "SYSTEM hi"])
def test_missing_from(text: str) -> None:
    assert parse_error(text) == "no FROM line"


def test_parse_file_parameters_missing_value() -> None:
    assert parse_error("\nFROM foo\nPARAMETER param1\n") == "unexpected EOF: param1"


def test_parse_file_bad_command() -> None:
    assert parse_error("\nFROM foo\nBADCOMMAND param1 value1\n") == f"(line 3): {ERR_COMMAND}"


def test_parse_file_renderer_and_parser() -> None:
    assert commands("\nFROM foo\nRENDERER renderer1\n") == [C("model", "foo"), C("renderer", "renderer1")]
    assert commands("\nFROM foo\nPARSER parser1\n") == [C("model", "foo"), C("parser", "parser1")]


# --- TestParseFileMessages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.\n",
            [C("model", "foo"), C("message", "system: You are a file parser. Always parse things.")],
        ),
        (
            "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.",
            [C("model", "foo"), C("message", "system: You are a file parser. Always parse things.")],
        ),
        (
            "\nFROM foo\nMESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\n"
            "MESSAGE assistant Hello, I want to parse all the things!\n",
            [
                C("model", "foo"),
                C("message", "system: You are a file parser. Always parse things."),
                C("message", "user: Hey there!"),
                C("message", "assistant: Hello, I want to parse all the things!"),
            ],
        ),
        (
            '\nFROM foo\nMESSAGE system """\nYou are a multiline file parser. Always parse things.\n"""\n\t\t\t',
            [C("model", "foo"), C("message", "system: \nYou are a multiline file parser. Always parse things.\n")],
        ),
    ],
)
def test_parse_file_messages(text: str, expected: list[Command]) -> None:
    assert commands(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n", f"(line 3): {ERR_ROLE}"),
        ("\nFROM foo\nMESSAGE system\n", "unexpected EOF: system"),
        ("\nFROM foo\nMESSAGE system", "unexpected EOF"),
        # roles are case sensitive, and "tool" is not allowed
        ("FROM foo\nMESSAGE User hi\n", f"(line 2): {ERR_ROLE}"),
        ("FROM foo\nMESSAGE tool result\n", f"(line 2): {ERR_ROLE}"),
        ("FROM foo\nMESSAGE user1 hi\n", "unexpected EOF: user"),
    ],
)
def test_parse_file_message_errors(text: str, message: str) -> None:
    assert parse_error(text) == message


# --- TestParseFileQuoted --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('\nFROM foo\nSYSTEM """\nThis is a\nmultiline system.\n"""\n\t\t\t', "\nThis is a\nmultiline system.\n"),
        ('\nFROM foo\nSYSTEM """\nThis is a\nmultiline system."""\n\t\t\t', "\nThis is a\nmultiline system."),
        ('\nFROM foo\nSYSTEM """This is a\nmultiline system."""\n\t\t\t', "This is a\nmultiline system."),
        ('\nFROM foo\nSYSTEM """This is a multiline system."""\n\t\t\t', "This is a multiline system."),
        (
            '\nFROM foo\nSYSTEM """\nThis is a multiline system with "quotes".\n"""\n',
            '\nThis is a multiline system with "quotes".\n',
        ),
        ('\nFROM foo\nSYSTEM """"""\n', ""),
        ('\nFROM foo\nSYSTEM ""\n', ""),
        ('\nFROM foo\nSYSTEM "\'"\n', "'"),
        ('\nFROM foo\nSYSTEM """\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""\n', "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"),
        # single-quoted values span lines too
        ('FROM foo\nSYSTEM "line one\nline two"\n', "line one\nline two"),
        # quotes only matter at the start of a value
        ('FROM foo\nSYSTEM say "hi"\n', 'say "hi"'),
        ("FROM foo\nSYSTEM 'single quotes are literal'\n", "'single quotes are literal'"),
    ],
)
def test_parse_file_quoted(text: str, expected: str) -> None:
    assert commands(text) == [C("model", "foo"), C("system", expected)]


def test_parse_file_quoted_template_at_eof() -> None:
    assert commands('\nFROM foo\nTEMPLATE """\n{{ .Prompt }}\n"""') == [
        C("model", "foo"),
        C("template", "\n{{ .Prompt }}\n"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        '\nFROM foo\nSYSTEM """This is a multiline system.""\n\t\t\t',
        '\nFROM foo\nSYSTEM "\n\t\t\t',
        'FROM foo\nSYSTEM "unterminated',
        'FROM foo\nTEMPLATE """{{ .Prompt }}',
        'FROM "foo',
    ],
)
def test_parse_file_unterminated_quote(text: str) -> None:
    assert parse_error(text) == "unexpected EOF"


# --- TestParseFileParameters ----------------------------------------------------------------------

PARAMETER_LINES = {
    "numa true": ("numa", "true"),
    "num_ctx 1": ("num_ctx", "1"),
    "num_batch 1": ("num_batch", "1"),
    "num_gqa 1": ("num_gqa", "1"),
    "num_gpu 1": ("num_gpu", "1"),
    "main_gpu 1": ("main_gpu", "1"),
    "use_mmap true": ("use_mmap", "true"),
    "num_thread 1": ("num_thread", "1"),
    "num_keep 1": ("num_keep", "1"),
    "seed 1": ("seed", "1"),
    "num_predict 1": ("num_predict", "1"),
    "top_k 1": ("top_k", "1"),
    "top_p 1.0": ("top_p", "1.0"),
    "min_p 0.05": ("min_p", "0.05"),
    "typical_p 1.0": ("typical_p", "1.0"),
    "repeat_last_n 1": ("repeat_last_n", "1"),
    "temperature 1.0": ("temperature", "1.0"),
    "repeat_penalty 1.0": ("repeat_penalty", "1.0"),
    "presence_penalty 1.0": ("presence_penalty", "1.0"),
    "frequency_penalty 1.0": ("frequency_penalty", "1.0"),
    "penalize_newline true": ("penalize_newline", "true"),
    "stop ### User:": ("stop", "### User:"),
    "stop ### User: ": ("stop", "### User:"),
    'stop "### User:"': ("stop", "### User:"),
    'stop "### User: "': ("stop", "### User: "),
    'stop """### User:"""': ("stop", "### User:"),
    'stop """### User:\n"""': ("stop", "### User:\n"),
    "stop <|endoftext|>": ("stop", "<|endoftext|>"),
    "stop <|eot_id|>": ("stop", "<|eot_id|>"),
    "stop </s>": ("stop", "</s>"),
}


@pytest.mark.parametrize(("line", "expected"), list(PARAMETER_LINES.items()))
def test_parse_file_parameters(line: str, expected: tuple[str, str]) -> None:
    assert commands(f"FROM foo\nPARAMETER {line}\n") == [C("model", "foo"), C(*expected)]


# --- TestParseFileComments and other lexical rules ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\n# comment\nFROM foo\n\t", [C("model", "foo")]),
        ("FROM foo\n   # indented comment\n\t# tabbed comment\nSYSTEM x", [C("model", "foo"), C("system", "x")]),
        ("#FROM bar\nFROM foo", [C("model", "foo")]),
        # "#" is only a comment at the start of an instruction
        ("FROM foo # not a comment", [C("model", "foo # not a comment")]),
        ("FROM foo\nSYSTEM #hashtag", [C("model", "foo"), C("system", "#hashtag")]),
    ],
)
def test_parse_file_comments(text: str, expected: list[Command]) -> None:
    assert commands(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "from foo\nparameter temperature 1\nsystem hi\n",
        "FROM foo\nPARAMETER temperature 1\nSYSTEM hi\n",
        "FrOm foo\nPaRaMeTeR temperature 1\nsYsTeM hi\n",
    ],
)
def test_commands_are_case_insensitive(text: str) -> None:
    assert commands(text) == [C("model", "foo"), C("temperature", "1"), C("system", "hi")]


def test_every_command_keyword() -> None:
    text = (
        "FROM base\nADAPTER ./lora.gguf\nDRAFT ./draft\nLICENSE MIT\nTEMPLATE {{ .Prompt }}\nSYSTEM be nice\n"
        "RENDERER qwen3-coder\nPARSER qwen3-coder\nPARAMETER top_k 10\nMESSAGE user hello\nREQUIRES 0.14.0\n"
    )
    assert commands(text) == [
        C("model", "base"),
        C("adapter", "./lora.gguf"),
        C("draft", "./draft"),
        C("license", "MIT"),
        C("template", "{{ .Prompt }}"),
        C("system", "be nice"),
        C("renderer", "qwen3-coder"),
        C("parser", "qwen3-coder"),
        C("top_k", "10"),
        C("message", "user: hello"),
        C("requires", "0.14.0"),
    ]


def test_parameter_name_case_is_preserved() -> None:
    assert commands("FROM foo\nPARAMETER Num_Ctx_2 5\n") == [C("model", "foo"), C("Num_Ctx_2", "5")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM foo\nFROM: bar\n", f"(line 2): {ERR_COMMAND}"),
        ("FROM foo\nFROM2 bar\n", f"(line 2): {ERR_COMMAND}"),
        ("FROM foo\nSYSTEMS hi\n", f"(line 2): {ERR_COMMAND}"),
        ("FROM foo\n\n\nINSTRUCTION hi\n", f"(line 4): {ERR_COMMAND}"),
        # the line counter is bumped before the newline that ends the keyword is examined
        ("FROM foo\nSYSTEM\n", f"(line 3): {ERR_COMMAND}"),
        ("FROM foo\nPARAMETER temp-erature 1\n", "unexpected EOF: temp"),
        ("FROM", "unexpected EOF"),
        ("FROM foo\nPARAMETER", "unexpected EOF"),
        ("FROM foo\nPARAMETER top_k", "unexpected EOF"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    assert parse_error(text) == message


def test_parse_error_line_attribute() -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile("FROM foo\n\nBAD x\n")
    assert info.value.line == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # non-printable runes are dropped; spaces and tabs inside a value are kept
        ("FROM foo\nSYSTEM a\x00b\x07c\x1bd", "abcd"),
        ("FROM foo\nSYSTEM a\tb  c", "a\tb  c"),
        ("FROM foo\nSYSTEM\tvalue", "value"),
        ("FROM foo\nSYSTEM \t  value \t ", "value"),
        ("FROM foo\nSYSTEM a\u00a0b\u200bc", "abc"),
        ("FROM foo\nSYSTEM 你好👋 é", "你好👋 é"),
        ('FROM foo\nSYSTEM "a\tb\x01"', "a\tb"),
        # CR and CRLF end a line like LF, and are kept inside quotes
        ("FROM foo\r\nSYSTEM bar\r\n", "bar"),
        ("FROM foo\rSYSTEM bar", "bar"),
        ('FROM foo\r\nSYSTEM """a\r\nb"""\r\n', "a\r\nb"),
    ],
)
def test_value_characters(text: str, expected: str) -> None:
    assert commands(text) == [C("model", "foo"), C("system", expected)]


# --- TestParseFileUTF16ParseFile / TestParseMultiByte ---------------------------------------------

UTF16_DATA = "FROM bob\nPARAMETER param1 1\nPARAMETER param2 4096\nSYSTEM You are a utf16 file.\n"
UTF16_EXPECTED = [C("model", "bob"), C("param1", "1"), C("param2", "4096"), C("system", "You are a utf16 file.")]


@pytest.mark.parametrize(
    ("bom", "encoding"), [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")], ids=["le", "be"]
)
def test_parse_utf16(bom: bytes, encoding: str) -> None:
    assert commands(bom + UTF16_DATA.encode(encoding)) == UTF16_EXPECTED


MULTIBYTE = "FROM test\n\tSYSTEM 你好👋"


@pytest.mark.parametrize(
    "data",
    [
        MULTIBYTE.encode("utf-8"),
        codecs.BOM_UTF8 + MULTIBYTE.encode("utf-8"),
        codecs.BOM_UTF16_LE + MULTIBYTE.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + MULTIBYTE.encode("utf-16-be"),
        MULTIBYTE,
    ],
    ids=["utf8", "utf8-bom", "utf16le", "utf16be", "str"],
)
def test_parse_multibyte(data: bytes | str) -> None:
    assert commands(data) == [C("model", "test"), C("system", "你好👋")]


# --- TestParseFileFormatParseFile (round trip) ----------------------------------------------------

FORMAT_PARSE_CASES = [
    "\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nPARAMETER param2 value2\n"
    "TEMPLATE template1\nMESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\n"
    "MESSAGE assistant Hello, I want to parse all the things!\n",
    "\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nPARAMETER param2 value2\n"
    'TEMPLATE template1\nMESSAGE system """\nYou are a store greeter. Always respond with "Hello!".\n"""\n'
    "MESSAGE user Hey there!\n"
    "MESSAGE assistant Hello, I want to parse all the things!\n",
    '\nFROM foo\nADAPTER adapter1\nLICENSE """\nVery long and boring legal text.\nBlah blah blah.\n'
    '"Oh look, a quote!"\n"""\n\nPARAMETER param1 value1\nPARAMETER param2 value2\nTEMPLATE template1\n'
    'MESSAGE system """\n'
    'You are a store greeter. Always respond with "Hello!".\n"""\nMESSAGE user Hey there!\n'
    "MESSAGE assistant Hello, I want to parse all the things!\n",
    '\nFROM foo\nSYSTEM ""\n',
]


@pytest.mark.parametrize("text", FORMAT_PARSE_CASES)
def test_format_parse_round_trip(text: str) -> None:
    first = parse_modelfile(text)
    assert parse_modelfile(str(first)).commands == first.commands


def test_modelfile_string() -> None:
    modelfile = Modelfile(
        [
            C("model", "llama3.2"),
            C("template", "{{ .Prompt }}"),
            C("system", "line one\nline two"),
            C("temperature", "0.7"),
            C("stop", "<|im_end|>"),
            C("message", "user: hi: there"),
            C("license", 'MIT "quoted"\n'),
            C("requires", "0.14.0"),
        ]
    )
    assert str(modelfile) == (
        "FROM llama3.2\n"
        "TEMPLATE {{ .Prompt }}\n"
        'SYSTEM "line one\nline two"\n'
        "PARAMETER temperature 0.7\n"
        "PARAMETER stop <|im_end|>\n"
        "MESSAGE user hi: there\n"
        'LICENSE """MIT "quoted"\n"""\n'
        "REQUIRES 0.14.0\n"
    )


@pytest.mark.parametrize(
    ("value", "formatted"),
    [
        ("plain", "plain"),
        ("two words", "two words"),
        ("", ""),
        ('say "hi"', 'say "hi"'),
        # Ollama's quote(): a newline or a leading/trailing space means quotes; with a '"' inside, triple
        ("a\nb", '"a\nb"'),
        (" lead", '" lead"'),
        ("trail ", '"trail "'),
        ('a\n"b"', '"""a\n"b""""'),
        # pollama also quotes what Ollama's quote() would break (documented in modelfile.py)
        ("\tlead", '"\tlead"'),
        ("trail\t", '"trail\t"'),
        ("a\rb", '"a\rb"'),
        ('"leading quote', '""""leading quote"""'),
        ('"', '"""' + '"' + '"""'),
    ],
)
def test_format_value(value: str, formatted: str) -> None:
    assert format_value(value) == formatted


ROUND_TRIP_VALUES = [
    "plain",
    "",
    " ",
    "  leading",
    "trailing  ",
    " both ",
    "\tleading tab",
    "trailing tab\t",
    "inner\ttab",
    "multi\nline",
    "\nstarts with newline",
    "ends with newline\n",
    "crlf\r\nline",
    "lone\rcr",
    '"',
    '""',
    '"quoted"',
    '"starts with a quote',
    'ends with a quote"',
    'in "the" middle',
    'multi\n"line" with quotes',
    ' "both" \n',
    '""" triple inside',
    'x"""y',
    "# not a comment",
    "MESSAGE user looks like a command",
    "你好👋 é",
    "{{ .Prompt }}",
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
@pytest.mark.parametrize("name", ["model", "system", "template", "license", "adapter", "stop", "message"])
def test_round_trip_values(name: str, value: str) -> None:
    args = f"user: {value}" if name == "message" else value
    original = [C("model", "base"), C(name, args)]
    assert commands(str(Modelfile(original))) == original


# --- fields(): typed view (CreateRequest) ---------------------------------------------------------


def test_create_request_from_only() -> None:
    fields = parse_modelfile("FROM test").fields()
    assert fields.models == ["test"]
    assert fields.parameters == {}
    assert fields.messages == []
    assert fields.licenses == []
    assert fields.template is None
    assert fields.system is None


def test_create_request_template() -> None:
    fields = parse_modelfile("FROM test\nTEMPLATE some template\n").fields()
    assert fields.template == "some template"


def test_create_request_license_parameter_message() -> None:
    fields = parse_modelfile(
        "FROM test\nLICENSE single license\nPARAMETER temperature 0.5\nMESSAGE user Hello\n"
    ).fields()
    assert fields.licenses == ["single license"]
    assert fields.parameters == {"temperature": 0.5}
    assert fields.messages == [{"role": "user", "content": "Hello"}]


def test_create_request_full() -> None:
    text = (
        "FROM test\nPARAMETER temperature 0.5\nPARAMETER top_k 1\nSYSTEM You are a bot.\nLICENSE license1\n"
        "LICENSE license2\nMESSAGE user Hello there!\nMESSAGE assistant Hi! How are you?\n"
    )
    fields = parse_modelfile(text).fields()
    assert fields.models == ["test"]
    assert fields.licenses == ["license1", "license2"]
    assert fields.system == "You are a bot."
    assert fields.parameters == {"temperature": 0.5, "top_k": 1}
    assert type(fields.parameters["top_k"]) is int
    assert fields.messages == [
        {"role": "user", "content": "Hello there!"},
        {"role": "assistant", "content": "Hi! How are you?"},
    ]


def test_fields_collects_every_instruction() -> None:
    text = (
        "FROM base\nFROM ./projector.gguf\nADAPTER ./lora\nDRAFT ./draft\nRENDERER r\nPARSER p\n"
        "TEMPLATE t1\nTEMPLATE t2\nSYSTEM s\nREQUIRES v0.14.0\n"
    )
    fields = parse_modelfile(text).fields()
    assert fields.models == ["base", "./projector.gguf"]
    assert fields.adapters == ["./lora"]
    assert fields.drafts == ["./draft"]
    assert (fields.renderer, fields.parser, fields.template, fields.system) == ("r", "p", "t2", "s")
    assert fields.requires == "0.14.0"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["PARAMETER temperature 0.7"], {"temperature": 0.7}),
        (["PARAMETER temperature 0.1"], {"temperature": 0.1}),
        (["PARAMETER num_ctx 4096"], {"num_ctx": 4096}),
        (["PARAMETER use_mmap true"], {"use_mmap": True}),
        (["PARAMETER use_mmap 0"], {"use_mmap": False}),
        (["PARAMETER main_gpu 0"], {"main_gpu": 0}),
        (["PARAMETER stop <|im_start|>", "PARAMETER stop <|im_end|>"], {"stop": ["<|im_start|>", "<|im_end|>"]}),
        (['PARAMETER stop "### User: "'], {"stop": ["### User: "]}),
        (["PARAMETER temperature 0.5", "PARAMETER temperature 0.9"], {"temperature": 0.9}),
        (["PARAMETER seed -1", "PARAMETER num_predict -2"], {"seed": -1, "num_predict": -2}),
    ],
)
def test_fields_parameters(lines: list[str], expected: dict[str, object]) -> None:
    assert parse_modelfile("\n".join(["FROM foo", *lines])).fields().parameters == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("PARAMETER numa true", "unknown parameter 'numa'"),
        ("PARAMETER num_gqa 1", "unknown parameter 'num_gqa'"),
        ("PARAMETER Temperature 1", "unknown parameter 'Temperature'"),
        ("PARAMETER num_ctx abc", "invalid int value [abc]"),
        ("PARAMETER num_ctx 4096.0", "invalid int value [4096.0]"),
        ("PARAMETER temperature hot", "invalid float value [hot]"),
        ("PARAMETER use_mmap yes", "invalid bool value [yes]"),
        ("REQUIRES latest", "requires must be a valid semver (e.g. 0.14.0)"),
    ],
)
def test_fields_errors(line: str, message: str) -> None:
    modelfile = parse_modelfile(f"FROM foo\n{line}\n")
    with pytest.raises(ModelfileError) as info:
        modelfile.fields()
    assert str(info.value) == message


def test_deprecated_parameters_warn_and_are_ignored() -> None:
    text = "FROM foo\nPARAMETER low_vram 1\nPARAMETER penalize_newline true\nPARAMETER use_mlock 1\nPARAMETER top_k 5\n"
    fields = parse_modelfile(text).fields()
    assert fields.parameters == {"top_k": 5}
    assert fields.warnings == [
        "warning: parameter low_vram is deprecated",
        "warning: parameter penalize_newline is deprecated",
        "warning: parameter use_mlock is deprecated",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
    ],
)
def test_every_deprecated_parameter(name: str) -> None:
    # deprecated parameters are skipped before their value is typed
    fields = parse_modelfile(f"FROM foo\nPARAMETER {name} not-a-number\n").fields()
    assert fields.parameters == {}
    assert fields.warnings == [f"warning: parameter {name} is deprecated"]


def test_messages_split_on_first_separator() -> None:
    fields = parse_modelfile('FROM foo\nMESSAGE user a: b: c\nMESSAGE assistant """\nmulti\n"""\n').fields()
    assert fields.messages == [
        {"role": "user", "content": "a: b: c"},
        {"role": "assistant", "content": "\nmulti\n"},
    ]


# --- REQUIRES (golang.org/x/mod/semver.IsValid, "v" optional) -------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.14.0", "0.14.0"),
        ("v0.14.0", "0.14.0"),
        ("1", "1"),
        ("v1", "1"),
        ("1.2", "1.2"),
        ("10.20.30", "10.20.30"),
        ("1.2.3-rc1", "1.2.3-rc1"),
        ("1.2.3-rc.1", "1.2.3-rc.1"),
        ("1.2.3-0", "1.2.3-0"),
        ("1.2.3-alpha-1.x.0", "1.2.3-alpha-1.x.0"),
        ("1.2.3-0a", "1.2.3-0a"),
        ("1.2.3+build.5", "1.2.3+build.5"),
        ("1.2.3+001", "1.2.3+001"),
        ("1.2.3-rc.1+build", "1.2.3-rc.1+build"),
    ],
)
def test_requires_valid(text: str, expected: str) -> None:
    assert parse_modelfile(f"FROM foo\nREQUIRES {text}\n").fields().requires == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v",
        "vv1.2.3",
        "V1.2.3",
        "latest",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3.4",
        "1.2-pre",
        "1-pre",
        "1.2+build",
        "1.2.3-",
        "1.2.3-01",
        "1.2.3-a..b",
        "1.2.3-a_b",
        "1.2.3+",
        "1.2.3+a..b",
        "1.2.",
        ".1.2",
        "1.2.3 x",
        "١.٢.٣",  # semver digits are ASCII only
        "1١",
        "1.2.3-١a",
    ],
)
def test_requires_invalid(text: str) -> None:
    modelfile = parse_modelfile(f'FROM foo\nREQUIRES "{text}"\n')
    with pytest.raises(ModelfileError, match=r"^requires must be a valid semver \(e\.g\. 0\.14\.0\)$"):
        modelfile.fields()


# --- property: str(parse(x)) parses back to the same commands -------------------------------------


def _representable(value: str) -> bool:
    """Whether any quoting can carry ``value`` through Ollama's grammar (which has no escapes).

    Inside triple quotes the value ends at the first newline where the text so far, right-trimmed,
    ends in three quotes; such a value cannot be written at all.
    """
    return not any(ch in "\r\n" and value[:i].rstrip().endswith('"""') for i, ch in enumerate(value))


def test_representable_helper() -> None:
    assert _representable('a"""b\nc')
    assert not _representable('a"""\nb')
    assert not _representable('a""" \r\nb')


VALUE = st.lists(st.sampled_from(list('ab "\t\n\r#:é你') + ['"""']), max_size=20).map("".join).filter(_representable)
PARAM_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: (
        n
        not in (
            "license",
            "template",
            "system",
            "adapter",
            "renderer",
            "parser",
            "requires",
            "draft",
            "message",
            "model",
        )
    )
)
COMMAND = st.one_of(
    st.builds(Command, st.sampled_from(["model", "system", "template", "license", "adapter", "draft"]), VALUE),
    st.builds(Command, PARAM_NAME, VALUE),
    st.builds(
        lambda role, v: Command("message", f"{role}: {v}"), st.sampled_from(["system", "user", "assistant"]), VALUE
    ),
)


@settings(max_examples=400, deadline=None, database=None)
@given(VALUE, st.lists(COMMAND, max_size=6))
@example(" x\t", [])
@example('"', [Command("system", 'a\n"b"')])
@example("", [Command("stop", " ")])
def test_round_trip_property(first: str, rest: list[Command]) -> None:
    original = [Command("model", first), *rest]
    text = str(Modelfile(original))
    assert commands(text) == original
    assert str(parse_modelfile(text)) == text
