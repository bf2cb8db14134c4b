# The two commands of the README. Both set up .venv first (idempotent).
.PHONY: setup demo test

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python run_pretraining.py $(ARGS)

test: setup
	.venv/bin/python -m pytest -q tests $(ARGS)
