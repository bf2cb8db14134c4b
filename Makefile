# The two commands of the README. Both set up .venv first (idempotent).
.PHONY: setup demo test model-garden-venv

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python run_pretraining.py $(ARGS)

test: setup
	.venv/bin/python -m pytest -q -n 2 tests $(ARGS)

# Not needed by the two commands: TF Model Garden's environment, for the benchmarks' peer column.
model-garden-venv:
	bash scripts/model_garden_venv.sh
