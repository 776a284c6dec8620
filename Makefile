# masterd + libzserver.  `make` builds, `make test` runs every test, `make run` serves etc/mail.
# Sources are picked up by wildcard: a new libzserver/LAYER/*.c joins its layer, a new t/unit/*.c
# becomes a Check test, a new sample/*.c a sample server.
# libzserver is six layers, each a folder and an archive, each using only those before it:
#   core (config, listen, service, status, log, board) < super (supervision: generations, spawn,
#   reaping, strays) < server (the server process skeleton) < aio | co (the two modes; the
#   coroutine runtime and its syscall hooks); master (zmaster_server_main: what masterd is) sits
#   on super beside server.  masterd is main() over master, super and core only (libzmaster.a).

VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= cc
OPT       ?= -O2 -g
SAN       ?=
CFLAGS_W  := -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -DMASTERD_VERSION='"$(VERSION)"'
SAN_FLAGS := -fsanitize=address,undefined
ifeq ($(SAN),1)
OPT       := -O1 -g -fno-omit-frame-pointer $(SAN_FLAGS) -fno-sanitize-recover=undefined
endif
CFLAGS    := $(OPT) $(CFLAGS_W) -fPIC -Ilibzserver -Ilibzserver/core $(EXTRA_CFLAGS)
LDFLAGS   := $(if $(filter 1,$(SAN)),$(SAN_FLAGS)) $(EXTRA_LDFLAGS)
LIBS      := -linih -lev -ldl -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

# A sanitizer build lives beside the normal one, so both can exist (and run) at once.
B         := $(if $(filter 1,$(SAN)),build-san,build)
export ZS_BUILD := $(abspath $(B))
LAYERS    := core super server aio co master
layer_obj = $(patsubst %.c,$(B)/%.o,$(sort $(wildcard libzserver/$(1)/*.c))) $(patsubst %.S,$(B)/%.o,$(sort $(wildcard libzserver/$(1)/*.S)))
LIB_OBJ   := $(foreach l,$(LAYERS),$(call layer_obj,$(l)))
LAYER_LIBS := $(LAYERS:%=$(B)/libzs_%.a)
LIB_HDR   := $(wildcard libzserver/*.h libzserver/*/*.h)
MD_SRC    := $(sort $(wildcard masterd/*.c))
MD_OBJ    := $(MD_SRC:%.c=$(B)/%.o)
SAMPLE_SRC := $(sort $(wildcard sample/*.c))
SAMPLES   := $(SAMPLE_SRC:sample/%.c=$(B)/sample/%)
UNIT_SRC  := $(sort $(wildcard t/unit/*.c))
UNITS     := $(UNIT_SRC:t/unit/%.c=$(B)/t/unit/%)
TOOL_SRC  := $(sort $(wildcard t/tools/*.c))
TOOLS     := $(TOOL_SRC:t/tools/%.c=$(B)/t/tools/%)
DEPS_STAMP := $(B)/.deps-ok

.SECONDEXPANSION:
.PHONY: all deps test unit e2e run install clean bench fuzz valgrind fuzz-smoke chaos
all: $(B)/masterd/masterd $(B)/masterd/masterctl $(LAYER_LIBS) $(B)/libzmaster.a $(B)/libzserver.a $(B)/libzserver.so $(B)/libzserver.pc $(SAMPLES) $(TOOLS)

# Install the Debian packages when a header is missing (fresh machine: clone, `make test`).
$(DEPS_STAMP):
	@for h in ev.h ini.h check.h; do \
	  echo '#include <'$$h'>' | $(CC) -E -x c - >/dev/null 2>&1 || { sh scripts/install-deps.sh && break; }; \
	done
	@command -v python3 >/dev/null 2>&1 || sh scripts/install-deps.sh python3
	@command -v strace >/dev/null 2>&1 || sh scripts/install-deps.sh strace
	@python3 -c 'import prometheus_client' >/dev/null 2>&1 || [ -f /usr/lib/python3/dist-packages/prometheus_client/parser.py ] || \
	  sh scripts/install-deps.sh python3-prometheus-client
	@mkdir -p $(B) && touch $@
deps: $(DEPS_STAMP)

$(B)/%.o: %.c $(DEPS_STAMP) $(LIB_HDR) $(wildcard sample/*.h t/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(B)/%.o: %.S $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libzs_%.a: $$(call layer_obj,%)
	@rm -f $@
	ar rcs $@ $^
$(B)/libzserver.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
# A master of one's own (zmaster_server_main, doc/CONTRACT.md §13) links this: the master,
# supervision and core layers, without the server runtime or its syscall hooks.
MASTER_OBJ := $(foreach l,core super master,$(call layer_obj,$(l)))
$(B)/libzmaster.a: $(MASTER_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(B)/libzserver.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libzserver.so.0 -o $@ $^ $(LDFLAGS) $(LIBS)
$(B)/libzserver.pc: Makefile
	@mkdir -p $(B)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: libzserver\nDescription: server side of masterd (aio and coroutine main loops)\nVersion: %s\nLibs: -L$${libdir} -lzserver\nLibs.private: -linih -lev -ldl\nCflags: -I$${includedir}\n' '$(PREFIX)' '$(VERSION)' > $@

# Server programs link the archive whole, so the coroutine syscall hooks are always the ones used.
LINK_LIB := -Wl,--whole-archive $(B)/libzserver.a -Wl,--no-whole-archive $(LIBS)

# The supervisor links what it calls and nothing more: no server runtime, no syscall hooks
# (t/e2e/test_layers.py checks its symbols).
$(B)/masterd/masterd: $(MD_OBJ) $(B)/libzmaster.a
	$(CC) -o $@ $(MD_OBJ) $(LDFLAGS) $(B)/libzmaster.a $(LIBS)
# masterctl: a plain client of the control socket (masterd/ctl/, outside MD_SRC); it links nothing of ours.
$(B)/masterd/masterctl: masterd/ctl/masterctl.c $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(CFLAGS_W) -o $@ $< $(LDFLAGS)
$(B)/sample/%: $(B)/sample/%.o $(B)/libzserver.a
	$(CC) -o $@ $< $(LDFLAGS) $(LINK_LIB)
# A sample master links as a lib-zc user's own master would: -lzmaster.
$(B)/sample/custom_master: $(B)/sample/custom_master.o $(B)/libzmaster.a
	$(CC) -o $@ $< $(LDFLAGS) $(B)/libzmaster.a $(LIBS)
$(B)/t/unit/%: $(B)/t/unit/%.o $(B)/libzserver.a
	$(CC) -o $@ $< $(LDFLAGS) $(LINK_LIB) $(CHECK_LIBS)
# Test tools check libzserver from outside: they run no server runtime.  A tool whose name
# contains "tlib" is a test server built on libzserver; the others may use core's wire format
# (libzs_core.a: the status records, the board) to speak to masterd as a child of any kind would.
$(B)/t/tools/%: t/tools/%.c $(DEPS_STAMP) $(B)/libzserver.a $(B)/libzs_core.a $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(CFLAGS_W) -Ilibzserver -Ilibzserver/core -o $@ $< $(LDFLAGS) $(if $(findstring tlib,$*),$(LINK_LIB),$(B)/libzs_core.a -linih -lev) -lpthread

# valgrind memcheck on masterd through the masterd-focused end-to-end modules (E2E_VALGRIND=1 in
# t/e2e/lib.py): a memory error or a definite leak in any masterd fails the run.
VALGRIND_MODULES := test_core_cli test_core_restart test_core_stop test_notify test_reload \
	test_fault_stuck test_fault_master_death test_fault_log test_fault_fdleak test_fault_crashloop test_privileges
valgrind: all
	@command -v valgrind >/dev/null 2>&1 || sh scripts/install-deps.sh valgrind
	@E2E_VALGRIND=1 python3 t/e2e/run.py $(VALGRIND_MODULES)

unit: all $(UNITS)
	@sh t/run-unit.sh $(UNITS)
e2e: all
	@python3 t/e2e/run.py
test: all $(UNITS)
	@sh t/run-all.sh $(UNITS)

run: all
	@mkdir -p $(B)/run
	cd etc/mail && ../../$(B)/masterd/masterd -C . -pid-file ../../$(B)/run/masterd.pid

bench: all
	@sh t/bench/run.sh

# libFuzzer harnesses (t/fuzz/, built with clang into build/fuzz/): `make fuzz` runs each for
# FUZZ_SECONDS on a corpus kept in build/fuzz/corpus/; `make fuzz-smoke` (part of `make test`)
# runs each for 9 s from the checked-in seeds.  Non-zero exit on a crash, leak or hang.
FUZZ_SECONDS ?= 60
fuzz: deps
	@sh t/fuzz/run.sh $(FUZZ_SECONDS)
fuzz-smoke: deps
	@sh t/fuzz/smoke.sh

# Randomized operations against a real masterd (t/chaos/): SECONDS of seeded random reloads,
# signals, kills and hostile children, invariants checked after every step; a failure is shrunk
# to the shortest op list that reproduces it.  SEED= replays a run; SAN=1 uses build-san/.
SECONDS ?= 120
CHAOS_FLAGS ?=
chaos: all
	@python3 t/chaos/chaos.py --build $(B) --seconds $(SECONDS) $(if $(SEED),--seed $(SEED)) $(CHAOS_FLAGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/masterd
	install -m 0755 $(B)/masterd/masterd $(DESTDIR)$(PREFIX)/sbin/masterd
	install -m 0755 $(B)/masterd/masterctl $(DESTDIR)$(PREFIX)/sbin/masterctl
	install -m 0755 scripts/general_master.sh $(DESTDIR)$(PREFIX)/share/masterd/general_master.sh
	install -m 0644 $(B)/libzserver.a $(DESTDIR)$(PREFIX)/lib/libzserver.a
	install -m 0644 $(B)/libzmaster.a $(DESTDIR)$(PREFIX)/lib/libzmaster.a
	install -m 0755 $(B)/libzserver.so $(DESTDIR)$(PREFIX)/lib/libzserver.so.$(VERSION)
	ln -sf libzserver.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libzserver.so.0
	ln -sf libzserver.so.0 $(DESTDIR)$(PREFIX)/lib/libzserver.so
	install -m 0644 libzserver/zserver.h libzserver/zc.h libzserver/zc_coroutine.h libzserver/core/zserver_core.h libzserver/core/zc_core.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 $(B)/libzserver.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/libzserver.pc
	@if [ -d man ]; then for m in man/*.[0-9]; do s=$${m##*.}; install -d $(DESTDIR)$(PREFIX)/share/man/man$$s; install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done; fi

clean:
	rm -rf $(B)
