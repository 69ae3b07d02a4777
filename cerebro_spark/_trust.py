"""Whether loading a saved instance may unpickle its files: only when the caller says it trusts them.

Unpickling runs whatever code the file holds, so a ``load`` refuses every pickle (saved functions,
custom Keras objects, search spaces) unless one of these says the files are trusted:

- ``Class.load(path, trust_pickles=True)``;
- the :func:`trust_pickles` context manager around any load (``PipelineModel.load`` included);
- the environment variable ``CEREBRO_TRUST_PICKLES=1`` (a job whose saves are its own).

Instances whose Params and models are plain values (JSON, ``.keras`` files in Keras' safe mode, Keras'
own optimizers and losses) load without unpickling anything, trusted or not.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

from cerebro_spark.errors import UntrustedFileError

#: Set to 1 (or true, yes) to trust every file loaded by this process.
TRUST_ENV = "CEREBRO_TRUST_PICKLES"

_TRUSTED: ContextVar[bool] = ContextVar("cerebro_spark_trust_pickles", default=False)


@contextlib.contextmanager
def trust_pickles(trusted: bool = True) -> Iterator[None]:
    """Within the block, loading may unpickle the saved files (which runs the code they hold).

    Parameters
    ----------
    trusted : bool, default True
        False makes the block refuse pickles again (inside an outer ``trust_pickles()``).

    Examples
    --------
    >>> from cerebro_spark import trust_pickles
    >>> with trust_pickles():  # doctest: +SKIP
    ...     model = PipelineModel.load("/models/mine")  # saved by this team: trusted
    """
    token = _TRUSTED.set(trusted)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def pickles_trusted() -> bool:
    """Whether the caller said that the files being loaded are trusted (see the module docstring)."""
    return _TRUSTED.get() or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def require_trust(what: str, file: str) -> None:
    """Raise :class:`UntrustedFileError` unless pickles are trusted; ``file`` is the one to unpickle."""
    if pickles_trusted():
        return
    raise UntrustedFileError(
        f"Loading {what} means unpickling {file!r}, and unpickling runs the code the file holds. Load "
        "only files you trust, and say so: Class.load(path, trust_pickles=True), or "
        "`with cerebro_spark.trust_pickles(): ...` around the load (PipelineModel.load too), or the "
        f"environment variable {TRUST_ENV}=1."
    )
