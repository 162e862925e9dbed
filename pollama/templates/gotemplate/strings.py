"""Go string and character literals (``strconv.Unquote``)."""

from __future__ import annotations

__all__ = ["unquote"]

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def unquote(literal: str) -> str:
    """The value of a Go ``"..."``, raw ``\\`...\\``` or ``'c'`` literal; ValueError on a bad escape."""
    quote, body = literal[0], literal[1:-1]
    if quote == "`":
        return body.replace("\r", "")
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        escape = body[index + 1 : index + 2]
        if escape in _SIMPLE and (escape != "'" or quote == "'") and (escape != '"' or quote == '"'):
            out.append(_SIMPLE[escape])
            index += 2
        elif escape in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[escape]
            digits = body[index + 2 : index + 2 + size]
            if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 16)) if escape != "x" else bytes([int(digits, 16)]).decode("latin-1"))
            index += 2 + size
        elif escape in "01234567" and escape:
            digits = body[index + 1 : index + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits):
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            index += 4
        else:
            raise ValueError("invalid syntax")
    result = "".join(out)
    if quote == "'" and len(result) != 1:
        raise ValueError("invalid syntax")
    return result
