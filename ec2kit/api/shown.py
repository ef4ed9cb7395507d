"""What the facade's objects share: live listings shown as tables, identifiers for completion."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from .. import display
from ..paths import data_dir

__all__ = ["Listing", "Progress", "Text", "examples_dir", "identifier"]

T = TypeVar("T")
Progress = Callable[[str], None] | None


def examples_dir() -> Path:
    """The example scripts shipped with ec2kit (``train.sh``, ``train.py``, ``quickstart.ipynb``), wherever it is installed."""
    return data_dir("examples")


def identifier(name: str) -> str:
    """An instance name as a Python attribute name for ``ec2.i.<name>``: ``gpu-1`` → ``gpu_1``,
    ``1st`` → ``i_1st``, ``class`` → ``class_``. Never starts with ``_`` (IPython probes those)."""
    ident = re.sub(r"\W", "_", name).lstrip("_")
    if not ident or ident[0].isdigit():
        ident = "i_" + ident
    return ident + "_" if keyword.iskeyword(ident) else ident


class Text(str):
    """Text that Jupyter and IPython show as it is (a log, command output) instead of a quoted string."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return display.html_pre(str(self))


class _Shown:
    """Mixin: one description (``_show()``) rendered as HTML for Jupyter and as text for IPython."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer stops at the first class in the MRO that defines __repr__ (or is a
        # registered type such as list): every subclass carries _repr_pretty_ itself so it is found first.
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = _Shown._repr_pretty_  # type: ignore[method-assign]

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        """``(title, columns, rows, empty)``; subclasses with fields override ``_fields`` instead."""
        raise NotImplementedError

    def _fields(self) -> tuple[str, list[tuple[str, Any]]] | None:
        return None

    def _repr_html_(self) -> str:
        fields = self._fields()
        if fields is not None:
            return display.html_fields(fields[1], title=fields[0])
        title, columns, rows, empty = self._show()
        return display.html_table(columns, rows, title=title, empty=empty)

    def _text(self) -> str:
        fields = self._fields()
        if fields is not None:
            return display.text_fields(fields[1], title=fields[0])
        title, columns, rows, empty = self._show()
        return display.text_table(columns, rows, title=title, empty=empty)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self._text())


class Listing(list[T], _Shown, Generic[T]):
    """A list of ec2kit objects that shows as a table in Jupyter and IPython (still a plain list)."""

    def __init__(
        self,
        items: Iterable[T],
        *,
        title: str,
        columns: Sequence[str],
        row: Callable[[T], Sequence[Any]],
        empty: str = "",
    ) -> None:
        super().__init__(items)
        self._title, self._columns, self._row, self._empty = title, list(columns), row, empty

    def _show(self) -> tuple[str, Sequence[str], Sequence[Sequence[Any]], str]:
        return self._title, self._columns, [self._row(x) for x in self], self._empty

    @property
    def names(self) -> list[str]:
        """The ``name`` of each item."""
        return [str(getattr(x, "name", "")) for x in self]


# -- commands on an instance ------------------------------------------------------------------


def _silent(_line: str) -> None:
    pass


def _id(thing: str | Any) -> str:
    return thing if isinstance(thing, str) else str(thing.id)
