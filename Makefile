# mping-sender: see README.md and BUILDING.md.
PYTHON  ?= python3
VENV    ?= .venv
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib/mping-sender
# GNU: $(PREFIX)/etc; /etc for PREFIX=/usr, as distributions install.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/mping-sender
DATADIR ?= $(PREFIX)/share/mping-sender
DESTDIR ?=
DOCS    := README.md CHANGELOG.md SECURITY.md protocol/mping-protocol.md
SOURCES := $(shell find mping_sender -name '*.py')
# The service's RootDirectory= (see the unit): merged-/usr links, and the
# mount points systemd fills (owned by the package, so that it leaves none).
ROOT_LINKS := bin lib lib64 sbin
ROOT_DIRS  := dev etc proc root run sys tmp usr var/tmp

VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' mping_sender/__init__.py)
DISTNAME := mping-sender-$(VERSION)
DISTDIR ?= dist

.PHONY: all check check-pythons system-test test-deps demo bench pyz install uninstall dist clean

all:
	@echo "nothing to build; try: make check, sudo make demo, make install"

test-deps:
	PYTHON=$(PYTHON) ./tools/install-test-deps $(VENV)

# The system test (the .deb under systemd as PID 1, and under an enforced
# AppArmor profile in a VM) runs last, with its figures shown (-s); it needs
# root, and skips without it (fails under CI=true).
# The functional suite runs in TEST_JOBS processes: each test builds its own
# namespaces, and most of the time is spent waiting, not computing.
TEST_JOBS ?= 3

check: test-deps
	@[ "$$(id -u)" -eq 0 ] || echo "make check: not root: the tests that need network namespaces, the" \
	    "packages' installation or the system test skip (the reasons are listed at the end); run it as root for all"
	$(VENV)/bin/python -m pytest -rs -n $(TEST_JOBS) tests --ignore=tests/system
	$(MAKE) system-test

system-test: test-deps
	$(VENV)/bin/python -m pytest -s -rs tests/system

# The pure tests and the .pyz's tests under every supported Python, if present
# (tools/check-pythons lists them; CI=true needs the oldest and the newest).
check-pythons:
	./tools/check-pythons

# One executable file for hosts without the package: $(PYZDIR)/mping-sender-VERSION.pyz.
PYZDIR ?= .
pyz:
	$(PYTHON) tools/pyz.py --output-dir $(PYZDIR)

demo:
	$(PYTHON) tools/demo.py

# The interpreter the packages run the program with (the launcher's): the
# bench runs every sender, ours and the baselines, with the one it runs on.
BENCH_PYTHON ?= /usr/bin/python3

bench:
	$(BENCH_PYTHON) bench/bench.py $(BENCH_ARGS)

# The units and the profile name the program and its settings where the
# packages put them (/usr, /etc); other directories are written into the
# installed copies, and the unit's root directory then also shows PREFIX.
# The template's instances read SYSCONFDIR/mping-sender/NAME.conf.
TO_TEMPLATE := -e 's|^Description=.*|& (%i)|' \
    -e 's|^EnvironmentFile=/etc/default/mping-sender$$|EnvironmentFile=/etc/mping-sender/%i.conf|'
AT_DIRS := -e 's|/usr/bin/mping-sender|$(BINDIR)/mping-sender|g' -e 's|/usr/lib/mping-sender|$(LIBDIR)|g' \
    -e 's|/etc/default/mping-sender|$(SYSCONFDIR)/default/mping-sender|g' \
    -e 's|/etc/mping-sender/|$(SYSCONFDIR)/mping-sender/|g' \
    $(if $(filter /usr,$(PREFIX)),,-e 's|^BindReadOnlyPaths=/usr$$|BindReadOnlyPaths=/usr $(PREFIX)|')
SETTINGS := $(DESTDIR)$(SYSCONFDIR)/default/mping-sender
PROFILE  := $(DESTDIR)$(SYSCONFDIR)/apparmor.d/usr.bin.mping-sender

# Configuration is the operator's: an existing file that differs from ours
# is kept, ours goes beside it as FILE.dpkg-dist (a name AppArmor skips).
# $(call install_config,SOURCE,TARGET)
install_config = if [ ! -e "$(2)" ]; then install -D -m 0644 "$(1)" "$(2)"; \
    elif ! cmp -s "$(1)" "$(2)"; then install -m 0644 "$(1)" "$(2).dpkg-dist"; \
    echo "kept $(2) (changed); the new one is $(2).dpkg-dist"; fi
# An unchanged configuration file goes with the program; a changed one stays.
# $(call uninstall_config,SOURCE,TARGET)
uninstall_config = if cmp -s "$(1)" "$(2)"; then rm -f "$(2)"; elif [ -e "$(2)" ]; then echo "kept $(2) (changed)"; fi; \
    if cmp -s "$(1)" "$(2).dpkg-dist"; then rm -f "$(2).dpkg-dist"; fi

# The one install recipe: debian/rules and the PKGBUILD both call it.
install:
	for f in $(SOURCES); do install -D -m 0644 "$$f" "$(DESTDIR)$(LIBDIR)/$$f"; done
	for d in $(ROOT_DIRS); do install -d "$(DESTDIR)$(LIBDIR)/root/$$d"; done
	for d in $(ROOT_LINKS); do ln -sfn "usr/$$d" "$(DESTDIR)$(LIBDIR)/root/$$d"; done
	install -d "$(DESTDIR)$(BINDIR)"
	sed 's|@LIBDIR@|$(LIBDIR)|g' bin/mping-sender.in > "$(DESTDIR)$(BINDIR)/mping-sender"
	chmod 0755 "$(DESTDIR)$(BINDIR)/mping-sender"
	install -d "$(DESTDIR)$(UNITDIR)"
	sed $(AT_DIRS) mping-sender.service > "$(DESTDIR)$(UNITDIR)/mping-sender.service"
	sed $(TO_TEMPLATE) $(AT_DIRS) mping-sender.service > "$(DESTDIR)$(UNITDIR)/mping-sender@.service"
	chmod 0644 "$(DESTDIR)$(UNITDIR)"/mping-sender*.service
	$(call install_config,etc/default/mping-sender,$(SETTINGS))
	tmp=$$(mktemp) && sed $(AT_DIRS) apparmor/usr.bin.mping-sender > "$$tmp" && \
	    { $(call install_config,$$tmp,$(PROFILE)); }; status=$$?; rm -f "$$tmp"; exit $$status
	install -D -m 0644 man/mping-sender.8 "$(DESTDIR)$(MANDIR)/man8/mping-sender.8"
	install -D -m 0644 wireshark/mping.lua "$(DESTDIR)$(DATADIR)/wireshark/mping.lua"
	for f in $(DOCS); do install -D -m 0644 "$$f" "$(DESTDIR)$(DOCDIR)/$$(basename $$f)"; done

# Removes what `make install` put there (same variables), but no changed
# configuration file.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/mping-sender" "$(DESTDIR)$(MANDIR)/man8/mping-sender.8" \
	    "$(DESTDIR)$(UNITDIR)/mping-sender.service" "$(DESTDIR)$(UNITDIR)/mping-sender@.service"
	rm -rf "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(DATADIR)" "$(DESTDIR)$(DOCDIR)"
	$(call uninstall_config,etc/default/mping-sender,$(SETTINGS))
	tmp=$$(mktemp) && sed $(AT_DIRS) apparmor/usr.bin.mping-sender > "$$tmp" && \
	    { $(call uninstall_config,$$tmp,$(PROFILE)); }; status=$$?; rm -f "$$tmp"; exit $$status

# The release tarball: the tracked files as they are in the work tree, with
# the time of the last commit, sorted and owned by root, so that the same tree
# gives the same bytes. The PKGBUILD is left out (it names the tarball's
# sum); $(DISTDIR)/PKGBUILD gets that sum, ready for the AUR.
dist:
	mkdir -p "$(DISTDIR)"
	git ls-files -z -- . ':!:PKGBUILD' | tar --null -T - --sort=name --owner=0 --group=0 --numeric-owner \
	    --mode=go-w,u+w --mtime="@$$(git log -1 --format=%ct -- . ':!:PKGBUILD')" \
	    --transform='s|^|$(DISTNAME)/|' -cf - | gzip -9n > "$(DISTDIR)/$(DISTNAME).tar.gz"
	sum=$$(sha256sum "$(DISTDIR)/$(DISTNAME).tar.gz" | cut -d' ' -f1) && \
	    sed "s|^sha256sums=.*|sha256sums=('$$sum')|" PKGBUILD > "$(DISTDIR)/PKGBUILD" && \
	    echo "$(DISTDIR)/$(DISTNAME).tar.gz sha256 $$sum"

clean:
	rm -rf $(VENV) $(VENV)-3.* .pytest_cache mping-sender-*.pyz $(DISTDIR)
	find . -name __pycache__ -prune -exec rm -rf {} +
