# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
# gmemscope build.  `make help` lists the targets.
#
# Layout of what is generated (all under $(O), default build/):
#   bpf/*.bpf.o      BPF objects         skel/*.skel.h   bpftool skeletons
#   obj/             user objects + .d   lib/libgmemscope.a
#   bin/             gmemd gmem-load gmemtop gmemtrace
#   tests/           unit test binaries

O ?= build
CLANG ?= $(shell command -v clang-19 || command -v clang)
BPFTOOL ?= $(shell command -v bpftool || echo /usr/sbin/bpftool)
CC ?= cc
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:

PKGS := libbpf libelf zlib libmicrohttpd jansson ncursesw yaml-0.1 gnutls
CFLAGS ?= -O2 -g
# Reasons and labels are cut to fixed buffers on purpose: truncation is not a bug there.
WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wno-unused-parameter -Wno-format-truncation
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Isrc -I$(O)/skel
USER_CFLAGS = $(CFLAGS) $(WARN) -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lbpf -lelf -lz -lmicrohttpd -ljansson -lncursesw -lyaml -lgnutls) -lcrypt -lpthread -lm

BPF_CFLAGS := -g -O2 --target=bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Wno-unused-function \
	-Ivmlinux -Iinclude -Ibpf
# BPF headers are listed, not guessed: every BPF object depends on all of them.
BPF_HDRS := $(wildcard bpf/*.bpf.h) $(wildcard include/*.h) vmlinux/vmlinux.h

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(O)/bpf/%.bpf.o,$(BPF_SRCS))

# Policies: one source, two objects. NAME.bpf.o holds the SEC("syscall") form gmemd and the
# what-if replay run with BPF_PROG_RUN; NAME.struct_ops.bpf.o (-DGMEM_POLICY_STRUCT_OPS) the
# struct_ops map for a kernel that registers gmem_policy_ops. libbpf fails a whole object whose
# struct_ops type the kernel lacks, hence two objects. tests/policies/ are deliberately bad
# policies for the tests (syscall form only).
POLICY_SRCS := $(wildcard bpf/policies/*.bpf.c)
POLICY_HDRS := $(wildcard bpf/policies/*.bpf.h) include/gmem_policy.h
POLICY_OBJS := $(patsubst bpf/policies/%.bpf.c,$(O)/bpf/policies/%.bpf.o,$(POLICY_SRCS)) \
	$(patsubst bpf/policies/%.bpf.c,$(O)/bpf/policies/%.struct_ops.bpf.o,$(POLICY_SRCS)) \
	$(patsubst tests/policies/%.bpf.c,$(O)/tests/policies/%.bpf.o,$(wildcard tests/policies/*.bpf.c))
SKELS := $(patsubst bpf/%.bpf.c,$(O)/skel/%.skel.h,$(BPF_SRCS))

LIB_SRCS := $(wildcard src/*.c)
LIB_OBJS := $(patsubst src/%.c,$(O)/obj/src/%.o,$(LIB_SRCS))
LIB := $(O)/lib/libgmemscope.a

TOOL_SRCS := $(wildcard tools/*.c)
TOOLS := $(patsubst tools/%.c,$(O)/bin/%,$(TOOL_SRCS))
# gmem-load is too big for one file: tools/gmem-load/*.c link into one program, as bpftool's
# src/ does (tools/gmem-load/gmem-load.h says which file holds what).
GMEM_LOAD_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(wildcard tools/gmem-load/*.c))
TOOLS += $(O)/bin/gmem-load
# gmemtrace likewise: tools/gmemtrace/*.c, one file per verb (tools/gmemtrace/gmemtrace.h).
GMEMTRACE_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(wildcard tools/gmemtrace/*.c))
TOOLS += $(O)/bin/gmemtrace

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNITS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

# Man pages: help2man over each program's own --help (scripts/help-for-man adapts its shape),
# plus man/PROG.h2m for what a --help has no place for (NAME, FILES, SEE ALSO). gmemd is a
# daemon, section 8; the rest section 1.
MAN8 := gmemd
MAN1 := gmemtop gmemtrace gmem-load gmem-policy
MANS := $(patsubst %,$(O)/man/%.8,$(MAN8)) $(patsubst %,$(O)/man/%.1,$(MAN1))

# The systemd unit, with the installed gmemd's path in ExecStart.
UNIT := $(O)/systemd/gmemd.service

# bench/hostwork: the host work unrelated to guest_memfd that bench/hostcost times (not installed).
HOSTWORK := $(O)/bench/hostwork

.PHONY: all
all: $(TOOLS) $(UNITS) $(POLICY_OBJS) $(MANS) $(UNIT) $(HOSTWORK)

$(HOSTWORK): bench/hostwork.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(USER_CFLAGS) $< -o $@

$(UNIT): systemd/gmemd.service.in $(O)/prefix
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)sed 's|@BINDIR@|$(PREFIX)/bin|g' $< > $@

$(O)/man/%.8 $(O)/man/%.1: $(O)/bin/% man/%.h2m scripts/help-for-man
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)help2man --no-info --no-discard-stderr --section=$(subst .,,$(suffix $@)) \
		--manual=gmemscope --source="gmemscope $(REVISION)" --include=man/$*.h2m \
		--output=$@.tmp "scripts/help-for-man $<"
	$(Q)scripts/help-for-man --fix-roff $@.tmp && mv $@.tmp $@

$(O)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(O)/bpf/policies/%.struct_ops.bpf.o: bpf/policies/%.bpf.c $(BPF_HDRS) $(POLICY_HDRS)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -Ibpf/policies -DGMEM_POLICY_STRUCT_OPS -c $< -o $@

$(O)/bpf/policies/%.bpf.o: bpf/policies/%.bpf.c $(BPF_HDRS) $(POLICY_HDRS)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -Ibpf/policies -c $< -o $@

$(O)/tests/policies/%.bpf.o: tests/policies/%.bpf.c $(BPF_HDRS) $(POLICY_HDRS)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -Ibpf/policies -c $< -o $@

$(O)/skel/%.skel.h: $(O)/bpf/%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

$(O)/obj/%.o: %.c $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(USER_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/bin/%: $(O)/obj/tools/%.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(O)/bin/gmem-load: $(GMEM_LOAD_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

$(O)/bin/gmemtrace: $(GMEMTRACE_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@

# gmemd alone tells systemd it is ready (Type=notify): only it links libsystemd.
$(O)/bin/gmemd: LDLIBS += $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
$(O)/obj/tools/gmemd.o: USER_CFLAGS += $(shell pkg-config --cflags libsystemd 2>/dev/null)

$(O)/tests/%: $(O)/obj/tests/unit/%.o $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS) -lcmocka -o $@

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)

# --version names the git revision. $(O)/revision changes only when the revision does, so
# cli.o (the one object that carries it) is rebuilt then and only then.
REVISION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(O)/revision: FORCE
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(REVISION)' | cmp -s - $@ || echo '$(REVISION)' > $@
$(O)/obj/src/cli.o: $(O)/revision
# The same for PREFIX, which the unit's ExecStart names.
$(O)/prefix: FORCE
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' > $@
$(O)/obj/src/cli.o: CPPFLAGS += -DGMEMSCOPE_REVISION='"$(REVISION)"'
# gmemd --help names the installed design notes.
$(O)/obj/tools/gmemd.o: $(O)/prefix
$(O)/obj/tools/gmemd.o: CPPFLAGS += -DGMEMSCOPE_DOCDIR='"$(DOCDIR)"'
.PHONY: FORCE
FORCE:

# ---- tests -----------------------------------------------------------------------------------
# One runner for all layers (unit, live, end-to-end); it ends with "N passed, N failed, N skipped".
# TESTS=tests/live/test_spine.py narrows it; PYTEST_ARGS passes more.
PYTHON ?= /usr/bin/python3
TESTS ?= tests
.PHONY: check check-build
# On a fresh machine `sudo make check` alone does the set-up: the Debian packages first (only
# what is missing, so a no-op on a set-up machine), then the build, then the runner.
# --durations: CI's log then says where its time went (the lab's boots land on the first test of
# each kernel), just above the summary line.
check:
	$(Q)$(MAKE) --no-print-directory deps
	$(Q)$(MAKE) --no-print-directory check-build
	$(Q)GMEM_BUILD=$(abspath $(O)) $(PYTHON) -m pytest -p no:cacheprovider -q -rs --durations=25 $(PYTEST_ARGS) $(TESTS)
check-build: all

# The kernel lab (tests/lab/): Debian's kernels under QEMU, the live suites inside on both tiers.
# make check runs it too; check-host leaves it out; GMEM_LAB_KERNELS="7.2.13+deb14" narrows it.
.PHONY: lab check-host
lab: all
	$(Q)GMEM_BUILD=$(abspath $(O)) $(PYTHON) -m pytest -p no:cacheprovider -q -rs $(PYTEST_ARGS) tests/lab
check-host: check-build
	$(Q)GMEM_LAB=0 GMEM_BUILD=$(abspath $(O)) $(PYTHON) -m pytest -p no:cacheprovider -q -rs $(PYTEST_ARGS) $(TESTS)

.PHONY: bench
# Each prints figures or ratios against a baseline measured in the same run; none is a test.
# One that needs guest_memfd VMs on a kernel without them says so and how to run it in the
# lab (bench/needs-guest-memfd, exit 77), and the others still run.
BENCHES ?= hostcost run-host run-guest gmemtrace policy gmemtop_cpu scrape_latency
bench: all
	$(Q)for b in $(BENCHES); do case $$b in \
		run-host) GMEM_BUILD=$(abspath $(O)) WORKLOAD=host bench/run ;; \
		run-guest) GMEM_BUILD=$(abspath $(O)) WORKLOAD=guest bench/run ;; \
		*) GMEM_BUILD=$(abspath $(O)) bench/$$b ;; esac; rc=$$?; \
		[ $$rc = 0 ] || [ $$rc = 77 ] || exit 1; done

# ---- fuzzing ---------------------------------------------------------------------------------
# libFuzzer targets: tests/fuzz/fuzz_*.c, each built by clang with ASan and UBSan together with
# the library sources it exercises (not from libgmemscope.a, which the system compiler builds
# without instrumentation). FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION lets the fuzzer past the
# recording checksums. make check runs them for a bounded time (tests/fuzz/test_fuzz.py);
# `make fuzz` only builds them. Needs Debian's libclang-rt-19-dev.
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -D_GNU_SOURCE -Iinclude -Isrc \
	$(shell pkg-config --cflags jansson zlib 2>/dev/null)
FUZZ_LIB_SRCS := src/recording.c src/model.c src/u64map.c src/histo.c src/export.c src/strbuf.c src/kvmstats.c \
	src/vmname.c
FUZZERS := $(patsubst tests/fuzz/%.c,$(O)/fuzz/%,$(FUZZ_SRCS))

$(O)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) $(wildcard src/*.h) $(wildcard include/*.h)
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(FUZZ_LIB_SRCS) -ljansson -lz -lpthread -lm -o $@

.PHONY: fuzz
fuzz: $(FUZZERS)
check-build: $(FUZZERS)
# ---- end of fuzzing --------------------------------------------------------------------------

# ---- dependencies ----------------------------------------------------------------------------
# Debian packages, installed only when missing. The last line is what the lab needs to rebuild
# kvm.ko from Debian's linux-source (tests/lab/kvmbuild.py): Kbuild's host tools, pahole.
DEB_PKGS := clang-19 llvm-19 libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config make \
	libmicrohttpd-dev libjansson-dev libncurses-dev libyaml-dev libgnutls28-dev libcrypt-dev \
	libcmocka-dev openssl libsystemd-dev help2man man-db bash-completion systemd \
	python3 python3-pytest tmux bpftrace prometheus libclang-rt-19-dev linux-perf bc util-linux \
	qemu-system-x86 busybox-static cpio kmod \
	gcc flex bison dwarves libssl-dev xz-utils
.PHONY: deps
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "all build and test dependencies present"; fi

# ---- install -------------------------------------------------------------------------------
# The programs to $(PREFIX)/bin, their man pages to $(PREFIX)/share/man, bash completion,
# gmemd.service to $(PREFIX)/lib/systemd/system, the policies where the policy loader looks for them
# ($(PREFIX)/lib/gmemscope/policies, beside bin/), docs/ to $(PREFIX)/share/doc/gmemscope and
# examples/ to $(PREFIX)/share/gmemscope. DESTDIR for packaging.
PREFIX ?= /usr/local
PROGRAMS := gmemd gmemtop gmemtrace gmem-load gmem-policy
# The design notes and protocol documents (gmemd --help names DOCDIR's design.md), and the
# examples: Prometheus's scrape config, rules and their tests, the Grafana dashboard.
DOCDIR ?= $(PREFIX)/share/doc/gmemscope
DATADIR ?= $(PREFIX)/share/gmemscope
DOCS := $(wildcard docs/*.md)
PROM_EXAMPLES := $(wildcard examples/prometheus/*.yml)
GRAFANA_EXAMPLES := $(wildcard examples/grafana/*.json)
# bash-completion's loader sources the file named after the command being completed: one
# file registers all five programs, and each program's name links to it.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
UNITDIR ?= $(PREFIX)/lib/systemd/system
.PHONY: install uninstall
install: all
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/gmemscope/policies \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	$(Q)install -m 0644 $(patsubst %,$(O)/man/%.1,$(MAN1)) $(DESTDIR)$(PREFIX)/share/man/man1/
	$(Q)install -m 0644 $(patsubst %,$(O)/man/%.8,$(MAN8)) $(DESTDIR)$(PREFIX)/share/man/man8/
	$(Q)install -d $(DESTDIR)$(BASHCOMPDIR)
	$(Q)install -m 0644 completion/gmemscope.bash $(DESTDIR)$(BASHCOMPDIR)/gmemscope
	$(Q)for p in $(PROGRAMS); do ln -sf gmemscope $(DESTDIR)$(BASHCOMPDIR)/$$p; done
	$(Q)install -d $(DESTDIR)$(UNITDIR)
	$(Q)install -m 0644 $(UNIT) $(DESTDIR)$(UNITDIR)/gmemd.service
	$(Q)install -d $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)/prometheus $(DESTDIR)$(DATADIR)/grafana
	$(Q)install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(Q)install -m 0644 $(PROM_EXAMPLES) $(DESTDIR)$(DATADIR)/prometheus/
	$(Q)install -m 0644 $(GRAFANA_EXAMPLES) $(DESTDIR)$(DATADIR)/grafana/
	$(Q)for p in $(PROGRAMS); do install -m 0755 $(O)/bin/$$p $(DESTDIR)$(PREFIX)/bin/$$p; done
	$(Q)install -m 0644 $(patsubst bpf/policies/%.bpf.c,$(O)/bpf/policies/%.bpf.o,$(POLICY_SRCS)) \
		$(patsubst bpf/policies/%.bpf.c,$(O)/bpf/policies/%.struct_ops.bpf.o,$(POLICY_SRCS)) \
		$(DESTDIR)$(PREFIX)/lib/gmemscope/policies/
	@echo "installed $(PROGRAMS) to $(DESTDIR)$(PREFIX)/bin"

uninstall:
	$(Q)for p in $(PROGRAMS); do rm -f $(DESTDIR)$(PREFIX)/bin/$$p; done
	$(Q)rm -rf $(DESTDIR)$(PREFIX)/lib/gmemscope $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
	$(Q)rm -f $(DESTDIR)$(UNITDIR)/gmemd.service
	$(Q)rm -f $(DESTDIR)$(BASHCOMPDIR)/gmemscope $(patsubst %,$(DESTDIR)$(BASHCOMPDIR)/%,$(PROGRAMS))
	$(Q)rm -f $(patsubst %,$(DESTDIR)$(PREFIX)/share/man/man1/%.1,$(MAN1)) \
		$(patsubst %,$(DESTDIR)$(PREFIX)/share/man/man8/%.8,$(MAN8))

# ---- vmlinux.h -------------------------------------------------------------------------------
# Regenerate from the running kernel; replace the committed copy only if it changed.
.PHONY: vmlinux
vmlinux:
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(O)/vmlinux.h.new
	$(Q)if cmp -s $(O)/vmlinux.h.new vmlinux/vmlinux.h; then echo "vmlinux.h unchanged"; \
		rm $(O)/vmlinux.h.new; else mv $(O)/vmlinux.h.new vmlinux/vmlinux.h; \
		echo "vmlinux.h updated"; fi

.PHONY: clean
clean:
	rm -rf $(O)

.PHONY: help
help:
	@echo 'gmemscope targets:'
	@echo '  all (default)  build BPF objects, skeletons, libgmemscope, tools into $(O)/'
	@echo '  check          build, then run every test (unit, live kernel, end to end, kernel lab)'
	@echo '  check-host     the same without the kernel lab (this host only)'
	@echo '  lab            the kernel lab alone: Debian kernels under QEMU, both tiers'
	@echo '  bench          run the benchmarks (ratios against a same-run baseline)'
	@echo '  deps           apt-get install the Debian packages that are missing'
	@echo '  install        programs to $$(PREFIX)/bin, man pages to $$(PREFIX)/share/man,'
	@echo '                 policies to $$(PREFIX)/lib/gmemscope, docs to'
	@echo '                 $$(PREFIX)/share/doc/gmemscope, examples to $$(PREFIX)/share/gmemscope'
	@echo '  vmlinux        regenerate vmlinux/vmlinux.h from /sys/kernel/btf/vmlinux'
	@echo '  clean          remove $(O)/'
	@echo 'variables: O=DIR (build dir), V=1 (show commands), TESTS=path (narrow make check)'
