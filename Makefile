# SPDX-License-Identifier: MIT
# tunlab: one non-recursive Makefile. `make` builds, `make check` tests,
# `make experiments` runs the main job. Both install what they miss (deps).

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
PKG_CONFIG ?= pkg-config
CC ?= cc
BUILD ?= build

# The commit, "-dirty" when the code differs from it: the same definition as
# the run metadata's (experiments/lib/commit.sh says which changes count).
VERSION := $(shell ./experiments/lib/commit.sh 2>/dev/null || echo unknown)

CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -Wall -Wextra -Werror -MMD -MP -D_GNU_SOURCE
CFLAGS += -DTUNLAB_VERSION='"$(VERSION)"'
CFLAGS += $(shell $(PKG_CONFIG) --cflags openssl 2>/dev/null)
LDLIBS += $(shell $(PKG_CONFIG) --libs openssl 2>/dev/null || echo -lssl -lcrypto)
CFLAGS += $(shell $(PKG_CONFIG) --cflags libnetfilter_queue libmnl)
LDLIBS += $(shell $(PKG_CONFIG) --libs libnetfilter_queue libmnl)
CFLAGS += $(shell $(PKG_CONFIG) --cflags libpcap 2>/dev/null)
LDLIBS += $(shell $(PKG_CONFIG) --libs libpcap 2>/dev/null || echo -lpcap)

ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

BASE_SRC := $(wildcard base/*.c)
NFKIT_SRC := $(wildcard nfkit/*.c)
TUNNEL_SRC := $(wildcard tunnel/*.c) $(wildcard dgram/*.c)
# One word per interception approach: its folder (and one line in src/frontends.c).
FRONTENDS := tunbackend nfqueue proxy capture
FRONTEND_SRC := $(foreach f,$(FRONTENDS),$(wildcard $(f)/*.c))
# Frontends the unit tests build but the shipped binary does not register.
TEST_FRONTENDS := tests/skeleton
TEST_FRONTEND_OBJ := $(foreach f,$(TEST_FRONTENDS),$(patsubst %.c,$(BUILD)/%.o,$(wildcard $(f)/*.c)))
.SECONDARY: $(TEST_FRONTEND_OBJ)
CLI_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_SRC := $(BASE_SRC) $(NFKIT_SRC) $(TUNNEL_SRC) $(FRONTEND_SRC) $(CLI_SRC)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

TUNLAB := $(BUILD)/tunlab
# Benchmarks that link the tunnel alone, without any frontend.
TOOL_OBJ := $(BASE_SRC:%.c=$(BUILD)/%.o) $(NFKIT_SRC:%.c=$(BUILD)/%.o) $(TUNNEL_SRC:%.c=$(BUILD)/%.o)
TOOLS := $(BUILD)/tools/tunnel_loopback $(BUILD)/tools/tcp_rr $(BUILD)/tools/hash_flood
# Test tools, linked the same way: tl_peer is a hostile tunnel peer.
TOOLS += $(BUILD)/tools/tl_peer

.PHONY: all deps check experiments-all check-unit check-integration check-sanitize fuzz \
	bench experiments plots paper paper-deps install clean
# pktrate's generator and sink (experiments/pktrate).
TOOLS += $(BUILD)/tools/udp_blast
# The experiment router's delay line (experiments/lib/netns.sh, tl_router_delay).
TOOLS += $(BUILD)/tools/nfq_delay
all: $(TUNLAB) $(UNIT_BIN) $(TOOLS)

$(TUNLAB): $(LIB_OBJ) $(BUILD)/src/main.o
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Only main.o prints the version; the stamp is rewritten, and main.o rebuilt,
# when the version changes, so that --version never names an older commit.
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' >$@

$(BUILD)/src/main.o: $(BUILD)/version.stamp

.PHONY: FORCE
FORCE:

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_OBJ) $(TEST_FRONTEND_OBJ)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(CMOCKA_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(CMOCKA_LIBS) $(LDLIBS)

$(BUILD)/tools/%: experiments/tools/%.c $(TOOL_OBJ)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -pthread -o $@ $(filter %.c %.o,$^) $(LDLIBS)

# The exit's conn table under a hash flood: it needs the proxy frontend.
$(BUILD)/tools/hash_flood: experiments/tools/hash_flood.c $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(BUILD)/tools/%: tests/tools/%.c $(TOOL_OBJ)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

# apt-installs what is missing; does nothing (and needs no network) when all is there.
deps:
	$(Q)./experiments/lib/deps.sh

# The README's test command: unit tests, fuzz smoke run and netns integration
# tests, then the same tests against the sanitizer build. Ends in one
# "N passed, N failed, N skipped" line.
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 all
	$(Q)./tests/run --build $(BUILD) --san-build build/san

check-sanitize: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build/san SAN=1 all
	$(Q)./tests/run --build build/san

fuzz:
	$(Q)./tests/fuzz/run

bench: deps all
	$(Q)./experiments/bench --tunlab $(abspath $(TUNLAB))

# The default experiment set (under 30 min on 2 cores); experiments-all runs
# every set at one commit: a reference run (run-all --list-sets: the times).
experiments: deps all
	$(Q)./experiments/run-all --tunlab $(abspath $(TUNLAB))

experiments-all: deps all
	$(Q)./experiments/run-all --tunlab $(abspath $(TUNLAB)) --set all

plots:
	$(Q)./experiments/lib/plots.sh

# The paper from whatever results/ holds (paper/build); TeX is installed
# here only, not for the tests or experiments.
paper-deps:
	$(Q)./experiments/lib/deps.sh --paper

paper: paper-deps
	$(Q)./paper/build

install: $(TUNLAB)
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(TUNLAB) $(DESTDIR)$(BINDIR)/tunlab
	install -m 0755 experiments/mkpki $(DESTDIR)$(BINDIR)/tunlab-mkpki

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
