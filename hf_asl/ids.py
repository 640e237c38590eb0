"""Id columns stored as integer codes into a table of distinct ids.

Millions of predictions name only ~50k queries and ~1M references.  Keeping them as codes means
the metric never hashes or sorts millions of strings: the CSV reader encodes them in Arrow's C++
and the metric maps only the (small) tables of distinct ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, overload

import numpy as np


@dataclass(frozen=True, eq=False)
class EncodedIds:
    """A sequence of ids, ``categories[codes[i]]`` being the i-th.

    Behaves as a read-only sequence of ``str`` (``len``, indexing, iteration, ``np.asarray``),
    so it can be passed wherever a list of ids is expected.
    """

    codes: np.ndarray  # integer, shape (n,)
    categories: np.ndarray  # object array of distinct ids

    def __post_init__(self) -> None:
        if self.codes.ndim != 1 or not np.issubdtype(self.codes.dtype, np.integer):
            raise ValueError("codes must be a one-dimensional integer array")

    @classmethod
    def from_ids(cls, ids: Any) -> EncodedIds:
        """Encode any sequence of ids (first-seen order of categories)."""
        values = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        table = {v: i for i, v in enumerate(dict.fromkeys(values))}
        codes = np.fromiter(map(table.__getitem__, values), dtype=np.int64, count=len(values))
        categories = np.empty(len(table), dtype=object)
        categories[:] = list(table)
        return cls(codes, categories)

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice | np.ndarray) -> EncodedIds: ...
    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.categories[self.codes[index]]
        return EncodedIds(self.codes[index], self.categories)

    def __iter__(self) -> Iterator[str]:
        return iter(self.categories[self.codes].tolist())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        values = self.categories[self.codes]
        return values if dtype is None else values.astype(dtype)

    def tolist(self) -> list[str]:
        """The ids as a plain list."""
        return self.categories[self.codes].tolist()

    def __repr__(self) -> str:
        return f"EncodedIds(n={len(self)}, distinct={len(self.categories)})"
