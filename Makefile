# upgrader: every target installs what it needs on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PYTHON := /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
NODES ?= 3
KEEP ?=

# Debian packages the tool and its lab stand on.
# python3-rich and python3-tenacity: what the package depends on, so that lab nodes (which see this
# machine's packages) can install the built .deb.
DEB_PACKAGES := pacemaker pacemaker-cli-utils corosync resource-agents lxc \
	unattended-upgrades dpkg-dev apt-utils python3-apt python3-venv python3-rich python3-tenacity \
	iproute2 procps util-linux kmod openssh-server openssh-client man-db groff-base logrotate systemd

.PHONY: deps deb-deps install-missing node-exporter-deb venv test test-scale faults demo lab-up lab-down lab-status bench bench-growth install deb deb-build clean

# What 'make deb' needs to build the Debian package and check it (debian/control's Build-Depends, lintian).
DEB_BUILD_PACKAGES := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
	python3-wheel dpkg-dev lintian
# Where 'make deb' puts upgrader_VERSION_all.deb (dpkg-buildpackage runs in a copy under $(DIST)/build,
# so neither this tree nor its parent directory gets build files).
DIST ?= dist
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB = $(DIST)/upgrader_$(DEB_VERSION)_all.deb
# Debian's own tools only: no python of a virtualenv or pyenv on PATH, no PYTHONPATH.
DEB_ENV := env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin

deps:
	@$(MAKE) --no-print-directory install-missing PACKAGES="$(DEB_PACKAGES)"

deb-deps:
	@$(MAKE) --no-print-directory install-missing PACKAGES="$(DEB_BUILD_PACKAGES)"

# The Debian packages named in PACKAGES that are not installed yet, installed with apt-get.
install-missing:
	@missing=$$(for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "error: installing $$missing needs root; run make as root" >&2; exit 2; }; \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# Debian's prometheus-node-exporter for tests/lab/test_metrics_lab.py: its .deb fetched (apt-get download), never
# installed on this machine; the test unpacks it inside a lab node. .cache/ is ignored by git.
DEBS_CACHE := .cache/debs
node-exporter-deb:
	@ls $(DEBS_CACHE)/prometheus-node-exporter_*.deb >/dev/null 2>&1 || { \
	  mkdir -p $(DEBS_CACHE) && cd $(DEBS_CACHE) && echo "Downloading prometheus-node-exporter (not installed)" && \
	  apt-get download -q prometheus-node-exporter; }

$(BIN)/python:
	$(PYTHON) -m venv --system-site-packages $(VENV)

# The product is installed (editable); the lab and the benchmarks are not part of it: a .pth puts
# this tree on the venv's path for them, and bin/upgrader-lab runs the lab's command line.
$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/upgrader-dev-tree.pth"
	printf '#!/bin/sh\n# The lab of this development tree (not part of the product).\nexec "%s" -m upgrader_lab.cli "$$@"\n' \
	  "$(CURDIR)/$(BIN)/python" > $(BIN)/upgrader-lab
	chmod 755 $(BIN)/upgrader-lab
	touch $@

venv: deps $(VENV)/.installed

# deb-deps: tests/packaging builds the Debian package and runs lintian on it; node-exporter-deb: the metrics lab test.
test: venv deb-deps node-exporter-deb
	$(BIN)/pytest $(PYTEST_ARGS)

# The lab at seed scale alone (marker scale, left out of 'test'): a rolling upgrade of 120 applications on
# 3 nodes (tests/lab/test_scale_lab.py).
test-scale: venv
	$(BIN)/pytest -m scale $(PYTEST_ARGS)

# The fault-injection suite alone (also part of 'test'): a table of scenarios, then "faults: N passed, M failed".
faults: venv
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

# The demo's nodes install the built package (make deb), as an operator would; FROM_TREE=1: this tree's tool.
demo: venv $(if $(FROM_TREE),,deb)
	$(BIN)/python -m upgrader_lab.demo --nodes $(NODES) $(if $(KEEP),--keep) $(if $(FROM_TREE),,--deb $(DEB))

lab-up: venv
	$(BIN)/upgrader-lab up --nodes $(NODES)

lab-down: venv
	$(BIN)/upgrader-lab down

lab-status: venv
	$(BIN)/upgrader-lab status

# The APT/dpkg guard hooks and the Rolling-Upgrade:: settings, for this venv's tool.
install: venv
	$(BIN)/python -m upgrader.guard.install

# The Debian package (debian/): build it, check it with lintian (no error, no warning), print its path.
# Install it on a cluster node with: apt install ./$(DEB)
deb: deb-deps deb-build
	$(DEB_ENV) lintian --fail-on error,warning $(DEB)
	@echo "built $(DEB)"

# The build alone (tests/packaging runs it with DIST set to a directory of its own).
deb-build:
	rm -rf $(DIST)/build
	mkdir -p $(DIST)/build/upgrader-$(DEB_VERSION)
	tar -c --exclude=./.git --exclude=./.venv --exclude='./$(DIST)' --exclude=./build \
	  --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=./.lab-ready \
	  -f - . | tar -x -f - -C $(DIST)/build/upgrader-$(DEB_VERSION)
	cd $(DIST)/build/upgrader-$(DEB_VERSION) && $(DEB_ENV) dpkg-buildpackage -b -us -uc --no-sign
	mv $(DIST)/build/upgrader_$(DEB_VERSION)_all.deb $(DEB)
	rm -rf $(DIST)/build

bench: venv
	$(BIN)/python -m upgrader_bench

# Growth in applications alone (left out of 'bench', about 20-25 minutes): 12, 48 and 120 applications on 3 nodes,
# a lab each (bng12, bng48, bng120; the two larger take all of 203.0.113.0/24), written into bench/results.json
# as growth_apps, the rest of the file kept. GROWTH_REPS: repetitions per size (default 1).
GROWTH_REPS ?= 1
bench-growth: venv
	$(BIN)/python -m upgrader_bench --growth-only --growth-apps-reps $(GROWTH_REPS)

clean: lab-down
	rm -rf $(VENV) *.egg-info .pytest_cache
