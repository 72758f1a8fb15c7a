"""The format contract: one class per input family, discovered from ``curate/ingest/formats/``.

A format declares its ``name``, how it is recognised (``matches`` on a row's keys, tried in
``detect_order``) and, for flat families, its column mapping once in ``columns``: both the
columnar fast path (Arrow converts every row at once) and the row-by-row path (which explains every
odd row) are derived from it. Families with nested rows (chat turns, histories) override
``convert``. Adding a format is one module with one subclass; there is no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from curate.errors import CurateError
from curate.ingest.builder import RowBuilder
from curate.ingest.parse import ReadContext, take_optional_text, take_text

# Record fields filled as text ("" when absent); every other mapped field is optional (None).
TEXT_FIELDS = ("instruction", "input", "output")


@dataclass(frozen=True)
class Column:
    """Where one schema field comes from: the first present source column, in order."""

    sources: tuple[str, ...]
    required: bool = False


class Format:
    """Base of every input format. Subclasses set ``name`` and either ``columns`` or ``convert``."""

    name: ClassVar[str] = ""
    # records: rows of a JSON array / JSON Lines file; document: one JSON object per file;
    # tsv: tab-separated rows; hf: a dataset saved with ``save_to_disk``.
    kind: ClassVar[Literal["records", "document", "tsv", "hf"]] = "records"
    # Record formats are detected in this order: more specific families first.
    detect_order: ClassVar[int] = 100
    # Flat families: schema field -> source columns (also the columnar fast path).
    columns: ClassVar[Mapping[str, Column]] = {}
    # True when one source row can become several records (``convert`` returns each).
    multi: ClassVar[bool] = False

    def matches(self, keys: set[str]) -> bool:
        """Whether a row with these keys belongs to this family (for ``format: auto``)."""
        return False

    def take(self, obj: dict[str, Any], ctx: ReadContext, field: str) -> str | None:
        """Pop one mapped field from a row (the user's ``fields:`` mapping first)."""
        column = self.columns[field]
        names = ctx.columns(field, *column.sources)
        if field in TEXT_FIELDS:
            return take_text(obj, names, required=column.required, what=column.sources[0])
        return take_optional_text(obj, names)

    def convert(self, obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        """One row (a dict, popped as fields are taken) -> record fields; the rest is ``meta``."""
        fields: dict[str, Any] = {name: self.take(obj, ctx, name) for name in self.columns}
        fields["meta"] = obj
        return fields

    def convert_many(self, obj: dict[str, Any], ctx: ReadContext) -> list[dict[str, Any]]:
        """Record fields of every record one row gives (one, unless ``multi``)."""
        return [self.convert(obj, ctx)]

    # Hooks of the other kinds; a format implements the one of its ``kind``.
    def read_document(self, doc: dict[str, Any], ctx: ReadContext, builder: RowBuilder) -> None:
        """``kind = "document"``: add every record (and reject) one JSON object holds."""
        raise NotImplementedError(f"format {self.name!r} ({self.kind}) does not read documents")

    def convert_fields(self, fields: list[str], ctx: ReadContext) -> dict[str, Any]:
        """``kind = "tsv"``: one row's tab-separated fields -> record fields."""
        raise NotImplementedError(f"format {self.name!r} ({self.kind}) does not read TSV rows")

    def load_rows(
        self, path: Path, batch_rows: int = 100_000
    ) -> list[tuple[str | None, Iterator[list[dict[str, Any]]]]]:
        """``kind = "hf"``: (split, row batches) of a dataset directory."""
        raise NotImplementedError(f"format {self.name!r} ({self.kind}) does not read datasets")


_FORMATS: dict[str, Format] = {}


def formats() -> dict[str, Format]:
    """Every discovered format by name, in detection order (record families first)."""
    if not _FORMATS:
        package = importlib.import_module("curate.ingest.formats")
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{package.__name__}.{module.name}")
        found: dict[str, Format] = {}
        for cls in _subclasses(Format):
            if cls.name:
                if cls.name in found:
                    raise CurateError(f"two input formats share the name {cls.name!r}")
                found[cls.name] = cls()
        order = sorted(found.values(), key=lambda f: (f.kind != "records", f.detect_order, f.name))
        _FORMATS.update({f.name: f for f in order})
    return dict(_FORMATS)


def _subclasses(cls: type[Format]) -> list[type[Format]]:
    found: list[type[Format]] = []
    for sub in cls.__subclasses__():
        found.extend([sub, *_subclasses(sub)])
    return found


__all__ = ["TEXT_FIELDS", "Column", "Format", "formats"]
