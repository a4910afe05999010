# Two commands do all set-up: `make demo` (the main job) and `make test` (the suite).
# Both create .venv/ in the repository root when it is missing and install what is needed.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[torch,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/maed demo

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build out .pytest_cache
