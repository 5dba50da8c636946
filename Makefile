# make run   — the main job end to end on the embedded defaults
# make test  — lint, types and the whole test suite (starts its own PostgreSQL)
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export AWS_EC2_METADATA_DISABLED := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test lint typecheck pytest server server-stop bench image clean

setup:
	@bash .ci/bootstrap.sh

run: setup
	$(BIN)/python -m flows.demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy src/thrifty
	$(BIN)/mypy flows tasks blocks

pytest: setup
	@url="$$(bash .ci/postgres.sh start)"; \
	THRIFTY_TEST_POSTGRES_URL="$$url" THRIFTY_REQUIRE_POSTGRES=1 $(BIN)/pytest; \
	rc=$$?; if [[ $$rc == 5 ]]; then echo "pytest ran no tests: failing" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

server: setup
	$(BIN)/python -m deployments.server start

server-stop: setup
	$(BIN)/python -m deployments.server stop

image: setup
	@bash .ci/podman.sh
	$(BIN)/thrifty image build

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	bash .ci/postgres.sh stop
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
