"""Tests that need Petastorm: collected only where it is installed, that is in the Petastorm environment
(``make test-petastorm``, docs/petastorm.md). The main environment (pyarrow >= 18, numpy 2) cannot install it;
there the MissingDependencyError path is tested instead (tests/unit/test_reader_param.py)."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("petastorm") else ["test_*.py"]
