"""The models' latest states, held by the driver between units (the in-memory hand-off).

A training unit returns its model's new state (a state blob: weights and optimizer variables); the
driver keeps it here and sends it with the model's next unit, so no worker reads a checkpoint from the
Store on the critical path. Memory is bounded: past ``budget_bytes`` the least recently used states are
dropped, and a unit of such a model goes out without one (the worker reads the durable checkpoint).
"""

from __future__ import annotations

import os
from collections import OrderedDict

#: Default bound on the bytes of states the driver holds (``CEREBRO_DRIVER_STATE_BYTES`` overrides it).
DEFAULT_BUDGET_BYTES = int(os.environ.get("CEREBRO_DRIVER_STATE_BYTES", str(2 << 30)))


class StateCache:
    """The latest state of each model, by model id, within a byte budget (least recently used dropped).

    Parameters
    ----------
    budget_bytes : int
        At most this many bytes of states are held (a single larger state is not held at all).

    Examples
    --------
    >>> cache = StateCache(budget_bytes=10)
    >>> cache.put("m0", 1, b"abcdef")
    >>> cache.get("m0", 1), cache.get("m0", 0)
    (b'abcdef', None)
    >>> cache.put("m1", 1, b"ghijkl")  # over the budget: m0's state goes
    >>> cache.get("m0", 1) is None, len(cache)
    (True, 1)
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._bytes = 0

    def put(self, model_id: str, version: int, state: bytes) -> None:
        """Hold ``state`` as ``model_id``'s state at ``version`` (replacing the one held before)."""
        self.drop(model_id)
        if len(state) > self.budget_bytes:
            return
        self._states[model_id] = (version, state)
        self._bytes += len(state)
        while self._bytes > self.budget_bytes:
            _, (_, dropped) = self._states.popitem(last=False)
            self._bytes -= len(dropped)

    def get(self, model_id: str, version: int) -> bytes | None:
        """The state held for ``model_id`` if it is the one at ``version``, else None."""
        held = self._states.get(model_id)
        if held is None or held[0] != version:
            return None
        self._states.move_to_end(model_id)
        return held[1]

    def drop(self, model_id: str) -> None:
        """Forget ``model_id``'s state (its durable checkpoint stays in the Store)."""
        held = self._states.pop(model_id, None)
        if held is not None:
            self._bytes -= len(held[1])

    def __len__(self) -> int:
        return len(self._states)

    @property
    def nbytes(self) -> int:
        """Bytes of the states held."""
        return self._bytes
