# Entry points; scripts/setup.sh does the work and is idempotent (a no-op run takes about a second).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export VENV

.PHONY: setup test pytest demo colcon default-checkpoint

setup:
	bash scripts/setup.sh

# The README's test command: set up, run the test suite, then build the package with colcon
# as a ROS user would (CI runs exactly this).
test: setup
	$(VENV)/bin/python -m pytest -q test
	bash scripts/colcon_check.sh

pytest: setup
	$(VENV)/bin/python -m pytest -q test

demo: setup
	$(VENV)/bin/vla demo

colcon: setup
	bash scripts/colcon_check.sh

# Reproduce checkpoints/default.pth (about an hour on 2 CPU cores).
default-checkpoint: setup
	bash scripts/train_default.sh
