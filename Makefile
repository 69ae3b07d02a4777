# Every target creates the virtual environment (.venv) and installs the package first if needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install example quickstart test test-unit test-spark test-e2e bench bench-quick lint typecheck imports ci clean \
	install-petastorm test-petastorm test-spark35 test-wheel docs

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[spark,tf,tune,viz,mlflow,s3,connect,dask,ray,jax,docs,dev]'
	@touch $(STAMP)

install: $(STAMP)

## The second environment: Petastorm 0.13.1 on pyspark 3.5, pyarrow 14, numpy 1, with every extra but `spark`
## (docs/petastorm.md).
PVENV    := .venv-petastorm
PBIN     := $(PVENV)/bin
PSTAMP   := $(PVENV)/.installed
PETASTORM_ENV := ci/petastorm-env.txt

$(PSTAMP): pyproject.toml $(PETASTORM_ENV)
	@test -x $(PBIN)/python || $(PYTHON) -m venv $(PVENV)
	$(PBIN)/python -m pip install --quiet --upgrade pip
	$(PBIN)/python -m pip install --quiet -c $(PETASTORM_ENV) -e '.[petastorm,tf,tune,viz,mlflow,s3,dev]'
	@touch $(PSTAMP)

install-petastorm: $(PSTAMP)

## The data path and end-to-end training in that environment (a few minutes on 2 cores): the tests
## marked `petastorm` (by their modules or functions; every test of tests/petastorm_env).
test-petastorm: install-petastorm
	$(PBIN)/python -m pytest -m "petastorm and not slow and not gpu" -q

## The whole suite (as `make test`) in that environment: Spark 3.5, pyarrow 14, numpy 1 (docs/petastorm.md),
## but Spark Connect (pyspark 3.5's package ships no Connect server), the Dask and Ray engines and Keras on JAX
## (their extras are not installed there): those run with `make test`.
test-spark35: install-petastorm
	$(PBIN)/python -m pytest -m "not slow and not gpu and not connect and not dask and not ray and not jax" -q

## The main job: the tiny DeepPostures selection (16 CNN-BiLSTMs, MOP on local[2]), Store under store/.
example: install
	$(BIN)/python examples/deep_postures/run.py --tiny

## A smaller first look: a grid of 8 MLPs on synthetic rows.
quickstart: install
	$(BIN)/python examples/quickstart.py

## The test suite CI runs (everything but `slow` and `gpu` tests).
test: install
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

test-unit: install
	$(BIN)/python -m pytest tests/unit -q

test-spark: install
	$(BIN)/python -m pytest tests/spark -q -m "not slow"

test-e2e: install
	$(BIN)/python -m pytest -m slow -q

bench: install
	$(BIN)/python benchmarks/bench_end_to_end.py
	$(BIN)/python benchmarks/bench_mop.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_parallelism.py
	$(BIN)/python benchmarks/bench_scheduler_sim.py
	$(BIN)/python benchmarks/bench_hop_overhead.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_inference.py

## Smoke runs of the newer benchmarks (tiny settings; their figures mean little). Results go to /tmp.
bench-quick: install
	$(BIN)/python benchmarks/bench_end_to_end.py --quick --out /tmp/cerebro-bench-end_to_end.md
	$(BIN)/python benchmarks/bench_parallelism.py --quick --out /tmp/cerebro-bench-parallelism.md
	$(BIN)/python benchmarks/bench_scheduler_sim.py --quick --out /tmp/cerebro-bench-scheduler_sim.md
	$(BIN)/python benchmarks/bench_hop_overhead.py --quick --out /tmp/cerebro-bench-hop_overhead.md
	$(BIN)/python benchmarks/bench_prepare.py --quick --out /tmp/cerebro-bench-prepare.md

## The package as users get it: a wheel built from this tree, installed with its spark and tf extras into a
## fresh virtual environment in a temporary folder, running the quickstart from there (no checkout on sys.path).
test-wheel: install
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir "$$dir" . ; \
	$(PYTHON) -m venv "$$dir/venv"; \
	"$$dir/venv/bin/python" -m pip install --quiet "$$(ls "$$dir"/cerebro_spark-*.whl)[spark,tf]"; \
	cp examples/quickstart.py examples/synthetic.py "$$dir"; \
	cd "$$dir" && venv/bin/python -c "import cerebro_spark, sys; assert cerebro_spark.__file__.startswith(sys.prefix), cerebro_spark.__file__"; \
	venv/bin/python quickstart.py --rows 4000 --epochs 1 --store "$$dir/store"

## The reference site (docs/*.md and the API from the docstrings) into build/site; any warning fails it,
## a broken link or anchor included (mkdocs.yml).
docs: install
	$(BIN)/mkdocs build --strict

lint: install
	$(BIN)/ruff check cerebro_spark tests examples benchmarks tools
	$(BIN)/ruff format --check cerebro_spark tests examples benchmarks tools

typecheck: install
	$(BIN)/mypy --strict cerebro_spark/scheduler cerebro_spark/search cerebro_spark/store cerebro_spark/backend/base.py \
		cerebro_spark/driver cerebro_spark/training/keras_io.py cerebro_spark/training/steps.py \
		cerebro_spark/backend/remote.py cerebro_spark/backend/standalone.py cerebro_spark/backend/_control_server.py \
		cerebro_spark/backend/_executor_loop.py cerebro_spark/backend/protocol.py

imports: install
	$(BIN)/lint-imports

ci: lint imports typecheck test

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
