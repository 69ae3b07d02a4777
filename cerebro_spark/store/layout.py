"""Where a run's files live in a Store: pure functions from ids to keys (no I/O).

Every module that reads or writes a run's files asks this module for the key, so no path is spelled
twice::

    data/<fingerprint>/                                   prepared data (see cerebro_spark.data)
    runs/<run_id>/search.json                             the search record (seed, space, state; for resume)
    runs/<run_id>/journal.jsonl                           append-only log of completed units
    runs/<run_id>/models/<model_id>/model.keras           architecture + compiled optimizer, before training
    runs/<run_id>/models/<model_id>/ckpt-000003.state        weights + optimizer state after a unit
    runs/<run_id>/models/<model_id>/history.jsonl         one line per epoch
    runs/<run_id>/models/<model_id>/<name>.keras          final models ("best", "last")
    runs/<run_id>/models/<model_id>/tensorboard/          event files

Ids become single key components, so each is checked: a letter or digit, then up to 127 letters,
digits, ``.``, ``_`` or ``-`` (no ``/``, no ``..``: a key can never leave its run's folder).
"""

from __future__ import annotations

import re
from datetime import datetime

from cerebro_spark.errors import InvalidParamError

#: The file name ending of a checkpoint (a state blob); releases before it wrote Keras' ``.weights.h5``.
CHECKPOINT_SUFFIX = ".state"
LEGACY_CHECKPOINT_SUFFIX = ".weights.h5"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ID_RULE = "a letter or digit, then up to 127 letters, digits, '.', '_' or '-'"


def _check_id(what: str, value: object) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise InvalidParamError(f"A {what} must be {_ID_RULE}. Received: {what.replace(' ', '_')}={value!r}")
    return value


def validate_run_id(run_id: str) -> str:
    """Check that ``run_id`` can name a run's folder.

    Parameters
    ----------
    run_id : str
        Must match ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.

    Returns
    -------
    str
        ``run_id``, unchanged.

    Raises
    ------
    InvalidParamError
        If ``run_id`` is not a string of that form.

    Examples
    --------
    >>> validate_run_id("run-1")
    'run-1'
    """
    return _check_id("run id", run_id)


def new_run_id(now: datetime, token: str) -> str:
    """A new run id from a time and a random token (pure: the caller supplies both).

    Parameters
    ----------
    now : datetime
        The start time, formatted as given (pass a UTC time for ids that sort across machines).
    token : str
        A short random token (letters and digits) that tells apart runs started in the same second.

    Returns
    -------
    str
        ``"run-<YYYYmmdd>-<HHMMSS>-<token>"``.

    Raises
    ------
    InvalidParamError
        If ``token`` is not 1 to 32 letters or digits.

    Examples
    --------
    >>> new_run_id(datetime(2026, 11, 21, 20, 30, 0), "a1b2")
    'run-20261121-203000-a1b2'
    """
    if not isinstance(token, str) or re.fullmatch(r"[A-Za-z0-9]{1,32}", token) is None:
        raise InvalidParamError(
            f"A run id token must be 1 to 32 letters or digits. Received: token={token!r}"
        )
    return validate_run_id(f"run-{now:%Y%m%d-%H%M%S}-{token}")


def data_root(fingerprint: str) -> str:
    """The folder of the prepared data with this fingerprint: ``data/<fingerprint>``."""
    return f"data/{_check_id('data fingerprint', fingerprint)}"


def run_root(run_id: str) -> str:
    """The folder of a run: ``runs/<run_id>``.

    Examples
    --------
    >>> run_root("run-1")
    'runs/run-1'
    """
    return f"runs/{validate_run_id(run_id)}"


def run_record_key(run_id: str) -> str:
    """The search record of a run (seed, space, algorithm state): ``runs/<run_id>/search.json``."""
    return f"{run_root(run_id)}/search.json"


def journal_key(run_id: str) -> str:
    """The append-only journal of completed units: ``runs/<run_id>/journal.jsonl``."""
    return f"{run_root(run_id)}/journal.jsonl"


def model_root(run_id: str, model_id: str) -> str:
    """The folder of one model of a run: ``runs/<run_id>/models/<model_id>``."""
    return f"{run_root(run_id)}/models/{_check_id('model id', model_id)}"


def initial_model_key(run_id: str, model_id: str) -> str:
    """The model before training (architecture and compiled optimizer): ``.../model.keras``."""
    return f"{model_root(run_id, model_id)}/model.keras"


def checkpoint_key(run_id: str, model_id: str, version: int) -> str:
    """The weights and optimizer state after the ``version``-th unit: ``.../ckpt-000003.state``
    (a state blob, see :mod:`cerebro_spark.training.keras_io`).

    Examples
    --------
    >>> checkpoint_key("run-1", "m0", 3)
    'runs/run-1/models/m0/ckpt-000003.state'
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidParamError(f"A checkpoint version must be an int >= 0. Received: version={version!r}")
    return f"{model_root(run_id, model_id)}/ckpt-{version:06d}{CHECKPOINT_SUFFIX}"


def legacy_checkpoint_key(key: str) -> str:
    """Where a release before the state blob wrote the checkpoint ``key`` (a Keras ``.weights.h5`` file).

    >>> legacy_checkpoint_key("runs/run-1/models/m0/ckpt-000003.state")
    'runs/run-1/models/m0/ckpt-000003.weights.h5'
    """
    return key.removesuffix(CHECKPOINT_SUFFIX) + LEGACY_CHECKPOINT_SUFFIX


def history_key(run_id: str, model_id: str) -> str:
    """The per-epoch metrics of a model, one JSON line per epoch: ``.../history.jsonl``."""
    return f"{model_root(run_id, model_id)}/history.jsonl"


def final_model_key(run_id: str, model_id: str, name: str) -> str:
    """A final model, such as ``"best"`` or ``"last"``: ``.../<name>.keras``."""
    return f"{model_root(run_id, model_id)}/{_check_id('model name', name)}.keras"


def tensorboard_root(run_id: str, model_id: str) -> str:
    """The folder of a model's TensorBoard event files: ``.../tensorboard``."""
    return f"{model_root(run_id, model_id)}/tensorboard"
