"""The configuration reference table in docs/operations.md, generated from the Settings model.

``python -m clinicos.platform.config_docs`` rewrites the block between the markers; a unit test
fails when the committed block differs from what the code would generate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from clinicos.config import DEV_SECRET_KEY, Settings

START_MARKER = "<!-- config-table:start -->"
END_MARKER = "<!-- config-table:end -->"
ENV_PREFIX = "CLINICOS_"
NESTED_DELIMITER = "__"
OPERATIONS_DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"

_HEADER = (
    "| Variable | Type | Default | Description |",
    "|---|---|---|---|",
)


def configuration_table() -> str:
    """One Markdown table row per leaf setting, nested sections after the top-level ones."""
    rows = [
        f"| `{name}` | {_type_text(info)} | {_default_text(info)} | {_cell(info.description)} |"
        for name, info in iter_settings()
    ]
    return "\n".join([*_HEADER, *rows])


def iter_settings(
    model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX
) -> Iterator[tuple[str, FieldInfo]]:
    """(environment variable, field) for every leaf setting, depth first, sections last."""
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        nested = _nested_model(info)
        if nested is not None:
            sections.append((variable + NESTED_DELIMITER, nested))
        else:
            yield variable, info
    for section_prefix, section in sections:
        yield from iter_settings(section, section_prefix)


def iter_all_fields(
    model: type[BaseModel] = Settings, path: str = ""
) -> Iterator[tuple[str, FieldInfo]]:
    """(dotted path, field) for every field, section fields included."""
    for name, info in model.model_fields.items():
        dotted = f"{path}{name}"
        yield dotted, info
        nested = _nested_model(info)
        if nested is not None:
            yield from iter_all_fields(nested, dotted + ".")


def _nested_model(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _non_none_args(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None``, and whether ``None`` was allowed."""
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not NoneType]
        optional = len(args) < len(get_args(annotation))
        return (args[0] if len(args) == 1 else annotation), optional
    return annotation, False


_TYPE_NAMES: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    Path: "path",
    SecretStr: "secret string",
}


def _type_text(info: FieldInfo) -> str:
    annotation, optional = _non_none_args(info.annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        text = "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    else:
        text = _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(info)
    if bounds:
        text += f" ({bounds})"
    if optional:
        text += ", optional"
    return _cell(text)


def _bounds(info: FieldInfo) -> str:
    # Field(ge=…, gt=…) ends up as annotated-types constraint objects in ``metadata``.
    parts: list[str] = []
    for meta in info.metadata:
        for attribute, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _default_text(info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    if default is None:
        return "(unset)"
    if isinstance(default, SecretStr):
        secret = default.get_secret_value()
        return "(development default)" if secret == DEV_SECRET_KEY else "`********`"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, Enum):
        return f"`{default.value}`"
    if isinstance(default, Path):
        return f"`{default.as_posix()}`"
    return f"`{default}`"


def _cell(text: str | None) -> str:
    """Table cells hold one line and no bare pipe."""
    return " ".join((text or "").split()).replace("|", "\\|")


def extract_block(document: str) -> str:
    """The text between the markers, without the newlines that frame it."""
    start = document.index(START_MARKER) + len(START_MARKER)
    end = document.index(END_MARKER, start)
    return document[start:end].strip("\n")


def replace_block(document: str, table: str) -> str:
    start = document.index(START_MARKER) + len(START_MARKER)
    end = document.index(END_MARKER, start)
    return f"{document[:start]}\n{table}\n{document[end:]}"


def main(path: Path = OPERATIONS_DOC) -> bool:
    """Rewrite the block in ``path``; True when the file changed."""
    document = path.read_text(encoding="utf-8")
    updated = replace_block(document, configuration_table())
    if updated == document:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OPERATIONS_DOC
    changed = main(target)
    print(f"{target}: {'configuration table rewritten' if changed else 'already up to date'}")
