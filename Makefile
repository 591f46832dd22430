# The two commands of the README (both set up first; setup is idempotent):
#   make demo   set up, then run the main job on the built-in default
#   make test   set up, then run the tests
SHELL := /bin/bash
.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

demo: setup
	source env.sh && automot demo

test: setup
	source env.sh && python -m pytest test

clean:
	rm -rf build install log .ros env.sh
