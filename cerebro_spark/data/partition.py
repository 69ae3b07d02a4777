"""One prepared partition's rows as numpy arrays: what a reader gives a worker's training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class PartitionData:
    """The rows of one prepared partition as numpy arrays.

    Attributes
    ----------
    features, labels : tuple of numpy.ndarray
        One array per column, in the spec's order, of shape ``(rows, *column.shape)``. Arrays read from
        a file may be read-only views of Arrow memory.
    rows : int
        The number of rows.
    weights : numpy.ndarray or None
        The sample weights (float32, one per row), or None without a weight column.
    """

    features: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]
    rows: int
    weights: np.ndarray | None = None

    def x(self, order: list[int] | None = None) -> np.ndarray | list[np.ndarray]:
        """The features as Keras ``fit`` takes them: one array for one input, else a list.

        ``order`` lists, per model input, the index of its feature column (default: the spec's order).
        """
        arrays = list(self.features) if order is None else [self.features[i] for i in order]
        return arrays[0] if len(arrays) == 1 else arrays

    def y(self, order: list[int] | None = None) -> np.ndarray | list[np.ndarray]:
        """The labels as Keras ``fit`` takes them: one array for one output, else a list (see :meth:`x`)."""
        arrays = list(self.labels) if order is None else [self.labels[i] for i in order]
        return arrays[0] if len(arrays) == 1 else arrays

    def shuffled(self, seed: int) -> PartitionData:
        """The same rows in the order of ``np.random.default_rng(seed).permutation(rows)``.

        Parameters
        ----------
        seed : int
            The permutation's seed, for example :func:`unit_seed`.

        Returns
        -------
        PartitionData
            New arrays; features and labels are permuted alike.
        """
        order = np.random.default_rng(seed).permutation(self.rows)
        return PartitionData(
            features=tuple(a[order] for a in self.features),
            labels=tuple(a[order] for a in self.labels),
            rows=self.rows,
            weights=None if self.weights is None else self.weights[order],
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        weights = 0 if self.weights is None else int(self.weights.nbytes)
        return sum(int(a.nbytes) for a in self.features + self.labels) + weights
