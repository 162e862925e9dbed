"""A Modelfile ``TEMPLATE`` as Ollama runs it (template/template.go): the data it sees and how it is executed.

Three ways to render, chosen by what the template mentions: fill-in-the-middle when a prompt and a
suffix are given; the whole conversation when it mentions ``.Messages``; otherwise the legacy
``.System``/``.Prompt``/``.Response`` form, executed once per turn and cut after ``.Response`` for
the last one. Tool definitions, tools calls' arguments and tool parameter properties print as
JSON (Go Stringers), not as Go struct text — the Ollama 0.14 regression (ollama#14601) is not copied.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pollama.config import Limits
from pollama.gocompat import gojson
from pollama.templates.gotemplate import Template, TemplateSyntaxError
from pollama.templates.gotemplate.nodes import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    ListNode,
    Node,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    VariableNode,
)  # fmt: skip

__all__ = ["DEFAULT_TEMPLATE", "ModelTemplate", "TemplateValues", "infer_thinking_tags", "template_vars"]

DEFAULT_TEMPLATE = "{{ .Prompt }}"
_DEFAULT_LIMITS = Limits()  # for callers without settings at hand


class GoJSON(dict):
    """A Go struct or typed map as templates see it: fields by name, printed (and ``json``-ed) as JSON."""

    def __init__(self, fields: dict[str, Any], encoded: Any):
        super().__init__(fields)
        self._encoded = encoded

    def __go_str__(self) -> str:
        return gojson.dumps(self._encoded).decode()

    __go_json__ = __go_str__


class GoJSONList(list):
    def __init__(self, items: list[Any], encoded: Any):
        super().__init__(items)
        self._encoded = encoded

    def __go_str__(self) -> str:
        return gojson.dumps(self._encoded).decode()

    __go_json__ = __go_str__


@dataclass
class TemplateValues:
    """What a request gives the template (Ollama's ``template.Values``)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    prompt: str = ""
    suffix: str = ""
    think: bool = False
    think_level: str = ""
    is_think_set: bool = False


def identifiers(node: Node | None) -> list[str]:
    """Ollama's ``Identifiers``: the field and variable names a node mentions (chains are not followed)."""
    if node is None:
        return []
    if isinstance(node, ListNode):
        return [name for child in node.nodes for name in identifiers(child)]
    if isinstance(node, TemplateNode):
        if node.pipe is None:
            raise TemplateSyntaxError("undefined template specified")
        return identifiers(node.pipe)
    if isinstance(node, ActionNode):
        return identifiers(node.pipe)
    if isinstance(node, BranchNode):
        return identifiers(node.pipe) + identifiers(node.list) + identifiers(node.else_list)
    if isinstance(node, PipeNode):
        return [name for command in node.cmds for arg in command.args for name in identifiers(arg)]
    if isinstance(node, FieldNode | VariableNode):
        return list(node.ident)
    return []


class ModelTemplate:
    """A parsed TEMPLATE (``template.Parse``); raises ``TemplateSyntaxError`` with Go's message."""

    def __init__(self, text: str):
        self.raw = text
        self.template = Template(text)
        self.vars = template_vars(self.template)
        self.thinking_tags = infer_thinking_tags(self.template.tree.root)
        if "messages" not in self.vars and "response" not in self.vars:
            # Ollama appends {{ .Response }} so legacy templates continue an answer.
            self.template.tree.root.nodes.append(ActionNode(PipeNode([], [_response_command()])))

    def execute(self, values: TemplateValues, limits: Limits = _DEFAULT_LIMITS) -> str:
        """The prompt; ``ExecError`` with Go's message, ``ExecLimitError`` when one execution passes ``limits``."""
        think = {"Think": values.think, "ThinkLevel": values.think_level, "IsThinkSet": values.is_think_set}
        system, messages = collate(values.messages)
        if values.prompt and values.suffix:
            data = {"Prompt": values.prompt, "Suffix": values.suffix, "Response": "", **think}
            return self.template.execute(data, limits)
        if "messages" in self.vars:
            return self.template.execute(
                {
                    "System": system,
                    "Messages": [_message(message) for message in messages],
                    "Tools": _tools(values.tools),
                    "Response": "",
                    **think,
                },
                limits,
            )
        return self._legacy(messages, think, limits)

    def _legacy(self, messages: list[dict[str, Any]], think: dict[str, Any], limits: Limits) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def execute() -> None:
            out.append(self.template.execute({**turn, **think}, limits))
            turn.update(System="", Prompt="", Response="")

        for message in messages:
            role, content = message.get("role"), message.get("content", "")
            if role == "system":
                if turn["Prompt"] or turn["Response"]:
                    execute()
                turn["System"] = content
            elif role == "user":
                if turn["Response"]:
                    execute()
                turn["Prompt"] = content
            elif role == "assistant":
                turn["Response"] = content
        last = copy.copy(self.template)
        last.tree = copy.copy(self.template.tree)
        last.tree.root = _cut_after_response(copy.deepcopy(self.template.tree.root))
        out.append(last.execute({**turn, **think}, limits))
        return "".join(out)


def template_vars(template: Template) -> list[str]:
    """Ollama's ``Template.Vars``: lower-cased identifiers over the template and those it defines, sorted."""
    roots = [template.tree.root, *template.tree.templates.values()]
    return sorted({name.lower() for root in roots for name in identifiers(root)})


def infer_thinking_tags(root: ListNode) -> tuple[str, str]:
    """Ollama's ``thinking.InferTags``: around a ``.Thinking`` inside ``range .Messages``, the text that opens
    and closes it (first and last text nodes of the nearest enclosing list), e.g. ``<think>``/``</think>``."""
    opening = closing = ""
    ancestors: list[Any] = []

    def visit(node: Any) -> None:
        nonlocal opening, closing
        if node is None:
            return
        ancestors.append(node)
        if isinstance(node, FieldNode) and node.ident[0] == "Thinking":
            nearest_range = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
            if nearest_range is not None and _mentions(nearest_range.pipe, "Messages"):
                enclosing = next(a for a in reversed(ancestors) if isinstance(a, ListNode))
                if isinstance(enclosing.nodes[0], TextNode):
                    opening = enclosing.nodes[0].text.strip()
                if isinstance(enclosing.nodes[-1], TextNode):
                    closing = enclosing.nodes[-1].text.strip()
        for child in _children(node):
            visit(child)
        ancestors.pop()

    visit(root)
    return opening, closing


def _children(node: Any) -> list[Any]:
    if isinstance(node, ListNode):
        return list(node.nodes)
    if isinstance(node, BranchNode):
        return [node.pipe, node.list, node.else_list]
    if isinstance(node, ActionNode | TemplateNode):
        return [node.pipe]
    if isinstance(node, PipeNode):
        return list(node.cmds)
    if isinstance(node, CommandNode):
        return list(node.args)
    return []


def _mentions(pipe: PipeNode, name: str) -> bool:
    return any(
        isinstance(arg, FieldNode) and arg.ident[0] == name for command in pipe.cmds for arg in command.args
    ) or any(_mentions(arg, name) for command in pipe.cmds for arg in command.args if isinstance(arg, PipeNode))


def collate(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """All system contents joined, and consecutive same-role messages merged (tool messages stay apart)."""
    system = [m.get("content", "") for m in messages if m.get("role") == "system"]
    collated: list[dict[str, Any]] = []
    for message in messages:
        if collated and collated[-1]["role"] == message.get("role") and message.get("role") != "tool":
            collated[-1] = {
                **collated[-1],
                "content": collated[-1].get("content", "") + "\n\n" + message.get("content", ""),
            }
        else:
            collated.append(dict(message))
    return "\n\n".join(system), collated


def _message(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Role": message.get("role", ""),
        "Content": message.get("content", ""),
        "Thinking": message.get("thinking", ""),
        "Images": message.get("images") or None,
        "ToolCalls": [_tool_call(call) for call in message.get("tool_calls") or ()] or None,
        "ToolName": message.get("tool_name", ""),
        "ToolCallID": message.get("tool_call_id", ""),
    }


def _sorted(value: Any) -> Any:
    """A decoded JSON value as Go holds it in ``map[string]any``: maps encode with sorted keys."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or {}
    return {
        "ID": call.get("id", ""),
        "Function": {
            "Index": function.get("index", 0),
            "Name": function.get("name", ""),
            "Arguments": GoJSON(arguments, _sorted(arguments)),
        },
    }


_PROPERTY_KEYS = ("anyOf", "type", "items", "description", "enum", "properties", "required")


def _property(schema: dict[str, Any]) -> dict[str, Any]:
    """An ``api.ToolProperty`` as JSON: only its known keys, in its field order; one type prints as a string."""
    encoded: dict[str, Any] = {}
    for key in _PROPERTY_KEYS:
        value = schema.get(key)
        if value in (None, "", [], {}) and key != "type":
            continue
        if key == "type":
            types = value if isinstance(value, list) else ([value] if value else [])
            encoded["type"] = types[0] if len(types) == 1 else types
        elif key == "properties" and isinstance(value, dict):
            encoded[key] = {name: _property(sub) for name, sub in sorted(value.items())}
        elif key == "anyOf" and isinstance(value, list):
            encoded[key] = [_property(sub) for sub in value]
        else:
            encoded[key] = value
    return encoded


def _tools(tools: list[dict[str, Any]] | None) -> GoJSONList | None:
    if tools is None:
        return None
    converted, encoded = [], []
    for tool in tools:
        function = tool.get("function") or {}
        parameters = function.get("parameters") or {}
        properties = {name: _property(schema) for name, schema in sorted((parameters.get("properties") or {}).items())}
        properties_value = GoJSON({name: _template_property(p) for name, p in properties.items()}, properties)
        encoded_parameters: dict[str, Any] = {"type": parameters.get("type", "")}
        for key, json_key in (("$defs", "$defs"), ("items", "items"), ("required", "required")):
            if parameters.get(key):
                encoded_parameters[json_key] = parameters[key]
        encoded_parameters["properties"] = properties
        encoded_function = {
            "name": function.get("name", ""),
            "description": function.get("description", ""),
            "parameters": encoded_parameters,
        }
        encoded_tool: dict[str, Any] = {"type": tool.get("type", "")}
        if tool.get("items") is not None:
            encoded_tool["items"] = tool["items"]
        encoded_tool["function"] = encoded_function
        fields_parameters = {
            "Type": parameters.get("type", ""),
            "Defs": parameters.get("$defs"),
            "Items": parameters.get("items"),
            "Required": parameters.get("required") or None,
            "Properties": properties_value,
        }
        fields_function = {
            "Name": function.get("name", ""),
            "Description": function.get("description", ""),
            "Parameters": GoJSON(fields_parameters, encoded_parameters),
        }
        fields_tool = {
            "Type": tool.get("type", ""),
            "Items": tool.get("items"),
            "Function": GoJSON(fields_function, encoded_function),
        }
        converted.append(GoJSON(fields_tool, encoded_tool))
        encoded.append(encoded_tool)
    return GoJSONList(converted, encoded)


class _PropertyType(list):
    """``api.PropertyType``: one type prints as itself, several as ``[a b]``."""

    def __go_str__(self) -> str:
        return str(self[0]) if len(self) == 1 else "[" + " ".join(self) + "]"


_TYPESCRIPT = {
    "string": "string", "number": "number", "integer": "number", "boolean": "boolean", "array": "any[]",
    "object": "Record<string, any>", "null": "null",
}  # fmt: skip


class _Property(GoJSON):
    """An ``api.ToolProperty``; ``toTypeScriptType`` asks it for its TypeScript type."""

    def to_typescript(self) -> str:
        return _typescript(self._encoded)


def _typescript(schema: dict[str, Any]) -> str:
    if schema.get("anyOf"):
        return " | ".join(_typescript(option) for option in schema["anyOf"])
    types = schema.get("type")
    types = types if isinstance(types, list) else [types] if types else []
    return " | ".join(_TYPESCRIPT.get(name, "any") for name in types) if types else "any"


def _template_property(encoded: dict[str, Any]) -> GoJSON:
    types = encoded.get("type")
    fields = {
        "AnyOf": encoded.get("anyOf"),
        "Type": _PropertyType(types if isinstance(types, list) else [types] if types else []),
        "Items": encoded.get("items"),
        "Description": encoded.get("description", ""),
        "Enum": encoded.get("enum"),
        "Properties": encoded.get("properties"),
        "Required": encoded.get("required"),
    }
    return _Property(fields, encoded)


def _response_command() -> CommandNode:
    return CommandNode([FieldNode(["Response"])])


def _cut_after_response(root: ListNode) -> ListNode:
    """Ollama's ``deleteNode`` for the last legacy turn: keep everything up to the first ``.Response``."""
    cut = False

    def is_cut(node: Any) -> bool:
        nonlocal cut
        if isinstance(node, FieldNode) and "Response" in node.ident:
            cut = True
            return False
        return cut

    def walk(node: Any) -> Any:
        if is_cut(node):
            return None
        if isinstance(node, ListNode):
            node.nodes = [kept for child in node.nodes if (kept := walk(child)) is not None]
        elif isinstance(node, BranchNode):
            node.list = walk(node.list) or ListNode()
            if node.else_list is not None:
                node.else_list = walk(node.else_list) or ListNode()
        elif isinstance(node, ActionNode):
            pipe = walk(node.pipe)
            if pipe is None:
                return None
            node.pipe = pipe
        elif isinstance(node, PipeNode):
            commands = []
            for command in node.cmds:
                command.args = [kept for arg in command.args if (kept := walk(arg)) is not None]
                if not command.args:
                    return None
                commands.append(command)
            if not commands:
                return None
            node.cmds = commands
        return node

    return walk(root) or ListNode()
