# Entry points; scripts/setup.sh does the work and is idempotent (a no-op run takes about a second).
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
VENV_JAZZY ?= $(CURDIR)/.venv-jazzy
export VENV
# What runs again against ROS 2 Jazzy's rclpy (.venv-jazzy): every test that starts nodes or talks DDS.
ROS_TESTS := test/test_node.py test/test_launch.py test/test_bag.py test/test_follower.py test/test_closed_loop.py test/test_lifecycle.py test/test_soak.py

.PHONY: setup setup-jazzy test test-jazzy pytest demo colcon default-checkpoint

setup:
	bash scripts/setup.sh

setup-jazzy:
	VLA_ROS_DISTRO=jazzy VENV=$(VENV_JAZZY) bash scripts/setup.sh

# The README's test command: set up, run the test suite, then build the package with colcon
# as a ROS user would; then the ROS tests and the colcon build again with ROS 2 Jazzy's wheels
# (CI runs exactly this).
test: setup
	$(VENV)/bin/python -m pytest -q test
	bash scripts/colcon_check.sh
	$(MAKE) test-jazzy

test-jazzy: setup-jazzy
	$(VENV_JAZZY)/bin/python -m pytest -q $(ROS_TESTS)
	VENV=$(VENV_JAZZY) bash scripts/colcon_check.sh

pytest: setup
	$(VENV)/bin/python -m pytest -q test

demo: setup
	$(VENV)/bin/vla demo

colcon: setup
	bash scripts/colcon_check.sh

# Reproduce checkpoints/default.pth from nothing (about 2 hours on 2 CPU cores; rerun to resume).
default-checkpoint: setup
	bash scripts/train_default.sh
