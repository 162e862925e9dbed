"""Template executions have a bounded cost: steps and bytes of text (``Limits``), Go templates and jinja alike."""

from __future__ import annotations

import re

import pytest

from pollama.config import Limits
from pollama.errors import PollamaError
from pollama.server.errors import status_of
from pollama.store.layers import Layer, Manifest, ModelConfig
from pollama.store.models import StoredModel
from pollama.store.names import parse_model_ref
from pollama.templates.gotemplate import ExecError, ExecLimitError, Template, TemplateSyntaxError
from pollama.templates.jinja import ChatTemplateError, render_chat_template
from pollama.templates.model_template import ModelTemplate, TemplateValues
from pollama.templates.prompt import chat_prompt, fill_in_middle_prompt

SMALL = Limits(template_max_steps=1_000, template_max_output=10_000)


def execute(text: str, limits: Limits = SMALL, data: object = None) -> str:
    return Template(text, name="t").execute(data, limits)


def steps_error(limit: int) -> str:
    return rf'^template: t:\d+:\d+: executing "t" exceeds the limit of {limit} steps$'


# --- Go templates: steps ------------------------------------------------------------------------


def test_the_request_from_the_issue_stops_at_the_default_step_limit() -> None:
    with pytest.raises(ExecLimitError, match=steps_error(1_000_000)):
        execute("{{ range 1000000000 }}x{{ end }}", Limits())


def test_a_range_over_a_huge_count_is_not_made_into_a_list_first() -> None:
    # A list of 10**15 pairs could not be made at all: only a lazy range reaches the limit.
    with pytest.raises(ExecLimitError, match=steps_error(1_000)):
        execute("{{ range 1000000000000000 }}{{ end }}")


def test_nested_ranges_count_every_inner_iteration() -> None:
    with pytest.raises(ExecLimitError, match=steps_error(1_000)):
        execute("{{ range 100 }}{{ range 100 }}{{ end }}{{ end }}")


def test_function_calls_count() -> None:
    calls = "{{ range 10 }}" + "{{ if eq 1 1 }}{{ end }}" * 60 + "{{ end }}"
    with pytest.raises(ExecLimitError, match=steps_error(1_000)):
        execute(calls)


def test_exponential_recursion_through_named_templates_stops() -> None:
    # Each call runs the template twice on a string one byte shorter: 2**40 calls without a budget.
    text = '{{ define "a" }}{{ if . }}{{ template "a" slice . 1 }}{{ template "a" slice . 1 }}{{ end }}{{ end }}'
    with pytest.raises(ExecLimitError, match=r'executing "a" exceeds the limit of 1000 steps$'):
        execute(text + '{{ template "a" "' + "x" * 40 + '" }}')


def test_the_error_says_where_execution_was() -> None:
    with pytest.raises(ExecLimitError) as caught:
        execute("line one\n{{ range 100000 }}{{ end }}")
    assert str(caught.value) == 'template: t:2:9: executing "t" exceeds the limit of 1000 steps'


def test_a_limit_is_the_most_allowed_not_less() -> None:
    # {{ range 3 }}x{{ end }}: the range, 3 iterations and 3 texts.
    assert execute("{{ range 3 }}x{{ end }}", Limits(template_max_steps=7)) == "xxx"
    with pytest.raises(ExecLimitError):
        execute("{{ range 3 }}x{{ end }}", Limits(template_max_steps=6))


# --- Go templates: bytes ------------------------------------------------------------------------


def test_output_is_bounded() -> None:
    with pytest.raises(ExecLimitError, match=r'^template: t:1:\d+: executing "t" exceeds the limit of 10000 bytes'):
        execute("{{ range 999 }}" + "x" * 100 + "{{ end }}")


def test_output_counts_bytes_not_characters() -> None:
    assert execute("éé", Limits(template_max_output=4)) == "éé"
    with pytest.raises(ExecLimitError, match="exceeds the limit of 3 bytes of output"):
        execute("éé", Limits(template_max_output=3))


def test_printf_padding_is_refused_before_it_is_made() -> None:
    with pytest.raises(
        ExecLimitError, match=r'^template: t:1:3: executing "t" exceeds the limit of 10000 bytes of text'
    ):
        execute('{{ printf "%0999999999999d" 1 }}')
    with pytest.raises(ExecLimitError, match="exceeds the limit of 10000 bytes of text"):
        execute('{{ printf "%.999999999999f" 1.5 }}')
    with pytest.raises(ExecLimitError, match="exceeds the limit of 10000 bytes of text"):
        execute('{{ printf "%*d" 999999999999 1 }}')


def test_many_writes_through_printf_are_bounded() -> None:
    with pytest.raises(ExecLimitError, match="exceeds the limit of 10000 bytes"):
        execute('{{ range 100 }}{{ printf "%0500d" 0 }}{{ end }}')


def test_text_kept_in_variables_is_bounded_though_never_written() -> None:
    doubling = '{{ $x := "abcdefgh" }}{{ range 60 }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ len $x }}'
    with pytest.raises(ExecLimitError, match="exceeds the limit of 10000 bytes of text"):
        execute(doubling)


def test_text_a_function_hands_back_is_not_counted_as_made() -> None:
    # or hands back one of its arguments: 3 x 6,000 bytes of data, not of new text.
    assert execute("{{ range 3 }}{{ $v := or $.big }}{{ end }}", data={"big": "x" * 6_000}) == ""


def test_ordinary_templates_are_unaffected() -> None:
    text = '{{ range $i, $m := .Messages }}{{ if $i }}\n{{ end }}{{ printf "%s: %s" $m.Role $m.Content }}{{ end }}'
    messages = [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "hello"}]
    assert execute(text, Limits(), {"Messages": messages}) == "user: hi\nassistant: hello"


def test_a_limit_error_is_an_exec_error() -> None:
    assert issubclass(ExecLimitError, ExecError)


def test_model_templates_pass_the_limits_to_every_execution() -> None:
    legacy = ModelTemplate("{{ range 100000 }}{{ end }}{{ .Prompt }}")
    with pytest.raises(ExecLimitError):
        legacy.execute(TemplateValues(messages=[{"role": "user", "content": "hi"}]), SMALL)
    assert legacy.execute(TemplateValues(messages=[{"role": "user", "content": "hi"}])) == "hi"


# --- Go templates: HTTP status ------------------------------------------------------------------


def model(template: str | None) -> StoredModel:
    manifest = Manifest(Layer("application/vnd.docker.container.image.v1+json", "sha256:" + "0" * 64, 0), ())
    return StoredModel(parse_model_ref("m"), manifest, 0, ModelConfig(), template=template)


HELLO = [{"role": "user", "content": "hello"}]
# A message well within the request body limit, whose text alone passes the output limit of SMALL.
LONG = [{"role": "user", "content": "x" * 20_000}]


def test_a_request_template_past_a_limit_is_a_client_error() -> None:
    with pytest.raises(PollamaError) as caught:
        chat_prompt(model(None), HELLO, template="{{ range 1000000000 }}x{{ end }}")
    assert status_of(caught.value) == 400
    assert re.match(r'^template: :1:\d+: executing "" exceeds the limit of 1000000 steps$', caught.value.message)


def test_any_failure_of_a_request_template_is_a_client_error() -> None:
    with pytest.raises(PollamaError) as caught:
        fill_in_middle_prompt(model(None), "a", "b", template="{{ index .Prompt 99 }}")
    assert status_of(caught.value) == 400
    assert "index out of range: 99" in caught.value.message


def test_a_model_template_past_a_limit_is_a_client_error() -> None:
    with pytest.raises(PollamaError) as caught:
        chat_prompt(model("{{ range .Messages }}{{ .Content }}{{ end }}"), LONG, limits=SMALL)
    assert status_of(caught.value) == 400


def test_a_model_template_that_fails_otherwise_is_still_a_server_error() -> None:
    with pytest.raises(PollamaError) as caught:
        chat_prompt(model("{{ index .Messages 99 }}"), HELLO)
    assert status_of(caught.value) == 500


# --- jinja chat templates -----------------------------------------------------------------------


def render(source: str, limits: Limits = SMALL) -> str:
    return render_chat_template(source, HELLO, limits=limits)


def test_jinja_refuses_a_huge_range() -> None:
    with pytest.raises(ChatTemplateError, match="Range too big"):
        render("{% for i in range(10**9) %}x{% endfor %}", Limits())


def test_jinja_loop_items_are_steps() -> None:
    with pytest.raises(
        ChatTemplateError, match=r"^template error: line 2: chat template exceeds the limit of 1000 steps$"
    ):
        render("{% for i in range(100) %}\n{% for j in range(100) %}{% endfor %}{% endfor %}")


def test_jinja_calls_are_steps() -> None:
    recursion = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    with pytest.raises(ChatTemplateError, match="exceeds the limit of 1000 steps"):
        render(recursion)


def test_jinja_output_is_bounded() -> None:
    with pytest.raises(ChatTemplateError, match="exceeds the limit of 10000 bytes of output"):
        render("{% for i in range(50) %}" + "x" * 300 + "{% endfor %}")


def test_jinja_output_of_macros_and_set_blocks_counts_before_it_is_written() -> None:
    body = "{% for i in range(50) %}{{ messages[0].content }}" + "x" * 300 + "{% endfor %}"
    for source in (
        "{% macro m() %}" + body + "{% endmacro %}{% set x = m() %}",
        "{% set x %}" + body + "{% endset %}",
    ):
        with pytest.raises(ChatTemplateError, match="exceeds the limit of 10000 bytes of output"):
            render(source)


@pytest.mark.parametrize(
    "source", ["{{ 'x' * 10**10 }}", "{{ (['x'] * 10**10)|length }}", "{{ 9 ** 999999999 }}", "{{ 10**10 * 'x' }}"]
)
def test_jinja_operators_do_not_make_values_past_the_limit(source: str) -> None:
    with pytest.raises(ChatTemplateError, match="makes a value larger than the limit of 10000 bytes"):
        render(source)


def test_jinja_ordinary_templates_are_unaffected() -> None:
    source = (
        "{% for m in messages %}{{ loop.index }}/{{ loop.length }} {{ m.role }}: {{ m.content }}"
        "{% if loop.last %}{{ '=' * 3 }}{{ 2 ** 3 }}{{ 6 * 7 }}{% endif %}{% endfor %}"
    )
    assert render(source, Limits()) == "1/1 user: hello===842"


# --- Go templates: nesting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{{if 1}}" * 101 + "{{end}}" * 101,
        "{{ " + "(" * 101 + "1" + ")" * 101 + " }}",
        "{{if 0}}" + "{{else if 0}}" * 101 + "{{end}}",
        "{{if 1}}" * 5000 + "{{end}}" * 5000,  # far past Python's own recursion limit
    ],
)
def test_nesting_is_bounded_at_parse_time(text: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=r"max nesting depth exceeded \(100\)"):
        Template(text, name="t")


def test_nesting_up_to_the_bound_executes() -> None:
    assert execute("{{if 1}}" * 99 + "x" + "{{end}}" * 99) == "x"
    assert execute("{{if 0}}" + "{{else if 0}}" * 90 + "{{else}}y{{end}}") == "y"


def test_recursive_template_calls_are_bounded() -> None:
    with pytest.raises(ExecError, match=r"exceeded maximum template depth \(100\)"):
        execute('{{define "a"}}{{template "a"}}{{end}}{{template "a"}}')
