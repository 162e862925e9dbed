"""Model names: ``[scheme://][host/][namespace/]model[:tag]``, as Ollama parses them.

A valid name has all four parts after defaults are filled in, and every part
starts with a letter, digit or underscore, so no part can be empty, ``.`` or
``..``: a valid name always maps to a path inside the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pollama.gocompat.gostrconv import quote

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TAG",
    "InvalidModelName",
    "ModelName",
    "parse_model_ref",
]

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

# A separator with nothing on one side yields this placeholder, which never validates.
MISSING = "!MISSING!"

_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL_OR_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")


class InvalidModelName(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__("invalid model name")
        self.text = text


@dataclass(frozen=True)
class ModelName:
    host: str = ""
    namespace: str = ""
    model: str = ""
    tag: str = ""
    scheme: str = ""

    @classmethod
    def parse_bare(cls, text: str) -> ModelName:
        """Split a name into its parts without filling in defaults."""
        tag = ""
        if text.rfind(":") > text.rfind("/"):
            text, tag = _cut_last(text, ":")
        if "/" not in text:
            return cls(model=text, tag=tag)
        text, model = _cut_last(text, "/")
        if "/" not in text:
            return cls(namespace=text, model=model, tag=tag)
        text, namespace = _cut_last(text, "/")
        scheme, sep, host = text.partition("://")
        if not sep:
            scheme, host = "", text
        return cls(host=host, namespace=namespace, model=model, tag=tag, scheme=scheme)

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse a name and fill in the default host, namespace, tag and scheme."""
        bare = cls.parse_bare(text)
        return replace(
            bare,
            host=bare.host or DEFAULT_HOST,
            namespace=bare.namespace or DEFAULT_NAMESPACE,
            tag=bare.tag or DEFAULT_TAG,
            scheme=bare.scheme or DEFAULT_SCHEME,
        )

    @classmethod
    def parse_valid(cls, text: str) -> ModelName:
        name = cls.parse(text)
        if not name.is_valid():
            raise InvalidModelName(text)
        return name

    @classmethod
    def from_parts(cls, parts: tuple[str, str, str, str]) -> ModelName | None:
        """The name of a manifest at ``manifests/<host>/<namespace>/<model>/<tag>``, if valid."""
        name = cls(*parts, scheme=DEFAULT_SCHEME)
        return name if name.is_valid() else None

    def is_valid(self) -> bool:
        return bool(
            _HOST.fullmatch(self.host)
            and _NAMESPACE.fullmatch(self.namespace)
            and _MODEL_OR_TAG.fullmatch(self.model)
            and _MODEL_OR_TAG.fullmatch(self.tag)
        )

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What two names must share to be the same model: names compare case-insensitively."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    def same_as(self, other: ModelName) -> bool:
        return self.key == other.key

    def display_shortest(self) -> str:
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def repository(self) -> str:
        """``namespace/model``, the repository path on a registry."""
        return f"{self.namespace}/{self.model}"

    def __str__(self) -> str:
        text = ""
        if self.host:
            text += self.host + "/"
        if self.namespace:
            text += self.namespace + "/"
        text += self.model
        if self.tag:
            text += ":" + self.tag
        return text


def _cut_last(text: str, sep: str) -> tuple[str, str]:
    before, _, after = text.rpartition(sep)
    return before or MISSING, after or MISSING


class ConflictingModelSource(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(f"use either :local or :cloud, not both: {quote(text)}")


def _split_source(ref: str) -> tuple[str, str]:
    """Cut a ``:local``/``:cloud`` (or ``-cloud`` tag) source suffix; the source is "" without one."""
    colon = ref.rfind(":")
    if colon < 0:
        return ref, ""
    suffix_raw = ref[colon + 1 :].strip()
    suffix = suffix_raw.lower()
    if suffix in ("cloud", "local"):
        return ref[:colon], suffix
    if "/" not in suffix_raw and suffix.endswith("-cloud"):
        return ref[: colon + 1] + suffix_raw[: -len("-cloud")], "cloud"
    return ref, ""


def parse_model_ref(text: str) -> ModelName:
    """Parse a model reference from a request, as Ollama's ``modelref.ParseRef`` does.

    ``:local`` only says "this machine", which is all pollama serves. A cloud reference keeps
    Ollama's legacy local name for cloud stubs (``m:cloud``, ``m:tag-cloud``), so it resolves
    only if such a stub exists. Raises ``ValueError("model is required")`` for an empty
    reference, ``ConflictingModelSource`` for two source suffixes and ``InvalidModelName``.
    """
    ref = text.strip()
    if not ref:
        raise ValueError("model is required")
    base, source = _split_source(ref)
    if source and _split_source(base)[1]:
        raise ConflictingModelSource(ref)
    if source == "cloud":
        base += "-cloud" if base.rfind(":") > base.rfind("/") else ":cloud"
    return ModelName.parse_valid(base)
