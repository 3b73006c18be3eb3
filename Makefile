# hicache -- build, install, test.
#
#   make              build hicache/core.so (and the spec helpers)
#   make test         fuzz the decoder (FUZZ_SECONDS=60; 0 skips), then run
#                     every spec against a throwaway redis-server
#   make test-asan    the same, with the C module built with ASan + UBSan
#   make valgrind     the same, under valgrind memcheck (no definite leaks)
#   make bench        benchmarks (see bench/README.md)
#   make install      install into $(DESTDIR)$(PREFIX) (the module, the Lua
#                     layer, and the `hicache` tool into $(BINDIR))
#
# The test harness (spec/run.sh) exports to the specs:
#   HICACHE_TEST_HOST, HICACHE_TEST_PORT   loopback TCP address of the server
#   HICACHE_TEST_SOCKET                    its unix socket path
#   HICACHE_TEST_CONF                      its config file (to restart it)
#   HICACHE_TEST_DIR                       the temp dir (removed afterwards)
#   HICACHE_TEST_BUILD                     where the spec helpers were built

# LUA=luajit builds against Debian's OpenResty LuaJIT (libluajit2-5.1-dev,
# the Lua 5.1 API) into build/luajit/ (module build/luajit/hicache/core.so)
# and installs into the 5.1 directories; the default is Lua 5.4.
LUA         ?= lua5.4
PKG_CONFIG  ?= pkg-config
ifeq ($(LUA),luajit)
LUA_VERSION := 5.1
LUA_PC      := luajit
BUILD       ?= build/luajit
MODDIR      ?= build/luajit
else
LUA_VERSION ?= $(patsubst lua%,%,$(LUA))
LUA_PC      := lua$(LUA_VERSION)
endif
PREFIX      ?= /usr/local
DESTDIR     ?=
LUA_LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_SHAREDIR?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR      ?= $(PREFIX)/bin

LUA_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(LUA_PC))
HIREDIS_CFLAGS := $(shell $(PKG_CONFIG) --cflags hiredis)
HIREDIS_LIBS   := $(shell $(PKG_CONFIG) --libs hiredis libzstd jansson msgpack libsodium openssl)
LUA_LIBS    := $(shell $(PKG_CONFIG) --libs $(LUA_PC))

OPT         ?= -O2 -g
SANITIZE    ?=
WARN        := -std=c99 -Wall -Wextra -Werror
CFLAGS_ALL  := $(WARN) $(OPT) $(SANITIZE) -fPIC -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
               $(LUA_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SANITIZE) $(LDFLAGS)

# The layers (docs/DESIGN.md): each folder includes only the ones below it.
#   src/lua/        Lua bindings of the cache API          (calls all below)
#   src/router/     which node a command goes to: one pool per server
#   src/transport/  sockets: plain (hc_sock), TLS (hc_tls), connection (hc_conn)
#   src/core/       protocol core: no socket -- requests, replies, codec, names, stats
#   src/base/       the vocabulary every layer uses (commands, time, buffers, Lua compat)
LAYERS   := lua router transport core base
SRC_BASE := src/base/hc_cmd.c
SRC_CORE := src/core/hc_proto.c src/core/hc_xio.c src/core/hc_names.c src/core/hc_entry.c \
            src/core/hc_scripts.c src/core/hc_codec.c src/core/hc_msgpack.c src/core/hc_json.c \
            src/core/hc_stats.c src/core/hc_store.c src/core/hc_slot.c src/core/hc_seal.c
SRC_TRANSPORT := src/transport/hc_sock.c src/transport/hc_tls.c src/transport/hc_conn.c \
                 src/transport/hc_mem.c src/transport/hc_mem_val.c src/transport/hc_mem_cmd.c \
                 src/transport/hc_mem_script.c
SRC_ROUTER := src/router/hc_pool.c src/router/hc_l1.c src/router/hc_sentinel.c src/router/hc_node.c \
              src/router/hc_cluster.c src/router/hc_smaster.c
SRC_LUA  := src/lua/hc_args.c src/lua/hc_reply.c src/lua/hc_cache.c src/lua/hc_read.c \
            src/lua/hc_write.c src/lua/hc_lease.c src/lua/hc_keeper.c src/lua/hc_keys.c \
            src/lua/hc_lproto.c src/lua/hc_client.c src/lua/hc_core.c src/lua/hc_lstore.c \
            src/lua/hc_lsentinel.c src/lua/hc_lseal.c
SRCS := $(SRC_BASE) $(SRC_CORE) $(SRC_TRANSPORT) $(SRC_ROUTER) $(SRC_LUA)
HDRS := $(wildcard src/*/*.h)
INCLUDES := $(LAYERS:%=-Isrc/%)
vpath %.c $(LAYERS:%=src/%)
LUA_MODULES := $(wildcard lua/hicache/*.lua)
CLI_MODULES := $(wildcard lua/hicache/cli/*.lua)

BUILD  ?= build
MODDIR ?= .
OBJS   := $(patsubst %.c,$(BUILD)/%.o,$(notdir $(SRCS)))
MODULE := $(MODDIR)/hicache/core.so
SPECBIN := $(BUILD)/spec


.PHONY: all luajit compat-luajit lint fuzz test test-asan valgrind bench install uninstall clean spec-helpers demo

all: $(MODULE) spec-helpers

$(BUILD)/%.o: %.c $(HDRS) | $(BUILD)
	$(CC) $(CFLAGS_ALL) $(INCLUDES) -c $< -o $@

$(BUILD):
	mkdir -p $(BUILD)

$(MODULE): $(OBJS)
	mkdir -p $(MODDIR)/hicache
	$(CC) -shared $(LDFLAGS_ALL) -o $@ $(OBJS) $(HIREDIS_LIBS) -lpthread -lm

# Test-only helpers: a tiny posix module (fork/waitpid/...) and the
# multi-threaded pool test program.
spec-helpers: $(SPECBIN)/hctest.so $(SPECBIN)/hc_threads $(SPECBIN)/hc_store_threads $(SPECBIN)/hc_lua_threads

$(SPECBIN)/hctest.so: spec/helpers/hctest.c src/base/compat.h
	mkdir -p $(SPECBIN)
	$(CC) $(CFLAGS_ALL) -Isrc/base -shared $(LDFLAGS_ALL) -o $@ $< -lhiredis

$(SPECBIN)/hc_threads: spec/helpers/hc_threads.c
	mkdir -p $(SPECBIN)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(LUA_LIBS) -lpthread -ldl -lm

$(SPECBIN)/hc_lua_threads: spec/helpers/hc_lua_threads.c
	mkdir -p $(SPECBIN)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(LUA_LIBS) -lpthread -ldl -lm

$(SPECBIN)/hc_store_threads: spec/helpers/hc_store_threads.c
	mkdir -p $(SPECBIN)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(LUA_LIBS) -lpthread -ldl -lm

# The C core must also compile against the Lua 5.1 API (LuaJIT 2.1).
LUAJIT_CFLAGS := $(shell $(PKG_CONFIG) --cflags luajit 2>/dev/null)
compat-luajit:
	@test -n "$(LUAJIT_CFLAGS)" || { echo "compat-luajit: needs libluajit-5.1-dev"; exit 1; }
	@for f in $(SRCS); do \
	  $(CC) $(WARN) -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(INCLUDES) $(LUAJIT_CFLAGS) -fsyntax-only $$f || exit 1; \
	done
	@echo "compat-luajit: src/ compiles against $(LUAJIT_CFLAGS)"

# The decoder's libFuzzer target (ASan + UBSan), run before the specs by
# `make test`; FUZZ_SECONDS=0 skips it. One line on the screen; the whole
# output in $(BUILD)/fuzz/fuzz.log.
FUZZ_SECONDS ?= 60
fuzz:
	@if [ "$(FUZZ_SECONDS)" -gt 0 ]; then FUZZ_OUT=$(BUILD)/fuzz fuzz/run.sh $(FUZZ_SECONDS); fi

# luacheck (Debian lua-check) over the Lua layer and the examples, and the
# layering of src/: a file includes headers of its own layer or below.
lint:
	@luacheck --no-color -q lua examples
	@tools/check-layers $(LAYERS)

# The specs test the module just built (also with BUILD=/MODDIR= of your own).
SPEC_ENV := HICACHE_MODDIR=$(abspath $(MODDIR)) HICACHE_TEST_BUILD=$(abspath $(SPECBIN))

# `make test` also builds the LuaJIT module (build/luajit): the OpenResty
# specs load it into a private nginx, and the plain-Lua specs run again
# under luajit.
LUAJIT_BUILD := build/luajit
LUAJIT_ENV := HICACHE_LUAJIT_MODDIR=$(CURDIR)/$(LUAJIT_BUILD) HICACHE_LUAJIT_BUILD=$(CURDIR)/$(LUAJIT_BUILD)/spec

luajit:
	$(MAKE) all LUA=luajit BUILD=$(LUAJIT_BUILD) MODDIR=$(LUAJIT_BUILD)

test: all luajit compat-luajit lint fuzz
	@$(SPEC_ENV) $(LUAJIT_ENV) spec/run.sh

# The sanitized build lives in build/asan, apart from the normal one.
ASAN_DIR := build/asan
test-asan:
	$(MAKE) all BUILD=$(ASAN_DIR) MODDIR=$(ASAN_DIR) OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
	@HICACHE_RUNNER=asan HICACHE_MODDIR=$(CURDIR)/$(ASAN_DIR) \
	  HICACHE_TEST_BUILD=$(CURDIR)/$(ASAN_DIR)/spec spec/run.sh

valgrind: all
	@HICACHE_RUNNER=valgrind $(SPEC_ENV) spec/run.sh

# The benchmarks run the module just built; bench/floor_get.c (the floor:
# the same GET through hiredis's blocking API in a C loop) builds into
# $(BUILD)/bench.
BENCHBIN := $(BUILD)/bench
bench: all luajit $(BENCHBIN)/floor_get
	@$(SPEC_ENV) $(LUAJIT_ENV) HICACHE_BENCH_BIN=$(abspath $(BENCHBIN)) bench/run.sh

$(BENCHBIN)/floor_get: bench/floor_get.c
	mkdir -p $(BENCHBIN)
	$(CC) $(WARN) -O2 -g -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L $(HIREDIS_CFLAGS) $(CFLAGS) \
	  $(LDFLAGS) -o $@ $< -lhiredis

demo: all luajit
	@spec/run.sh --exec $(LUA) examples/profile_service.lua
	@spec/run.sh --exec $(LUA) examples/dashboard/main.lua
	@$(LUAJIT_ENV) spec/run.sh --exec examples/openresty/run.sh

# bin/hicache is installed run by $(LUA) and with the directories above on
# its paths (also for a PREFIX Lua does not search).
install: $(MODULE)
	install -d $(DESTDIR)$(LUA_LIBDIR)/hicache $(DESTDIR)$(LUA_SHAREDIR)/hicache
	install -m 0755 $(MODULE) $(DESTDIR)$(LUA_LIBDIR)/hicache/core.so
	install -m 0644 $(LUA_MODULES) $(DESTDIR)$(LUA_SHAREDIR)/hicache/
	install -d $(DESTDIR)$(LUA_SHAREDIR)/hicache/cli $(DESTDIR)$(BINDIR)
	install -m 0644 $(CLI_MODULES) $(DESTDIR)$(LUA_SHAREDIR)/hicache/cli/
	sed -e '1s|^#!.*|#!/usr/bin/env $(LUA)|' \
	    -e 's|^local installed = nil .*|local installed = { "$(LUA_SHAREDIR)", "$(LUA_LIBDIR)" }|' \
	    bin/hicache > $(DESTDIR)$(BINDIR)/hicache
	chmod 0755 $(DESTDIR)$(BINDIR)/hicache

uninstall:
	rm -f $(DESTDIR)$(LUA_LIBDIR)/hicache/core.so
	rm -f $(addprefix $(DESTDIR)$(LUA_SHAREDIR)/hicache/,$(notdir $(LUA_MODULES)))
	rm -f $(addprefix $(DESTDIR)$(LUA_SHAREDIR)/hicache/cli/,$(notdir $(CLI_MODULES)))
	rm -f $(DESTDIR)$(BINDIR)/hicache
	-rmdir $(DESTDIR)$(LUA_SHAREDIR)/hicache/cli 2>/dev/null

clean:
	rm -rf $(BUILD) hicache
