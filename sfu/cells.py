"""cells: integer attributes kept in C memory, for the statistics the C receive path updates per packet.

A class derives from ``Cells`` and names its per-packet integers with ``Cell`` descriptors::

    class SequenceTracker(Cells):
        __slots__ = ()
        base: Cell[int | None] = Cell(0, optional=True)
        max_ext: Cell[int] = Cell(1)

With the C extension (``sfu._fanout.Cells``, sfu/_cells.c) the values live in the instance's C struct:
sfu/_ingress.c reads and writes them in place, so a packet makes and frees no Python int for its counters
(reading them as ints cost about a twelfth of the receive path's CPU, in cache misses on the int objects).
Without it, ``PyCells`` and ``PyCell`` below, the pure-Python twins, keep them in a list, with the same
behaviour (tests/sfu/test_cells.py runs both): a cell holds a signed 64-bit int, or None when ``optional``;
every cell of a new instance holds 0. ``CELLS`` cells per instance; indices are the class's to choose.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

CELLS = 8  # cells per instance (CELLS in sfu/_fanout.h)
_LOW, _HIGH = -(2**63), 2**63 - 1

T = TypeVar("T")


class PyCells:
    """PyCells: the pure-Python twin of sfu._fanout.Cells (the values in a list)."""

    __slots__ = ("_cells",)
    _cells: list[int | None]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        self._cells = [0] * CELLS
        return self


class PyCell(Generic[T]):
    """PyCell(index, optional=False): the pure-Python twin of sfu._fanout.Cell, one cell as an attribute."""

    __slots__ = ("index", "optional", "name")

    def __init__(self, index: int, optional: bool = False) -> None:
        if not 0 <= index < CELLS:
            raise ValueError(f"Cell: index {index} out of 0..{CELLS - 1}")
        self.index = index
        self.optional = bool(optional)
        self.name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Cell({self.index}{', optional=True' if self.optional else ''})"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> PyCell[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return self._cells_of(obj)[self.index]

    def __set__(self, obj: object, value: T) -> None:
        cells = self._cells_of(obj)
        if value is None:
            if not self.optional:
                raise TypeError(f"cell {self.name!r} cannot be None")
            cells[self.index] = None
            return
        if not isinstance(value, int):
            raise TypeError(f"cell {self.name!r} takes an int, not {type(value).__name__}")
        v = operator.index(value)
        if not _LOW <= v <= _HIGH:
            raise OverflowError("int too big to convert")
        cells[self.index] = v

    def __delete__(self, obj: object) -> None:
        raise AttributeError(f"cell {self.name!r} cannot be deleted")

    def _cells_of(self, obj: object) -> list[int | None]:
        if not isinstance(obj, PyCells):
            raise TypeError(f"cell {self.name!r} (index {self.index}) of a {type(obj).__name__}, which is not a Cells")
        return obj._cells


if TYPE_CHECKING:
    Cells = PyCells
    Cell = PyCell
else:
    try:
        from sfu._fanout import Cell, Cells
    except ImportError:  # the C extension is optional
        Cells, Cell = PyCells, PyCell

COMPILED = Cells is not PyCells  # the cells live in C memory (sfu/_cells.c)
