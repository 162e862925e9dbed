"""Parsing a Go template into a tree (Go's text/template/parse), with Go's error messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pollama.templates.gotemplate.lexer import Item, Kind, TemplateSyntaxError, lex
from pollama.templates.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
)  # fmt: skip
from pollama.templates.gotemplate.strings import unquote

__all__ = ["Tree", "parse"]

# Go allows 10,000 levels of parentheses; Python's stack allows far fewer, and real templates nest a few.
MAX_NESTING = 100
_OPERAND_STARTS = {
    Kind.BOOL, Kind.CHAR, Kind.DOT, Kind.FIELD, Kind.IDENTIFIER, Kind.LEFT_PAREN, Kind.NUMBER,
    Kind.RAW_STRING, Kind.STRING, Kind.VARIABLE,
}  # fmt: skip


@dataclass
class Tree:
    """A parsed template: its main list and the templates it defines (``define``/``block``)."""

    name: str
    root: ListNode
    templates: dict[str, ListNode] = field(default_factory=dict)
    text: str = ""


def parse(name: str, text: str, functions: Iterable[str]) -> Tree:
    """Parse ``text``; ``functions`` are the names an identifier may call (Go checks them at parse time)."""
    parser = _Parser(name, lex(name, text), set(functions))
    root = parser.parse_root()
    return Tree(name, root, parser.templates, text)


class _Parser:
    def __init__(self, name: str, items: list[Item], functions: set[str]):
        self.name = name
        self.items = items
        self.index = 0
        self.functions = functions
        self.templates: dict[str, ListNode] = {}
        self.variables: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0  # control structures and parenthesized pipelines open around the current item

    @contextlib.contextmanager
    def nested(self, item: Item) -> Iterator[None]:
        """One level deeper; parsing and executing recurse per level, so the levels are bounded."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"max nesting depth exceeded ({MAX_NESTING})", item)
        try:
            yield
        finally:
            self.depth -= 1

    # --- items ------------------------------------------------------------------------------------

    def peek(self) -> Item:
        return self.items[self.index]

    def next(self) -> Item:
        item = self.items[self.index]
        self.index += 1
        return item

    def peek_non_space(self) -> Item:
        while self.items[self.index].kind is Kind.SPACE:
            self.index += 1
        return self.items[self.index]

    def next_non_space(self) -> Item:
        item = self.peek_non_space()
        self.index += 1
        return item

    def error(self, message: str, item: Item | None = None) -> TemplateSyntaxError:
        line = (item or self.items[max(self.index - 1, 0)]).line
        return TemplateSyntaxError(f"template: {self.name}:{line}: {message}")

    def unexpected(self, item: Item, context: str) -> TemplateSyntaxError:
        if item.kind is Kind.EOF:
            return self.error(f"unexpected EOF in {context}", item)
        shown = "<" + item.value + ">" if item.kind is not Kind.RIGHT else '"}}"'
        if item.kind in (Kind.KEYWORD, Kind.IDENTIFIER, Kind.FIELD, Kind.VARIABLE, Kind.NUMBER, Kind.BOOL):
            shown = "<" + item.value + ">"
        return self.error(f"unexpected {shown} in {context}", item)

    def expect(self, kind: Kind, context: str) -> Item:
        item = self.next_non_space()
        if item.kind is not kind:
            raise self.unexpected(item, context)
        return item

    # --- lists and actions ------------------------------------------------------------------------

    def parse_root(self) -> ListNode:
        root = ListNode(line=1)
        while self.peek().kind is not Kind.EOF:
            if self.peek().kind is Kind.LEFT and self._at_define():
                self.parse_define()
                continue
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                raise self.error(f"unexpected {node}", node.item)
            root.nodes.append(node)
        return root

    def _at_define(self) -> bool:
        index = self.index + 1
        while self.items[index].kind is Kind.SPACE:
            index += 1
        return self.items[index].kind is Kind.KEYWORD and self.items[index].value == "define"

    def parse_define(self) -> None:
        self.next()  # {{
        self.next_non_space()  # define
        name_item = self.next_non_space()
        if name_item.kind not in (Kind.STRING, Kind.RAW_STRING):
            raise self.unexpected(name_item, "define clause")
        name = unquote(name_item.value)
        self.expect(Kind.RIGHT, "define clause")
        self.template_body("define", name, name_item)

    def template_body(self, keyword: str, name: str, item: Item) -> None:
        """The body of a ``define`` or ``block``, up to its ``{{end}}``: a template of its own, with its own ``$``."""
        saved = self.variables
        self.variables = ["$"]
        body, end = self.item_list()
        self.variables = saved
        if not isinstance(end, _End):
            raise self.error(f"unexpected {{{{else}}}} in {keyword}", end.item)
        self.add_template(name, body, item)

    def add_template(self, name: str, body: ListNode, item: Item) -> None:
        """Go allows redefining a template only when one of the two definitions is empty."""
        existing = self.templates.get(name)
        if existing is not None and _has_content(existing) and _has_content(body):
            raise self.error(f'template: multiple definition of template "{name}"', item)
        if existing is None or _has_content(body):
            self.templates[name] = body

    def item_list(self) -> tuple[ListNode, _End | _Else]:
        """Nodes up to ``{{end}}`` or ``{{else}}``, which is returned too."""
        body = ListNode(line=self.peek().line)
        while True:
            if self.peek().kind is Kind.EOF:
                raise self.error("unexpected EOF", self.peek())
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return body, node
            body.nodes.append(node)

    def text_or_action(self) -> Node | _End | _Else:
        item = self.next()
        if item.kind is Kind.TEXT:
            return TextNode(item.value, item.line, item.pos)
        if item.kind is Kind.COMMENT:
            return CommentNode(item.value, item.line)
        if item.kind is Kind.LEFT:
            return self.action()
        raise self.unexpected(item, "input")

    def action(self) -> Node | _End | _Else:
        item = self.peek_non_space()
        if item.kind is Kind.KEYWORD:
            keyword = item.value
            if keyword == "end":
                self.next_non_space()
                self.expect(Kind.RIGHT, "end")
                return _End(item)
            if keyword == "else":
                self.next_non_space()
                return self.else_control(item)
            if keyword in ("if", "range", "with"):
                self.next_non_space()
                return self.branch(keyword, item)
            if keyword in ("template", "block"):
                self.next_non_space()
                return self.template_control(keyword, item)
            if keyword in ("break", "continue"):
                self.next_non_space()
                if not self.range_depth:
                    raise self.error(f"{{{{{keyword}}}}} outside {{{{range}}}}", item)
                self.expect(Kind.RIGHT, keyword)
                return BreakNode(item.line) if keyword == "break" else ContinueNode(item.line)
            if keyword == "define":
                raise self.error("unexpected <define> in command", item)
        return ActionNode(self.pipeline("command", Kind.RIGHT), item.line, item.pos)

    def else_control(self, item: Item) -> _Else:
        following = self.peek_non_space()
        if following.kind is Kind.KEYWORD and following.value in ("if", "with"):
            return _Else(item, chained=following.value)
        self.expect(Kind.RIGHT, "else")
        return _Else(item)

    def branch(self, keyword: str, item: Item) -> BranchNode:
        mark = len(self.variables)
        pipe = self.pipeline(keyword, Kind.RIGHT)
        if keyword == "range":
            self.range_depth += 1
        with self.nested(item):
            body, end = self.item_list()
        if keyword == "range":
            self.range_depth -= 1
        else_list: ListNode | None = None
        if isinstance(end, _Else):
            if end.chained and keyword == "range":
                raise self.error(f"unexpected <{end.chained}> in input", end.item)
            if end.chained:
                # "{{else if x}}" is "{{else}}{{if x}}...{{end}}{{end}}" sharing the one {{end}}.
                self.next_non_space()
                with self.nested(end.item):  # each "else if" is one more level when executed
                    nested = self.branch(end.chained, end.item)
                else_list = ListNode([nested], end.item.line)
            else:
                else_list, final = self.item_list()
                if isinstance(final, _Else):
                    raise self.error(f"expected end; found {final}", final.item)
        del self.variables[mark:]
        kind = {"if": IfNode, "range": RangeNode, "with": WithNode}[keyword]
        return kind(keyword, pipe, body, else_list, item.line, item.pos)

    def template_control(self, keyword: str, item: Item) -> TemplateNode:
        context = f"{keyword} clause"
        name_item = self.next_non_space()
        if name_item.kind not in (Kind.STRING, Kind.RAW_STRING):
            raise self.unexpected(name_item, context)
        name = unquote(name_item.value)
        pipe: PipeNode | None = None
        if self.peek_non_space().kind is not Kind.RIGHT:
            pipe = self.pipeline(context, Kind.RIGHT)
        else:
            self.next_non_space()
        if keyword == "block":
            self.template_body("block", name, name_item)
        return TemplateNode(name, pipe, item.line, item.pos)

    # --- pipelines --------------------------------------------------------------------------------

    def pipeline(self, context: str, end: Kind) -> PipeNode:
        first = self.peek_non_space()
        decl, is_assign = self.declarations()
        pipe = PipeNode(decl, [], is_assign, first.line, first.pos)
        while True:
            item = self.peek_non_space()
            if item.kind is end:
                self.next_non_space()
                if not pipe.cmds:
                    raise self.error(f"missing value for {context}", item)
                return pipe
            if item.kind in _OPERAND_STARTS or (item.kind is Kind.KEYWORD and item.value == "nil"):
                pipe.cmds.append(self.command(end))
                continue
            raise self.unexpected(item, context)

    def declarations(self) -> tuple[list[VariableNode], bool]:
        start = self.index
        item = self.peek_non_space()
        if item.kind is not Kind.VARIABLE:
            return [], False
        self.next_non_space()
        names = [item]
        following = self.peek_non_space()
        if following.kind is Kind.COMMA:
            self.next_non_space()
            second = self.next_non_space()
            if second.kind is not Kind.VARIABLE:
                raise self.error(f"expected variable after comma; found {second.value}", second)
            names.append(second)
            following = self.peek_non_space()
            if following.kind not in (Kind.DECLARE, Kind.ASSIGN):
                raise self.error("too many declarations in range", following)
        if following.kind in (Kind.DECLARE, Kind.ASSIGN):
            self.next_non_space()
            is_assign = following.kind is Kind.ASSIGN
            if not is_assign:
                self.variables.extend(name.value for name in names)
            return [VariableNode([name.value], name.line) for name in names], is_assign
        self.index = start
        return [], False

    def command(self, end: Kind) -> CommandNode:
        first = self.peek_non_space()
        command = CommandNode([], first.line, first.pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            command.args.append(operand)
            item = self.peek()
            if item.kind is Kind.SPACE:
                self.next()
                item = self.peek_non_space()
                if item.kind in _OPERAND_STARTS or (item.kind is Kind.KEYWORD and item.value == "nil"):
                    continue
            if item.kind is end or item.kind is Kind.RIGHT_PAREN:
                break
            if item.kind is Kind.PIPE:
                self.next_non_space()
                break
            raise self.unexpected(item, "operand")
        return command

    def operand(self) -> Node:
        node = self.term()
        if self.peek().kind is not Kind.FIELD:
            return node
        chain: list[str] = []
        last = self.peek()
        while self.peek().kind is Kind.FIELD:
            last = self.next()
            chain.append(last.value[1:])
        # Go places a field chain at its last field.
        if isinstance(node, FieldNode):
            return FieldNode(node.ident + chain, node.line, last.pos)
        if isinstance(node, VariableNode):
            return VariableNode(node.ident + chain, node.line, last.pos)
        if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
            raise self.error(f"unexpected . after term {str(node)!r}".replace("'", '"'))
        return ChainNode(node, chain, node.line, node.pos)

    def term(self) -> Node:
        item = self.peek_non_space()
        node = self._term()
        node.pos = item.pos
        return node

    def _term(self) -> Node:
        item = self.next_non_space()
        kind = item.kind
        if kind is Kind.IDENTIFIER:
            if item.value not in self.functions:
                raise self.error(f'function "{item.value}" not defined', item)
            return IdentifierNode(item.value, item.line)
        if kind is Kind.DOT:
            return DotNode(item.line)
        if kind is Kind.KEYWORD and item.value == "nil":
            return NilNode(item.line)
        if kind is Kind.VARIABLE:
            if item.value not in self.variables:
                raise self.error(f'undefined variable "{item.value}"', item)
            return VariableNode([item.value], item.line)
        if kind is Kind.FIELD:
            return FieldNode([item.value[1:]], item.line)
        if kind is Kind.BOOL:
            return BoolNode(item.value == "true", item.line)
        if kind in (Kind.NUMBER, Kind.CHAR):
            return _number(self, item)
        if kind in (Kind.STRING, Kind.RAW_STRING):
            try:
                return StringNode(item.value, unquote(item.value), item.line)
            except ValueError as error:
                raise self.error(str(error), item) from None
        if kind is Kind.LEFT_PAREN:
            with self.nested(item):
                return self.pipeline("parenthesized pipeline", Kind.RIGHT_PAREN)
        raise self.unexpected(item, "operand")


def _has_content(body: ListNode) -> bool:
    return any(not isinstance(node, TextNode) or node.text.strip() for node in body.nodes)


def _shown(item: Item) -> str:
    """An item as Go's ``item.String`` shows it in errors: keywords in angle brackets, the rest quoted."""
    if item.kind is Kind.EOF:
        return "EOF"
    if item.kind is Kind.KEYWORD:
        return f"<{item.value}>"
    quoted = '"' + item.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if len(item.value) > 10:
        return '"' + item.value[:10].replace("\\", "\\\\").replace('"', '\\"') + '"...'
    return quoted


@dataclass
class _End:
    item: Item

    def __str__(self) -> str:
        return "{{end}}"


@dataclass
class _Else:
    item: Item
    chained: str = ""

    def __str__(self) -> str:
        return "{{else}}"


def _number(parser: _Parser, item: Item) -> NumberNode:
    text = item.value
    if item.kind is Kind.CHAR:
        try:
            value = unquote(text)
        except ValueError as error:
            raise parser.error(str(error), item) from None
        return NumberNode(text, ord(value), is_char=True, line=item.line)
    clean = text.replace("_", "")
    try:
        if clean.endswith("i"):
            return NumberNode(text, complex(0, float(clean[:-1])), line=item.line)
        lowered = clean.lower().lstrip("+-")
        is_hex = lowered.startswith("0x")
        if not is_hex and any(c in lowered for c in ".e") or (is_hex and "p" in lowered):
            return NumberNode(text, float.fromhex(clean) if is_hex else float(clean), line=item.line)
        if lowered.startswith(("0o", "0b", "0x")):
            return NumberNode(text, int(clean, 0), line=item.line)
        if len(lowered) > 1 and lowered.startswith("0"):
            return NumberNode(text, int(clean.replace("0", "0o", 1) if clean[0] == "0" else clean, 0), line=item.line)
        return NumberNode(text, int(clean), line=item.line)
    except ValueError:
        raise parser.error(f'illegal number syntax: "{text}"', item) from None
