"""Render errors that name the JSON path a user has to fix."""

from __future__ import annotations

from collections.abc import Sequence

PathSegment = str | int


def json_path(segments: Sequence[PathSegment], root: str = "$") -> str:
    """`$.a.b[0]`, with bracket notation for keys that are not plain identifiers."""
    out = [root]
    for seg in segments:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif seg.isidentifier():
            out.append(f".{seg}")
        else:
            escaped = seg.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


class RenderError(ValueError):
    """A config or overlay the operator refuses to publish.

    `reason` is a CamelCase condition reason, `path` the JSON path of the
    offending value (rooted at `$` for the config document, or at the spec
    field for overlays), `source` where the document came from.
    """

    def __init__(self, reason: str, path: str, detail: str, source: str = "") -> None:
        self.reason = reason
        self.path = path
        self.detail = detail
        self.source = source
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = f" (in {self.source})" if self.source else ""
        return f"{self.path}: {self.detail}{where}"

    def with_source(self, source: str) -> RenderError:
        return RenderError(self.reason, self.path, self.detail, source)
