"""Tests that need Petastorm: collected only where it is installed, that is in the Petastorm environment
(``make test-petastorm``, docs/petastorm.md). The main environment (pyarrow >= 18, numpy 2) cannot install it;
there the MissingDependencyError path is tested instead (tests/unit/test_reader_param.py).

(The folder is not named ``petastorm``: on pytest's sys.path it would shadow the package.)"""

import importlib.metadata


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


collect_ignore_glob = [] if _installed("petastorm") else ["test_*.py"]


def pytest_collection_modifyitems(config, items):
    """Every test of this folder belongs to ``make test-petastorm`` (the ``petastorm`` marker)."""
    import pytest

    for item in items:
        if "petastorm_env" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.petastorm)
