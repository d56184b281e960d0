# Everything a fresh machine needs, from Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
OLDEST := .venv-oldest
OLDEST_GEMINI := .venv-oldest-gemini
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: demo stack test test-newest test-oldest test-oldest-gemini lint generate pictures bench clean

$(VENV)/.installed: pyproject.toml constraints/newest.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -c constraints/newest.txt -e '.[openai,anthropic,gemini,bedrock,bedrock-async,groq,mistralai,ollama,cohere,litellm,stripe,otlp,test,coexist,dev]'
	touch $@

$(OLDEST)/.installed: pyproject.toml constraints/oldest.txt
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install $(PIP_FLAGS) -c constraints/oldest.txt -e '.[openai,anthropic,bedrock,bedrock-async,groq,mistralai,ollama,cohere,stripe,test]'
	touch $@

$(OLDEST_GEMINI)/.installed: pyproject.toml constraints/oldest-gemini.txt
	$(PYTHON) -m venv $(OLDEST_GEMINI)
	$(OLDEST_GEMINI)/bin/pip install $(PIP_FLAGS) -c constraints/oldest-gemini.txt -e '.[openai,anthropic,gemini,test]'
	touch $@

## The demo: a fake provider, an example app under opentelemetry-instrument, its spans and usage.
demo: $(VENV)/.installed
	$(VENV)/bin/python examples/demo.py

## The demo's app with a real local Prometheus running our alert and budget rules (needs the prometheus binary).
stack: $(VENV)/.installed
	$(VENV)/bin/python examples/local_stack.py

## The whole suite: newest SDKs, oldest supported SDKs (google-genai's apart), then lint and types.
test: test-newest test-oldest test-oldest-gemini lint

test-newest: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -q

test-oldest-gemini: $(OLDEST_GEMINI)/.installed
	$(OLDEST_GEMINI)/bin/python -m pytest -q tests/test_gemini.py tests/test_zero_code.py tests/test_api_key_id.py

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
	rm -rf $(VENV) $(OLDEST) $(OLDEST_GEMINI) .pytest_cache .mypy_cache .ruff_cache
