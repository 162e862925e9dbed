"""Values printed as Go's ``fmt`` prints them: ``%v`` for template output, and ``Sprintf``'s common verbs."""

from __future__ import annotations

import re
from typing import Any

from pollama.gocompat.gostrconv import format_float, quote

__all__ = ["TextTooLong", "go_string", "map_key_order", "sprint", "sprintf", "sprintln", "type_name"]


class TextTooLong(Exception):
    """Formatting would make more text than its caller allows."""


def type_name(value: Any) -> str:
    """The Go type a value stands for, in error messages."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def go_string(value: Any, *, nil: str = "<nil>") -> str:
    """``%v`` of a value; objects offering ``__go_str__`` are Go Stringers."""
    if value is None:
        return nil
    if hasattr(value, "__go_str__"):
        return value.__go_str__()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, complex):
        return f"({format_float(value.real)}{'+' if value.imag >= 0 else ''}{format_float(value.imag)}i)"
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "map[" + " ".join(f"{go_string(k)}:{go_string(value[k])}" for k in sorted(value, key=map_key_order)) + "]"
        )
    return str(value)


def map_key_order(key: Any) -> Any:
    """Go's order of map keys (fmt and range sort them): numbers by value, strings by their bytes."""
    return (0, key) if isinstance(key, int | float) and not isinstance(key, bool) else (1, str(key))


def sprint(*args: Any) -> str:
    """``fmt.Sprint``: a space between operands when neither side is a string."""
    out: list[str] = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(go_string(arg))
    return "".join(out)


def sprintln(*args: Any) -> str:
    return " ".join(go_string(arg) for arg in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?(?:\[(\d+)\])?([a-zA-Z%!]|$)")


def sprintf(template: str, *args: Any, max_length: int | None = None) -> str:
    """``fmt.Sprintf`` for the verbs templates use: %v %s %q %d %x %X %o %b %c %f %F %e %E %g %G %t %T %%.

    Past ``max_length`` characters it raises ``TextTooLong``, before padding or digits (a width or precision of
    any size) are made.
    """
    out: list[str] = []
    length = 0

    def add(text: str) -> None:
        nonlocal length
        length += len(text)
        if max_length is not None and length > max_length:
            raise TextTooLong
        out.append(text)

    def allow(size: str | None) -> None:
        if max_length is not None and size and size.isdigit() and length + int(size) > max_length:
            raise TextTooLong

    position = 0
    arg_index = 0
    for match in _VERB.finditer(template):
        add(template[position : match.start()])
        position = match.end()
        flags, width, precision, argument, verb = match.groups()
        if verb == "%":
            add("%")
            continue
        if not verb:
            add("%!(NOVERB)")
            continue
        if argument is not None:  # %[n]v: explicit argument index, counting from 1
            arg_index = int(argument) - 1
        if width == "*":
            if arg_index >= len(args) or not isinstance(args[arg_index], int):
                add(f"%!{verb}(BADWIDTH)")
                continue
            width = str(args[arg_index])
            arg_index += 1
        if arg_index >= len(args):
            add(f"%!{verb}(MISSING)")
            continue
        arg = args[arg_index]
        arg_index += 1
        has_precision = match.group(0).count(".") > 0
        allow(width)
        if verb in "fFeEgG":
            allow(precision)
        add(_pad(_format_one(arg, verb, flags, precision, has_precision), flags, width))
    add(template[position:])
    if arg_index < len(args) and not any(match.group(4) for match in _VERB.finditer(template)):
        extra = ", ".join(f"{type_name(arg)}={go_string(arg)}" for arg in args[arg_index:])
        add(f"%!(EXTRA {extra})")
    return "".join(out)


def quote_ascii(text: str) -> str:
    """``strconv.QuoteToASCII``: like ``quote``, with every non-ASCII character escaped."""
    quoted = quote(text)
    return "".join(
        c if c.isascii() else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") for c in quoted
    )


def go_syntax(value: Any) -> str:
    """``%#v`` of template values: Go syntax for strings, lists and maps of ``interface {}``."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "[]interface {}{" + ", ".join(go_syntax(item) for item in value) + "}"
    if isinstance(value, dict):
        items = (f"{go_syntax(key)}:{go_syntax(value[key])}" for key in sorted(value, key=map_key_order))
        return "map[string]interface {}{" + ", ".join(items) + "}"
    if value is None:
        return "interface {}(nil)"
    return go_string(value)


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width or len(text) >= int(width):
        return text
    if "-" in flags:
        return text.ljust(int(width))
    if "0" in flags and text[:1] in "+-" and text[1:2].isdigit():
        return text[0] + text[1:].rjust(int(width) - 1, "0")
    return text.rjust(int(width), "0" if "0" in flags and (text[:1].isdigit()) else " ")


def _format_one(arg: Any, verb: str, flags: str, precision: str | None, has_precision: bool) -> str:
    if arg is None:
        return "<nil>" if verb in "vT" else f"%!{verb}(<nil>)"
    if isinstance(arg, list | tuple) and verb in "sqdxXobeEfFgGtc":
        # Go formats a slice element by element.
        return "[" + " ".join(_format_one(item, verb, flags, precision, has_precision) for item in arg) + "]"
    number = isinstance(arg, int | float) and not isinstance(arg, bool)
    sign = "+" if "+" in flags else " " if " " in flags else ""
    if verb == "T":
        return type_name(arg)
    if verb == "v" and "#" in flags:
        return go_syntax(arg)
    if verb == "v" or (verb == "s" and not number and not isinstance(arg, bool)):
        text = go_string(arg)
        return text[: int(precision or 0)] if verb == "s" and has_precision else text
    if verb == "q" and isinstance(arg, str):
        return quote_ascii(arg) if "+" in flags else quote(arg)
    if verb == "t" and isinstance(arg, bool):
        return "true" if arg else "false"
    if isinstance(arg, int) and not isinstance(arg, bool):
        if verb == "d":
            return f"{arg:{sign}d}"
        if verb in "xXob":
            return format(arg, verb if verb != "X" else "X")
        if verb == "c":
            return chr(arg)
        if verb == "U":
            return f"U+{arg:04X}"
        if verb == "q":
            return "'" + chr(arg) + "'"
    if isinstance(arg, str) and verb in "xX":
        digits = arg.encode().hex(" ") if " " in flags else arg.encode().hex()
        return digits.upper() if verb == "X" else digits
    if number and verb in "fFeEgG":
        value = float(arg)
        if verb in "gG" and not has_precision:
            text = format_float(value, threshold=21)
            return (sign if value >= 0 else "") + (text.upper() if verb == "G" else text)
        places = int(precision) if has_precision and precision else (0 if has_precision else 6)
        text = f"{value:{sign}.{places}{verb}}"
        return re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", text) if verb in "eE" else text
    return f"%!{verb}({type_name(arg)}={go_string(arg)})"
