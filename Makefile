# The two commands of the README (both set up first; setup is idempotent):
#   make demo   set up, then run the main job on the built-in default
#   make test   set up, then run the tests
SHELL := /bin/bash
.PHONY: setup demo test clean

setup:
	bash scripts/setup.sh

# The main job: the live stack on a synthetic source with one question, then a synthetic
# bag replayed through the stack and scored (report in out/replay-demo/).
demo: setup
	source env.sh && automot demo \
	  && automot data synth-bag out/demo-bag --force \
	  && automot replay out/demo-bag --fast --out out/replay-demo --force

test: setup
	source env.sh && python -m pytest test

clean:
	rm -rf build install log .ros env.sh
