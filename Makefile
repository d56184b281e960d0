# Everything a fresh machine needs, from Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
OLDEST := .venv-oldest
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: demo stack test test-newest test-oldest lint generate pictures bench clean

$(VENV)/.installed: pyproject.toml constraints/newest.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints/newest.txt -e '.[openai,anthropic,otlp,test,dev]'
	touch $@

$(OLDEST)/.installed: pyproject.toml constraints/oldest.txt
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install $(PIP_FLAGS) -c constraints/oldest.txt -e '.[openai,anthropic,test]'
	touch $@

## The demo: a fake provider, an example app under opentelemetry-instrument, its spans and usage.
demo: $(VENV)/.installed
	$(VENV)/bin/python examples/demo.py

## The demo's app with a real local Prometheus running our alert and budget rules (needs the prometheus binary).
stack: $(VENV)/.installed
	$(VENV)/bin/python examples/local_stack.py

## The whole suite: newest SDKs, oldest supported SDKs, then lint and types.
test: test-newest test-oldest lint

test-newest: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench examples dashboards
	$(VENV)/bin/mypy

## Rewrite the generated dashboards and alert rules, and the example budgets' rules and Alertmanager routes.
generate: $(VENV)/.installed
	$(VENV)/bin/python dashboards/generate.py
	$(VENV)/bin/aimon-otel budgets render examples/budgets.yaml --rules collector/rules/aimon-budgets.yml \
		--alertmanager collector/alertmanager.base.yml --alertmanager-out collector/alertmanager.yml

## Pictures of the dashboards (docs/*.png) drawn from a real Prometheus: Grafana cannot run here.
pictures: $(VENV)/.installed
	$(VENV)/bin/python dashboards/pictures.py

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/overhead.py

clean:
	rm -rf $(VENV) $(OLDEST) .pytest_cache .mypy_cache .ruff_cache
