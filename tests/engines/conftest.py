"""The Dask and Ray backends' tests need their extras, which `make install` installs. Where they are not
installed (the Petastorm environment of `make test-spark35`, which deselects the `dask` and `ray` markers
anyway), their modules are not collected, as tests/petastorm_env does for Petastorm."""

import importlib.util

collect_ignore = [
    name
    for name, package in (("test_dask_backend.py", "distributed"), ("test_ray_backend.py", "ray"))
    if importlib.util.find_spec(package) is None
]
