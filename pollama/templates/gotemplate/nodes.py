"""The syntax tree, shaped like Go's text/template/parse nodes; ``str()`` prints a node as Go does."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ActionNode", "BoolNode", "BranchNode", "BreakNode", "ChainNode", "CommandNode", "CommentNode",
    "ContinueNode", "DotNode", "FieldNode", "IdentifierNode", "IfNode", "ListNode", "NilNode", "Node",
    "NumberNode", "PipeNode", "RangeNode", "StringNode", "TemplateNode", "TextNode", "VariableNode", "WithNode",
]  # fmt: skip


@dataclass(eq=False)
class TextNode:
    text: str
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return repr(self.text)


@dataclass(eq=False)
class CommentNode:
    text: str
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@dataclass(eq=False)
class DotNode:
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "."


@dataclass(eq=False)
class NilNode:
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "nil"


@dataclass(eq=False)
class BoolNode:
    value: bool
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(eq=False)
class NumberNode:
    text: str
    value: int | float | complex
    is_char: bool = False
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return self.text


@dataclass(eq=False)
class StringNode:
    quoted: str
    text: str
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return self.quoted


@dataclass(eq=False)
class IdentifierNode:
    name: str
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class FieldNode:
    ident: list[str]
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "".join("." + name for name in self.ident)


@dataclass(eq=False)
class VariableNode:
    ident: list[str]  # ["$x", "Field", ...]
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(eq=False)
class ChainNode:
    node: Node
    fields: list[str]
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join("." + name for name in self.fields)


@dataclass(eq=False)
class CommandNode:
    args: list[Node]
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, PipeNode) else str(arg) for arg in self.args)


@dataclass(eq=False)
class PipeNode:
    decl: list[VariableNode]
    cmds: list[CommandNode]
    is_assign: bool = False
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        text = ""
        if self.decl:
            text = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return text + " | ".join(str(cmd) for cmd in self.cmds)


@dataclass(eq=False)
class ActionNode:
    pipe: PipeNode
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(eq=False)
class ListNode:
    nodes: list[Node] = field(default_factory=list)
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "".join(str(node) if not isinstance(node, TextNode) else node.text for node in self.nodes)


@dataclass(eq=False)
class BranchNode:
    keyword: str
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None = None
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            text += "{{else}}" + str(self.else_list)
        return text + "{{end}}"


class IfNode(BranchNode):
    pass


class RangeNode(BranchNode):
    pass


class WithNode(BranchNode):
    pass


@dataclass(eq=False)
class TemplateNode:
    name: str
    pipe: PipeNode | None
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        quoted = '"' + self.name + '"'
        return "{{template " + quoted + (" " + str(self.pipe) if self.pipe else "") + "}}"


@dataclass(eq=False)
class BreakNode:
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(eq=False)
class ContinueNode:
    line: int = 0
    pos: int = 0  # byte offset in the template text, for error positions

    def __str__(self) -> str:
        return "{{continue}}"


Node = (
    TextNode
    | CommentNode
    | DotNode
    | NilNode
    | BoolNode
    | NumberNode
    | StringNode
    | IdentifierNode
    | FieldNode
    | VariableNode
    | ChainNode
    | CommandNode
    | PipeNode
    | ActionNode
    | ListNode
    | BranchNode
    | TemplateNode
    | BreakNode
    | ContinueNode
)
