# relay: relayd (daemon), relayctl (admin tool), relay (client).
# GNU make.  `make` builds, `make check` builds and runs every test,
# `make run` starts relayd in the foreground, `make install` installs.

PREFIX ?=	/usr/local
BINDIR ?=	$(PREFIX)/bin
SBINDIR ?=	$(PREFIX)/sbin
MANDIR ?=	$(PREFIX)/share/man
EXAMPLEDIR ?=	$(PREFIX)/share/examples/relayd
SYSCONFDIR ?=	/etc
UNITDIR ?=	$(PREFIX)/lib/systemd/system
RELAYD_USER ?=	_relayd
DESTDIR ?=
BUILD ?=	build
CC ?=		cc
PYTHON ?=	/usr/bin/python3
PKG_CONFIG ?=	pkg-config

# Debian packages the build and the tests need; `make deps` installs them.
DEB_PACKAGES =	gcc make pkg-config libssl-dev libbsd-dev libcmocka-dev \
		libedit-dev libseccomp-dev python3 python3-pytest \
		python3-cryptography mandoc tmux clang cppcheck clang-tidy \
		valgrind
PKGS =		libcrypto libbsd-overlay libedit libseccomp
TEST_PKGS =	cmocka

OPT ?=		-O2 -g
HARDEN ?=	-D_FORTIFY_SOURCE=2 -fstack-protector-strong
SAN ?=
WARN =		-std=c11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
		-Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# Recursively expanded on purpose: pkg-config is asked only when a recipe
# runs, after the deps stamp has installed it.
PKG_CFLAGS =	$(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS =	$(shell $(PKG_CONFIG) --libs $(PKGS))
CPPFLAGS_ALL =	-D_GNU_SOURCE -Irelayd $(PKG_CFLAGS)
CFLAGS_ALL =	$(WARN) $(OPT) $(HARDEN) $(SAN) -fPIE $(CFLAGS)
LDFLAGS_ALL =	$(SAN) -pie -Wl,-z,relro,-z,now $(LDFLAGS)

LIB_SRCS =	relayd/log.c relayd/buf.c relayd/fernet.c relayd/secret.c \
		relayd/frame.c relayd/proto.c relayd/record.c
RELAYD_SRCS =	$(filter-out $(LIB_SRCS), $(wildcard relayd/*.c))
RELAYCTL_SRCS =	$(wildcard relayctl/*.c)
RELAY_SRCS =	$(wildcard relay/*.c)
UNIT_SRCS =	$(wildcard tests/unit/test_*.c)
TOOL_SRCS =	$(wildcard tests/tools/*.c)

obj =		$(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB =		$(BUILD)/librelay.a
PROGS =		$(if $(RELAYD_SRCS),$(BUILD)/relayd) \
		$(if $(RELAYCTL_SRCS),$(BUILD)/relayctl) \
		$(if $(RELAY_SRCS),$(BUILD)/relay)
UNIT_BINS =	$(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_BINS =	$(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRCS))
MANS =		$(wildcard man/*.[1-8])
DEPSTAMP =	$(BUILD)/.deps-ok

.PHONY: all deps check unit regress lint run install uninstall asan fuzz \
	valgrind bench-crypto bench bench-check clean
.DEFAULT_GOAL := all
# Keep objects that only chained pattern rules name.
.SECONDARY:

all: $(PROGS)

# The stamp records that every package is present; `deps` installs what
# is missing (as root) or prints the apt-get line (otherwise).
$(DEPSTAMP):
	@$(MAKE) --no-print-directory deps
	@mkdir -p $(@D) && touch $@

deps:
	@missing=""; \
	$(PKG_CONFIG) --version >/dev/null 2>&1 || missing="pkg-config"; \
	if [ -z "$$missing" ]; then \
		$(PKG_CONFIG) --exists $(PKGS) $(TEST_PKGS) || missing="libs"; \
	fi; \
	for c in mandoc tmux clang cppcheck clang-tidy valgrind; do \
		command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; \
	done; \
	$(PYTHON) -c 'import pytest, cryptography' >/dev/null 2>&1 || \
		missing="$$missing python"; \
	if [ "$$(id -u)" = 0 ] && ! getent passwd _relayd >/dev/null; then \
		echo "deps: adding _relayd, the user of relayd's sessions"; \
		useradd --system --no-create-home \
		    --shell /usr/sbin/nologin _relayd || exit 1; \
	fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "deps: missing ($$missing)"; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $(DEB_PACKAGES); \
	else \
		echo "deps: run as root:" >&2; \
		echo "  apt-get install $(DEB_PACKAGES)" >&2; \
		exit 1; \
	fi

$(BUILD)/obj/%.o: %.c relayd/proto.h $(wildcard */*.h) | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c -o $@ $<

$(LIB): $(call obj,$(LIB_SRCS))
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/relayd: $(call obj,$(RELAYD_SRCS)) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

# The daemon of the fault tests: relayd with tests/hook/*.c linked in
# place of relayd/hook.c, so that a worker can be made to misbehave.
HOOK_SRCS =	$(filter-out relayd/hook.c,$(RELAYD_SRCS)) \
		$(wildcard tests/hook/*.c)
$(BUILD)/tests/relayd-hook: $(call obj,$(HOOK_SRCS)) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/relayctl: $(call obj,$(RELAYCTL_SRCS)) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/relay: $(call obj,$(RELAY_SRCS)) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

# A unit test of a daemon module outside librelay.a (test_userdb.c for
# relayd/userdb.c) links that module's object too.
DAEMON_UNITS =	$(filter $(patsubst relayd/%.c,%,$(RELAYD_SRCS)), \
		    $(patsubst tests/unit/test_%.c,%,$(UNIT_SRCS)))
$(patsubst %,$(BUILD)/tests/test_%,$(DAEMON_UNITS)): $(BUILD)/tests/test_%: \
    $(BUILD)/obj/tests/unit/test_%.o $(BUILD)/obj/relayd/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) \
	    $(shell $(PKG_CONFIG) --libs $(TEST_PKGS))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) \
	    $(shell $(PKG_CONFIG) --libs $(TEST_PKGS))

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

# Fernet speed against Python's cryptography.fernet, on this machine.
bench-crypto: $(BUILD)/tests/bench-crypto
	$(PYTHON) tests/bench/bench-crypto.py $(BUILD)/tests/bench-crypto

# relayd under load from relay-bench (tests/bench/run-bench.sh): the
# standard table, and a throughput check against tests/bench/baseline.
# Neither is part of check.
bench: $(PROGS) $(BUILD)/tests/relay-bench
	sh tests/bench/run-bench.sh $(BUILD)

bench-check: $(PROGS) $(BUILD)/tests/relay-bench
	sh tests/bench/run-bench.sh -c $(BUILD)

# Every test: cmocka unit tests, the black-box suite, the man page lint.
check: unit regress lint

unit: $(UNIT_BINS) $(TOOL_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
		echo "== $$t"; \
		RELAY_FERNET_SPEC=$(CURDIR)/../shared/fernet-spec $$t || fail=1; \
	done; exit $$fail

regress: $(PROGS) $(TOOL_BINS) $(BUILD)/tests/relayd-hook
	RELAY_BUILD=$(CURDIR)/$(BUILD) \
	RELAY_FERNET_SPEC=$(CURDIR)/../shared/fernet-spec \
	    $(PYTHON) -m pytest -q -ra -p no:cacheprovider tests/regress

# The man pages (mandoc), then the C of the three programs (not the
# tests) with the build's own flags, under cppcheck and clang-tidy.
# cppcheck: warning, portability, performance.  It is given libbsd's
# include directory as -I (it knows no -isystem) so that it expands
# <sys/queue.h> and <sys/tree.h>; ctuuninitvar is off in the two files
# whose RB_FIND search keys set only the compared field.
# clang-tidy: bugprone, cert, misc and the static analyzer, less what
# fights this code's style or C11 as Linux has it: Annex K's *_s
# functions (insecureAPI.DeprecatedOrUnsafeBufferHandling), a check of
# every printf (cert-err33-c), reserved names (__lsan_is_turned_off is
# the sanitizers' interface), swappable parameters, byte/char/int
# narrowing in codecs, widening of constant products, length-counted
# memcpy without a NUL, and dead stores of `if ((n = f()) == -1)` and
# of strlcpy/strlcat chains.  Each remaining false positive has a
# NOLINTNEXTLINE comment in the code that says why.  LINT_JOBS files at
# a time, the slowest (hub.c) first.
LINT_SRCS =	relayd/hub.c $(filter-out relayd/hub.c,$(RELAYD_SRCS) \
		$(LIB_SRCS)) $(RELAYCTL_SRCS) $(RELAY_SRCS)
CPPCHECK_FLAGS = --enable=warning,portability,performance \
		--error-exitcode=1 --inline-suppr --quiet --std=c11 \
		-D__GNUC__ -D__linux__ -D_GNU_SOURCE -DLIBBSD_OVERLAY -Irelayd \
		--suppress=missingIncludeSystem \
		--suppress=ctuuninitvar:relayd/hub.c \
		--suppress=ctuuninitvar:relay/session.c
TIDY_CHECKS =	-*,bugprone-*,cert-*,clang-analyzer-*,misc-*,$\
		-bugprone-easily-swappable-parameters,$\
		-bugprone-reserved-identifier,-cert-dcl37-c,-cert-dcl51-cpp,$\
		-bugprone-narrowing-conversions,$\
		-bugprone-implicit-widening-of-multiplication-result,$\
		-bugprone-not-null-terminated-result,-cert-err33-c,$\
		-misc-unused-parameters,$\
		-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,$\
		-clang-analyzer-deadcode.DeadStores
LINT_JOBS ?=	2

lint: | $(DEPSTAMP)
	@if [ -n "$(MANS)" ]; then \
		echo "mandoc -T lint -W warning $(MANS)"; \
		mandoc -T lint -W warning $(MANS) || exit 1; \
	fi
	@echo "cppcheck $(LINT_SRCS)"
	@cppcheck $(CPPCHECK_FLAGS) $$(echo "$(PKG_CFLAGS)" | \
	    sed 's/-isystem */-I/g') $(LINT_SRCS)
	@echo "clang-tidy $(LINT_SRCS)"
	@printf '%s\n' $(LINT_SRCS) | xargs -P$(LINT_JOBS) -I{} \
	    clang-tidy --quiet --warnings-as-errors='*' \
	    --checks='$(TIDY_CHECKS)' {} -- $(CPPFLAGS_ALL) -std=c11 \
	    2>/dev/null

# The black-box cases of the protocol (login, broadcast, mailboxes,
# malformed input) with relayd under valgrind's memcheck: every process,
# the hub and each worker it forks, must end with no invalid access, no
# use of an undefined value and no definitely lost block.  conftest.py
# runs relayd under RELAYD_WRAPPER; deadlines are three times as long.
# A worker under valgrind skips only its seccomp filter (valgrind's own
# system calls are not a session's) and logs that it does; privilege
# separation is unchanged.  One log per process in $(BUILD)/valgrind.
# Not part of check.
VALGRIND_TESTS = tests/regress/test_01_login.py \
		tests/regress/test_02_broadcast.py \
		tests/regress/test_03_mailbox.py \
		tests/regress/test_05_malformed.py
VALGRIND_LOGS =	$(CURDIR)/$(BUILD)/valgrind
VALGRIND_CMD =	valgrind --tool=memcheck --error-exitcode=99 \
		--leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --track-origins=yes \
		--log-file=$(VALGRIND_LOGS)/%p.log

valgrind: $(PROGS) $(TOOL_BINS)
	@rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	RELAY_BUILD=$(CURDIR)/$(BUILD) RELAY_TEST_SCALE=3 \
	RELAYD_WRAPPER="$(VALGRIND_CMD)" \
	    $(PYTHON) -m pytest -q -ra -p no:cacheprovider $(VALGRIND_TESTS)
	@n=$$(ls $(VALGRIND_LOGS) | wc -l); \
	bad=$$(grep -L 'ERROR SUMMARY: 0 errors' $(VALGRIND_LOGS)/*.log); \
	echo "valgrind: $$n processes checked, $$(echo $$bad | wc -w)" \
	    "with errors"; \
	if [ -n "$$bad" ]; then \
		for f in $$bad; do echo "== $$f"; cat $$f; done; exit 1; \
	fi

run: $(PROGS)
	@if [ ! -x $(BUILD)/relayd ]; then \
		echo "run: relayd is not built yet"; exit 1; fi
	$(BUILD)/relayd -d

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    HARDEN= SAN="-fsanitize=address,undefined \
	    -fno-sanitize-recover=all" check

# libFuzzer targets (tests/fuzz/fuzz_*.c) with the library, under ASan
# and UBSan, each run for FUZZ_SECONDS from its seeds in
# tests/fuzz/corpus/NAME.  New inputs and crash reproducers stay in
# build-fuzz/.  Not part of check.
FUZZ_CC ?=	clang
FUZZ_SECONDS ?=	60
FUZZ_BINS =	$(patsubst tests/fuzz/%.c,build-fuzz/%,\
		    $(wildcard tests/fuzz/fuzz_*.c))

build-fuzz/%: tests/fuzz/%.c $(LIB_SRCS) relayd/proto.h tests/fuzz/fuzz.h | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(WARN) -g -O1 -fno-omit-frame-pointer \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o $@ $< $(LIB_SRCS) $(PKG_LIBS)

# The worker's target runs worker.c itself, with the mailbox code it
# calls; its end comes back to the fuzzer (WORKER_EXIT) instead of
# exiting.  tests/fuzz/NAME.flags holds a target's own libFuzzer flags.
FUZZ_WORKER_SRCS = relayd/worker.c relayd/spool.c relayd/hook.c
build-fuzz/fuzz_worker: tests/fuzz/fuzz_worker.c $(FUZZ_WORKER_SRCS) \
    $(LIB_SRCS) relayd/proto.h relayd/relayd.h tests/fuzz/fuzz.h | $(DEPSTAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS_ALL) $(WARN) -g -O1 -fno-omit-frame-pointer \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -DWORKER_EXIT=fuzz_worker_exit \
	    -o $@ $< $(FUZZ_WORKER_SRCS) $(LIB_SRCS) $(PKG_LIBS)

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
		mkdir -p $$f.corpus || exit 1; \
		n=$${f##*/}; flags=; \
		[ -f tests/fuzz/$$n.flags ] && flags=$$(cat tests/fuzz/$$n.flags); \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		    $$flags -artifact_prefix=$$f- $$f.corpus \
		    tests/fuzz/corpus/$$n \
		    || exit 1; \
	done

# The programs, the man pages, the example relayd.conf (also as
# SYSCONFDIR/relayd.conf if there is none yet: every line of it is a
# comment, so it changes nothing until edited), and the systemd unit.
# Installing into the live system as root also creates the unprivileged
# user the sessions run as.  uninstall leaves the user, the state and an
# edited relayd.conf alone.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(EXAMPLEDIR) $(DESTDIR)$(SYSCONFDIR) \
	    $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/relayd $(DESTDIR)$(SBINDIR)/relayd
	install -m 755 $(BUILD)/relayctl $(DESTDIR)$(SBINDIR)/relayctl
	install -m 755 $(BUILD)/relay $(DESTDIR)$(BINDIR)/relay
	for m in $(MANS); do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
	install -m 644 relayd/relayd.conf $(DESTDIR)$(EXAMPLEDIR)/relayd.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/relayd.conf ] || install -m 644 \
	    relayd/relayd.conf $(DESTDIR)$(SYSCONFDIR)/relayd.conf
	sed 's|@SBINDIR@|$(SBINDIR)|g' relayd/relayd.service \
	    > $(DESTDIR)$(UNITDIR)/relayd.service.tmp
	chmod 644 $(DESTDIR)$(UNITDIR)/relayd.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/relayd.service.tmp \
	    $(DESTDIR)$(UNITDIR)/relayd.service
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && \
	    ! getent passwd $(RELAYD_USER) >/dev/null; then \
		echo "useradd --system $(RELAYD_USER)"; \
		useradd --system --no-create-home --home-dir /nonexistent \
		    --shell /usr/sbin/nologin $(RELAYD_USER) || exit 1; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/relayd $(DESTDIR)$(SBINDIR)/relayctl \
	    $(DESTDIR)$(BINDIR)/relay $(DESTDIR)$(UNITDIR)/relayd.service
	for m in $(MANS); do \
		s=$${m##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; \
	done
	if cmp -s relayd/relayd.conf $(DESTDIR)$(SYSCONFDIR)/relayd.conf; \
	then rm -f $(DESTDIR)$(SYSCONFDIR)/relayd.conf; fi
	rm -f $(DESTDIR)$(EXAMPLEDIR)/relayd.conf
	-rmdir $(DESTDIR)$(EXAMPLEDIR) 2>/dev/null

clean:
	rm -rf build build-asan build-fuzz
