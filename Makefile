# mping-sender: see README.md and BUILDING.md.
PYTHON  ?= python3
VENV    ?= .venv
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib/mping-sender
DESTDIR ?=
SOURCES := $(shell find mping_sender -name '*.py')

.PHONY: all check test-deps demo bench install clean

all:
	@echo "nothing to build; try: make check, sudo make demo, make install"

test-deps:
	PYTHON=$(PYTHON) ./tools/install-test-deps $(VENV)

check: test-deps
	$(VENV)/bin/python -m pytest tests

demo:
	$(PYTHON) tools/demo.py

bench:
	$(PYTHON) bench/bench.py $(BENCH_ARGS)

install:
	for f in $(SOURCES); do install -D -m 0644 "$$f" "$(DESTDIR)$(LIBDIR)/$$f"; done
	install -d "$(DESTDIR)$(BINDIR)"
	sed 's|@LIBDIR@|$(LIBDIR)|g' bin/mping-sender.in > "$(DESTDIR)$(BINDIR)/mping-sender"
	chmod 0755 "$(DESTDIR)$(BINDIR)/mping-sender"

clean:
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
