"""One exception hierarchy for cerebro_spark.

Every error a user can cause derives from :class:`CerebroError` and from the builtin exception
users already catch (``ValueError`` for bad values, ``RuntimeError`` for failures at run time).
"""

from __future__ import annotations


class CerebroError(Exception):
    """Base class for all cerebro_spark errors."""


class InvalidParamError(CerebroError, ValueError, TypeError):
    """A parameter has an invalid value or type."""


class DataError(CerebroError, ValueError):
    """The input DataFrame or prepared data does not fit what was asked (columns, types, nulls, rows)."""


class StoreError(CerebroError, OSError):
    """The Store cannot be created, read or written."""


class SearchSpaceError(CerebroError, ValueError):
    """A search space or one of its dimensions is invalid."""


class SchedulerError(CerebroError, RuntimeError):
    """The scheduler was asked something that breaks its invariants (a driver bug, not a user error)."""


class BackendError(CerebroError, RuntimeError):
    """The backend could not start, reach or keep its workers."""


class AuthenticationError(BackendError):
    """A peer on the control plane failed the challenge: wrong or missing secret."""


class TaskFailedError(BackendError):
    """A task raised on a worker. Carries the worker id and the remote traceback."""

    def __init__(self, message: str, *, worker_id: int | None = None, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.remote_traceback = remote_traceback


class TrainingError(CerebroError, RuntimeError):
    """Model training failed (every model failed, or the search could not finish)."""


class MissingDependencyError(CerebroError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class PersistenceError(CerebroError, ValueError):
    """A saved instance cannot be written or read (what failed, and the versions that saved it)."""


class UntrustedFileError(PersistenceError):
    """Loading would unpickle a saved file (which runs the code it holds) that was not said to be trusted."""


class RunInUseError(CerebroError):
    """Another driver is training this run id now (its lease in the Store is live)."""


class ModelNotFoundError(CerebroError, KeyError):
    """A model id that is not in the search (a ``KeyError`` too, as a missing key of a mapping is)."""

    def __str__(self) -> str:  # the message as it is, not quoted as KeyError quotes keys
        return str(self.args[0]) if self.args else ""


class CheckpointError(PersistenceError):
    """A model state (a checkpoint, or one handed between workers) that does not fit its model or is damaged."""
