# Two commands do all set-up: `make demo` (the main job) and `make test` (the suite).
# Both create .venv/ in the repository root when it is missing and install what is needed.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NATIVE := build/native

.PHONY: demo test native-test import-contracts system-packages install clean windows-dll

# Debian packages the tests use: a headless browser for the preview test, libzmq for libmaed_client
# and the C subscriber (bridge/clients/). Installed where missing and possible (root with apt-get);
# otherwise those tests skip with a reason.
SYSTEM_PACKAGES := chromium libzmq3-dev

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[torch,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/maed demo

test: $(STAMP) system-packages native-test
	$(VENV)/bin/ruff check python bridge engine tests benchmarks setup.py
	$(VENV)/bin/ruff format --check python bridge engine tests benchmarks setup.py
	$(MAKE) --no-print-directory import-contracts
	$(PY) -m pytest

# The layers of docs/architecture.md, checked by import-linter ([tool.importlinter] in pyproject.toml).
# It finds a package's modules by walking one folder, and maed lives in three (python/maed, engine/,
# bridge/): a tree of links in build/ puts them together as the installed package has them.
IMPORT_TREE := build/import-tree
import-contracts: $(STAMP)
	rm -rf $(IMPORT_TREE) && mkdir -p $(IMPORT_TREE)/maed
	ln -s $(CURDIR)/python/maed/* $(IMPORT_TREE)/maed/
	ln -s $(CURDIR)/engine $(IMPORT_TREE)/maed/engine
	ln -s $(CURDIR)/bridge $(IMPORT_TREE)/maed/bridge
	PYTHONPATH=$(CURDIR)/$(IMPORT_TREE) $(VENV)/bin/lint-imports --no-cache

# The CUDA kernels, their host reference and the C++ tests (cuda_kernels/README.md), libmaed_client
# and its tests (bridge/clients/README.md). Without nvcc
# CMake builds the host reference alone; the GPU test reports itself skipped without a GPU.
native-test:
	@command -v cmake >/dev/null || { echo "make: cmake not found: skipping the native build and ctest"; exit 0; }; \
	command -v nvcc >/dev/null || echo "make: nvcc not found: building the host reference only, not the CUDA kernels"; \
	cmake -S . -B $(NATIVE) && cmake --build $(NATIVE) -j && ctest --test-dir $(NATIVE) --output-on-failure

# libmaed_client as a Windows x64 DLL with libzmq linked in, and its live test under Wine (not in `make test`:
# libzmq takes 10 to 15 minutes to build; bridge/clients/README.md, "Windows").
windows-dll: $(STAMP)
	PYTHON=$(PY) sh bridge/clients/windows/build_dll.sh build/windows

system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make: installing$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
			|| echo "make: could not install$$missing; their tests will skip"; \
	else echo "make: missing$$missing (apt-get install them as root); their tests will skip"; fi

clean:
	rm -rf $(VENV) build out .pytest_cache
