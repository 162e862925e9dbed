"""Registry failures, worded as Ollama words them (the CLI matches some of these strings)."""

from __future__ import annotations

__all__ = ["DiskFull", "NotFound", "RegistryError"]


class RegistryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RegistryError):
    """A ``404``: Go's ``os.ErrNotExist``."""

    def __init__(self) -> None:
        super().__init__("file does not exist")


class DiskFull(RegistryError):
    def __init__(self, path: str) -> None:
        super().__init__(f"write {path}: no space left on device")
