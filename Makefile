# upgrader: every target installs what it needs on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PYTHON := /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
NODES ?= 3
KEEP ?=

# Debian packages the tool and its lab stand on.
DEB_PACKAGES := pacemaker pacemaker-cli-utils corosync resource-agents lxc \
	unattended-upgrades dpkg-dev apt-utils python3-apt python3-venv \
	iproute2 procps util-linux kmod openssh-server openssh-client

.PHONY: deps venv test faults demo lab-up lab-down lab-status bench install clean

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "error: installing $$missing needs root; run make as root" >&2; exit 2; }; \
	  echo "Installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

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

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

# The fault-injection suite alone (also part of 'test'): a table of scenarios, then "faults: N passed, M failed".
faults: venv
	$(BIN)/pytest tests/faults $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m upgrader_lab.demo --nodes $(NODES) $(if $(KEEP),--keep)

lab-up: venv
	$(BIN)/upgrader-lab up --nodes $(NODES)

lab-down: venv
	$(BIN)/upgrader-lab down

lab-status: venv
	$(BIN)/upgrader-lab status

# The APT/dpkg guard hooks and the Rolling-Upgrade:: settings, for this venv's tool.
install: venv
	$(BIN)/python -m upgrader.guard.install

bench: venv
	$(BIN)/python -m upgrader_bench

clean: lab-down
	rm -rf $(VENV) *.egg-info .pytest_cache
