"""Running a parsed template over data, with Go's text/template semantics and ``missingkey=zero``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pollama.config import Limits
from pollama.templates.gotemplate.fmt import TextTooLong, go_string, map_key_order, type_name
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
from pollama.templates.gotemplate.parse import Tree

__all__ = [
    "AnyFunction", "BoundedFunction", "ExecError", "ExecLimitError", "Function", "LazyFunction", "execute", "is_true",
]  # fmt: skip

Function = Callable[..., Any]
# Go's maxExecDepth is 100,000 nested template calls; Python's stack would overflow long before.
MAX_DEPTH = 100


class ExecError(ValueError):
    """A failure while executing; the message is Go's (``template: name:line:col: executing ...``)."""


class ExecLimitError(ExecError):
    """An execution ran past a budget of ``Limits`` (steps, or bytes of text); Go has no such limit."""


@dataclass(frozen=True)
class LazyFunction:
    """A builtin whose arguments are evaluated on demand (``and``/``or`` short-circuit)."""

    call: Callable[[list[Callable[[], Any]]], Any]


@dataclass(frozen=True)
class BoundedFunction:
    """A builtin that can make any length of text from short arguments (``printf``'s padding): it is called with
    the most characters it may make first, and raises ``TextTooLong`` rather than make more."""

    call: Callable[..., str]


AnyFunction = Function | LazyFunction | BoundedFunction


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Failure(Exception):
    def __init__(self, message: str, *, over_limit: bool = False):
        super().__init__(message)
        self.message = message
        self.over_limit = over_limit


class _Invalid:
    """No value at all (Go's invalid reflect.Value): what nil data is, and what fields of it give."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Any = _Invalid()


def is_true(value: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, lists and maps are false; anything else is true."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, bool | int | float | complex | str | list | tuple | dict):
        return bool(value)
    return True


def execute(tree: Tree, data: Any, functions: dict[str, AnyFunction], limits: Limits) -> str:
    """Run ``tree`` over ``data``; ``ExecLimitError`` as soon as it passes ``limits``' steps or bytes of text."""
    state = _State(tree, functions, limits)
    dot = NO_VALUE if data is None else data
    state.variables = [("$", dot)]
    try:
        state.walk(dot, tree.root)
    except _Failure as failure:
        raise (ExecLimitError if failure.over_limit else ExecError)(failure.message) from None
    except RecursionError:
        raise ExecError(f"template: {tree.name}: exceeded maximum template depth ({MAX_DEPTH})") from None
    return "".join(state.out)


class _State:
    def __init__(self, tree: Tree, functions: dict[str, AnyFunction], limits: Limits):
        self.tree = tree
        self.functions = functions
        self.limits = limits
        self.steps = 0
        self.written = 0  # bytes of output
        # Text that functions make counts apart from output: kept in variables rather than written, it is what
        # would grow memory without ever reaching the output.
        self.made = 0
        self.out: list[str] = []
        self.variables: list[tuple[str, Any]] = []
        self.node: Node | None = None
        self.depth = 0
        self.template_name = tree.name  # the template being executed, for error messages

    def fail(self, message: str) -> _Failure:
        if self.node is None:
            return _Failure(f"template: {self.tree.name}: {message}")
        return _Failure(f"{self.executing()} at <{self.node}>: {message}")

    def over_limit(self, limit: str) -> _Failure:
        # Without Go's "at <node>": the node may be a whole range body; its line and column say where.
        return _Failure(f"{self.executing()} exceeds the limit of {limit}", over_limit=True)

    def executing(self) -> str:
        text = self.tree.text
        pos = min(getattr(self.node, "pos", 0), len(text))
        line_start = text.rfind("\n", 0, pos) + 1
        column = len(text[line_start:pos].encode())
        line = text.count("\n", 0, pos) + 1
        return f'template: {self.tree.name}:{line}:{column}: executing "{self.template_name}"'

    # --- budgets ----------------------------------------------------------------------------------

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.template_max_steps:
            raise self.over_limit(f"{self.limits.template_max_steps} steps")

    def write(self, text: str) -> None:
        self.written += _utf8_size(text)
        if self.written > self.limits.template_max_output:
            raise self.over_limit(f"{self.limits.template_max_output} bytes of output")
        self.out.append(text)

    def count_made(self, text: str) -> None:
        self.made += _utf8_size(text)
        if self.made > self.limits.template_max_output:
            raise self.over_limit(f"{self.limits.template_max_output} bytes of text")

    # --- variables --------------------------------------------------------------------------------

    def push(self, name: str, value: Any) -> None:
        self.variables.append((name, value))

    def set_variable(self, name: str, value: Any) -> None:
        for index in range(len(self.variables) - 1, -1, -1):
            if self.variables[index][0] == name:
                self.variables[index] = (name, value)
                return
        raise self.fail(f"undefined variable: {name}")

    def variable(self, name: str) -> Any:
        for index in range(len(self.variables) - 1, -1, -1):
            if self.variables[index][0] == name:
                return self.variables[index][1]
        raise self.fail(f"undefined variable: {name}")

    # --- statements -------------------------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        self.node = node
        if isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
            return
        self.step()
        if isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ActionNode):
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.node = node
                self.write(self.printable(value))
        elif isinstance(node, IfNode | WithNode):
            self.branch(dot, node)
        elif isinstance(node, RangeNode):
            self.range(dot, node)
        elif isinstance(node, TemplateNode):
            self.template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, CommentNode):
            pass
        else:
            raise self.fail(f"unknown node: {node}")

    def printable(self, value: Any) -> str:
        if value is None or value is NO_VALUE:
            return "<no value>"
        if callable(value) and not hasattr(value, "__go_str__"):
            raise self.fail(f"can't print {self.node} of type {type_name(value)}")
        return go_string(value)

    def branch(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.variables)
        value = self.pipeline(dot, node.pipe)
        if is_true(value):
            self.walk(value if isinstance(node, WithNode) else dot, node.list)
        elif node.else_list is not None:
            self.walk(dot, node.else_list)
        del self.variables[mark:]

    def range(self, dot: Any, node: RangeNode) -> None:
        mark = len(self.variables)
        value = self.pipeline(dot, node.pipe)
        self.node = node.pipe
        # Lazily: the step budget must end a range over a huge count long before a list of it could be made.
        pairs: Iterable[tuple[Any, Any]]
        if value is None:
            pairs = ()
        elif isinstance(value, list | tuple):
            pairs = enumerate(value)
        elif isinstance(value, dict):
            pairs = [(key, value[key]) for key in sorted(value, key=map_key_order)]
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = enumerate(range(value))
        else:
            raise self.fail(f"range can't iterate over {go_string(value)}")
        empty = True
        for key, element in pairs:
            empty = False
            self.node = node.pipe
            self.step()
            # The declared variables are set afresh for each element; an outer "$x =" sticks.
            if node.pipe.decl:
                if node.pipe.is_assign:
                    self._assign_range(node.pipe, key, element)
                elif len(node.pipe.decl) == 1:
                    self.variables[mark : mark + 1] = [(node.pipe.decl[0].ident[0], element)]
                else:
                    self.variables[mark : mark + 2] = [
                        (node.pipe.decl[0].ident[0], key),
                        (node.pipe.decl[1].ident[0], element),
                    ]
            inner = len(self.variables)
            try:
                self.walk(element, node.list)
            except _Break:
                del self.variables[inner:]
                break
            except _Continue:
                pass
            del self.variables[inner:]
        if empty and node.else_list is not None:
            self.walk(dot, node.else_list)
        del self.variables[mark:]

    def _assign_range(self, pipe: PipeNode, key: Any, element: Any) -> None:
        if len(pipe.decl) == 1:
            self.set_variable(pipe.decl[0].ident[0], element)
        else:
            self.set_variable(pipe.decl[0].ident[0], key)
            self.set_variable(pipe.decl[1].ident[0], element)

    def template(self, dot: Any, node: TemplateNode) -> None:
        body = self.tree.templates.get(node.name)
        if body is None:
            raise self.fail(f'template "{node.name}" not defined')
        value = self.pipeline(dot, node.pipe) if node.pipe is not None else None
        self.depth += 1
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"exceeded maximum template depth ({MAX_DEPTH})")
        saved, saved_name = self.variables, self.template_name
        self.variables = [("$", value)]
        self.template_name = node.name
        try:
            self.walk(value, body)
        finally:
            self.variables, self.template_name = saved, saved_name
            self.depth -= 1

    # --- expressions ------------------------------------------------------------------------------

    def pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = _NO_FINAL
        for command in pipe.cmds:
            value = self.command(dot, command, value)
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_variable(variable.ident[0], value)
            else:
                self.push(variable.ident[0], value)
        return value

    def command(self, dot: Any, command: CommandNode, final: Any) -> Any:
        first = command.args[0]
        self.node = first
        if isinstance(first, NilNode):
            raise self.fail("nil is not a command")
        if isinstance(first, IdentifierNode):
            return self.call(dot, first, command, command.args[1:], final)
        if len(command.args) > 1 or final is not _NO_FINAL:
            if isinstance(first, FieldNode | ChainNode | VariableNode) and _field_name(first):
                raise self.fail(f"{_field_name(first)} is not a method but has arguments")
            raise self.fail(f"can't give argument to non-function {first}")
        return self.argument(dot, first)

    def argument(self, dot: Any, node: Node) -> Any:
        self.node = node
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return node.value
        if isinstance(node, StringNode):
            return node.text
        if isinstance(node, FieldNode):
            return self.fields(dot, node.ident, node)
        if isinstance(node, VariableNode):
            value = self.variable(node.ident[0])
            return self.fields(value, node.ident[1:], node)
        if isinstance(node, PipeNode):
            return self.pipeline(dot, node)
        if isinstance(node, ChainNode):
            value = self.argument(dot, node.node)
            self.node = node
            return self.fields(value, node.fields, node)
        if isinstance(node, IdentifierNode):
            # A function named as an argument is called with no arguments (Go's evalArg -> evalFunction).
            return self.call(dot, node, node, [], _NO_FINAL)
        raise self.fail(f"can't evaluate {node}")

    def thunk(self, dot: Any, node: Node) -> Callable[[], Any]:
        """An argument, evaluated when the function asks for it (and/or stop at the first that decides)."""
        return lambda: _nil(self.argument(dot, node))

    def fields(self, value: Any, names: list[str], node: Node) -> Any:
        for name in names:
            self.node = node
            if value is NO_VALUE:
                return NO_VALUE
            if isinstance(value, dict):
                value = value.get(name)
            elif value is None:
                raise self.fail(f"nil pointer evaluating interface {{}}.{name}")
            elif not isinstance(value, bool | int | float | str | list | tuple) and hasattr(value, name):
                value = getattr(value, name)
            else:
                # Values held in maps and lists are Go interfaces, whichever value they hold.
                raise self.fail(f"can't evaluate field {name} in type interface {{}}")
        return value

    def call(self, dot: Any, identifier: IdentifierNode, node: Node, args: list[Node], final: Any) -> Any:
        """Go's evalFunction and evalCall: ``node`` is the command (or, for a function named as an argument,
        the identifier itself) that a failed call is reported at."""
        name = identifier.name
        self.node = identifier
        function = self.functions.get(name)
        if function is None:
            raise self.fail(f'"{name}" is not a defined function')
        count = len(args) + (final is not _NO_FINAL)
        least, most = ARITY.get(name, (0, None))
        if most is None and count < least:
            # Go counts only the written arguments here, not a piped-in final value.
            raise self.fail(f"wrong number of args for {name}: want at least {least} got {len(args)}")
        if most is not None and not least <= count <= most:
            raise self.fail(f"wrong number of args for {name}: want {least} got {count}")
        self.node = node
        self.step()
        thunks: list[Callable[[], Any]] = [self.thunk(dot, arg) for arg in args]
        if final is not _NO_FINAL:
            thunks.append(lambda: final)
        arguments: list[Any] = []
        try:
            if isinstance(function, LazyFunction):
                result = function.call(thunks)
            elif isinstance(function, BoundedFunction):
                arguments = [thunk() for thunk in thunks]
                result = function.call(self.limits.template_max_output - self.made, *arguments)
            else:
                arguments = [thunk() for thunk in thunks]
                result = function(*arguments)
        except _Failure:
            raise
        except TextTooLong:
            self.node = node
            raise self.over_limit(f"{self.limits.template_max_output} bytes of text") from None
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as error:
            self.node = node
            raise self.fail(f"error calling {name}: {error}") from None
        # What a function hands back of its arguments (and/or hand back one) is no new text.
        new = not isinstance(function, LazyFunction) and not any(result is argument for argument in arguments)
        if new and isinstance(result, str):
            self.node = node
            self.count_made(result)
        return result


# Fixed and minimum argument counts of Go's builtins (and Ollama's json): (least, most or None).
ARITY: dict[str, tuple[int, int | None]] = {
    "and": (1, None), "or": (1, None), "not": (1, 1), "len": (1, 1), "index": (1, None), "slice": (1, None),
    "eq": (1, None), "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2), "printf": (1, None),
    "call": (1, None), "json": (1, 1),
}  # fmt: skip


def _field_name(node: Node) -> str:
    if isinstance(node, FieldNode):
        return node.ident[-1]
    if isinstance(node, VariableNode | ChainNode):
        names = node.ident[1:] if isinstance(node, VariableNode) else node.fields
        return names[-1] if names else ""
    return ""


def _utf8_size(text: str) -> int:
    # Lone surrogates can come from JSON ("\ud800"); they still take three bytes each.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _nil(value: Any) -> Any:
    return None if value is NO_VALUE else value


class _NoFinal:
    def __repr__(self) -> str:
        return "<no final value>"


_NO_FINAL: Any = _NoFinal()
