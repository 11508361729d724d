# Quick start: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
# The CPU wheel of torch; an unpinned torch pulls several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install demo test test-fast study study-tricks study-sources clean-venv fashion-data chromium

install: $(STAMP)

$(STAMP):
	@$(MAKE) --no-print-directory fashion-data
	@$(MAKE) --no-print-directory chromium
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_PIN)" -e ".[torch,keras,ray,mlflow,test]"
	rm -f $(VENV)/.installed-*
	touch $@

# Fashion-MNIST ships as a Debian package; without apt (or root) the tests that need it skip.
fashion-data:
	@if [ -d $(FASHION_DIR) ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
	      || echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST grids need a local copy"; \
	  else echo "warning: not root; run 'apt-get install dataset-fashion-mnist' for Fashion-MNIST"; fi; \
	else echo "warning: no apt-get; Fashion-MNIST grids need a local copy (datasets: path: ...)"; fi

# Headless Chromium opens report.html in the tests; without it those tests skip.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	      || echo "warning: could not install chromium; the browser test of report.html will skip"; \
	  else echo "warning: not root; run 'apt-get install chromium' to test report.html in a browser"; fi; \
	else echo "warning: no apt-get; install Chromium to test report.html in a browser"; fi

demo: install
	$(BIN)/python -m ablate run examples/quick.yaml
	$(BIN)/python -m ablate report --study quick

test: install
	$(BIN)/python -m pytest -q

# The committed Fashion-MNIST study (tens of minutes on 2 cores).
study: install
	$(BIN)/python -m ablate run examples/fashion.yaml
	$(BIN)/python -m ablate report --study fashion

# The committed tricks study: none / label smoothing / mixup / focal on Fashion-MNIST (about 15 minutes).
study-tricks: install
	$(BIN)/python -m ablate run examples/fashion_tricks.yaml
	$(BIN)/python -m ablate report --study fashion-tricks
# Issue 21's sources-of-randomness study (about 15 minutes on 2 cores).
study-sources: install
	$(BIN)/python -m ablate run examples/fashion_sources.yaml --workers 2
	$(BIN)/python -m ablate report --study fashion-sources

clean-venv:
	rm -rf $(VENV)
