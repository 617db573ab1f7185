# Cairn -- one plain, non-recursive Makefile.
#
#   make            build the libraries, bin/cairn, bin/cairnctl, bin/promqltest
#   make run        build and start the server on 127.0.0.1:9090 with ./data
#   make test       unit + PromQL + integration tests, fuzz corpora, dependency and format checks
#   make san        the same tests built with ASan + UBSan (into build/san/)
#   make bench      micro benchmarks (release build)
#   make deps       install the Debian packages the build and tests need
#
# Outputs go only to build/<mode>/ and, for the default mode, bin/.

MODE    ?= debug
CC      ?= cc
ifeq ($(origin CC),default)
CC      := cc
endif

CSTD    = -std=c11 -D_POSIX_C_SOURCE=200809L
WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wpointer-arith -Wformat=2 -Wundef -Wvla -Wimplicit-fallthrough -Wcast-align \
          -Wnull-dereference -fno-common
OPT     ?= -O2 -g
SANFL   = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

ifeq ($(MODE),release)
OPT     := -O2 -g -DNDEBUG -D_FORTIFY_SOURCE=2 -fstack-protector-strong
endif
ifeq ($(MODE),san)
OPT     := -O1 -g $(SANFL)
LDSAN   := $(SANFL)
endif
ifeq ($(MODE),tsan)
OPT     := -O1 -g -fsanitize=thread
LDSAN   := -fsanitize=thread
endif

B       := build/$(MODE)
ifeq ($(MODE),debug)
BIN     := bin
else
BIN     := $(B)/bin
endif
GEN     := build/gen

CFLAGS   = $(CSTD) $(WARN) $(OPT) -I. -I$(GEN) -MMD -MP $(XCFLAGS)
LDFLAGS  = $(LDSAN) $(XLDFLAGS)
LIBS_TSDB   = -llmdb -lzstd -lpcre2-8 -lpthread -lm
LIBS_INGEST = -lsnappy -lprotobuf-c -lcurl -lyaml
LIBS_API    = -lmicrohttpd -lcjson -lz
LDLIBS      = $(LIBS_API) $(LIBS_INGEST) $(LIBS_TSDB)

# ---- Sources --------------------------------------------------------------------------------

PROTOS      := $(wildcard ingest/*.proto)
PROTO_C     := $(PROTOS:ingest/%.proto=$(GEN)/ingest/%.pb-c.c)
PROTO_H     := $(PROTO_C:.c=.h)

TSDB_SRC    := $(wildcard tsdb/*.c)
QUERY_SRC   := $(wildcard query/*.c)
INGEST_SRC  := $(wildcard ingest/*.c)
API_SRC     := $(filter-out api/main.c,$(wildcard api/*.c))
TOOLS_SRC   := $(wildcard tools/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIB_TSDB    := $(B)/libtsdb.a
LIB_QUERY   := $(B)/libquery.a
LIB_INGEST  := $(B)/libingest.a
LIB_API     := $(B)/libapi.a
LIB_CAIRN   := $(B)/libcairn.a
ALL_LIBS    := $(LIB_API) $(LIB_INGEST) $(LIB_QUERY) $(LIB_TSDB)

PROGS       :=
ifneq ($(wildcard api/main.c),)
PROGS       += $(BIN)/cairn
endif
ifneq ($(TOOLS_SRC),)
PROGS       += $(BIN)/cairnctl
endif
ifneq ($(wildcard tests/promql/promqltest.c),)
PROGS       += $(BIN)/promqltest
endif

UNIT_SRC    := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN    := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
ITEST_SRC   := $(wildcard tests/integration/test_*.c)
ITEST_BIN   := $(patsubst tests/integration/%.c,$(B)/tests/integration/%,$(ITEST_SRC))
ITEST_SH    := $(wildcard tests/integration/test_*.sh)
BENCH_SRC   := $(wildcard tests/bench/bench_*.c)
BENCH_BIN   := $(patsubst tests/bench/%.c,$(B)/tests/bench/%,$(BENCH_SRC))
FUZZ_SRC    := $(wildcard fuzz/fuzz_*.c)
FUZZ_NAMES  := $(patsubst fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_REG    := $(patsubst %,$(B)/fuzz/regress_%,$(FUZZ_NAMES))
FUZZ_LF     := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_NAMES))
TESTUTIL_SRC := $(wildcard tests/util/*.c)
TESTUTIL_OBJ := $(call obj,$(TESTUTIL_SRC))

.PHONY: all deps run test test-unit test-promql test-integration san tsan fuzz fuzz-run \
        fuzz-regress bench bench-compare format format-check check-deps check lint clean \
        install valgrind

all: $(ALL_LIBS) $(LIB_CAIRN) $(PROGS)

# ---- Rules ------------------------------------------------------------------------------------

$(GEN)/ingest/%.pb-c.c $(GEN)/ingest/%.pb-c.h: ingest/%.proto
	@mkdir -p $(GEN)/ingest
	protoc-c --c_out=$(GEN) $<

$(B)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# Generated protobuf code: compiled without our extra warnings' -Werror surprises being ours.
$(B)/obj/$(GEN)/%.o: $(GEN)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(OPT) -I. -I$(GEN) -MMD -MP $(XCFLAGS) -c -o $@ $<

$(LIB_TSDB): $(call obj,$(TSDB_SRC))
$(LIB_QUERY): $(call obj,$(QUERY_SRC))
$(LIB_INGEST): $(call obj,$(INGEST_SRC)) $(call obj,$(PROTO_C))
$(LIB_API): $(call obj,$(API_SRC))
$(ALL_LIBS):
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^ $(if $^,,$(B)/empty.o)

# libcairn.a: everything a program embedding Cairn needs, in one archive.
$(LIB_CAIRN): $(call obj,$(TSDB_SRC) $(QUERY_SRC) $(INGEST_SRC)) $(call obj,$(PROTO_C))
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(B)/empty.o:
	@mkdir -p $(dir $@)
	echo 'typedef int cairn_empty_unit;' | $(CC) $(CSTD) -x c -c -o $@ -

$(BIN)/cairn: $(call obj,api/main.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/cairnctl: $(call obj,$(TOOLS_SRC)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/promqltest: $(call obj,tests/promql/promqltest.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link only the libraries their folder stands on, so each layer's tests build alone.
$(B)/tests/unit/tsdb/%: $(B)/obj/tests/unit/tsdb/%.o $(TESTUTIL_OBJ) $(LIB_TSDB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LIBS_TSDB)

$(B)/tests/unit/query/%: $(B)/obj/tests/unit/query/%.o $(TESTUTIL_OBJ) $(LIB_QUERY) $(LIB_TSDB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LIBS_TSDB)

$(B)/tests/unit/ingest/%: $(B)/obj/tests/unit/ingest/%.o $(TESTUTIL_OBJ) $(LIB_INGEST) $(LIB_TSDB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LIBS_INGEST) $(LIBS_TSDB)

$(B)/tests/unit/api/%: $(B)/obj/tests/unit/api/%.o $(TESTUTIL_OBJ) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

# tools tests include tools/cairnctl.c themselves (white-box) and link the other tool files.
$(B)/tests/unit/tools/%: $(B)/obj/tests/unit/tools/%.o $(call obj,$(filter-out tools/cairnctl.c,$(TOOLS_SRC))) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(B)/tests/integration/%: $(B)/obj/tests/integration/%.o $(TESTUTIL_OBJ) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(B)/tests/bench/%: $(B)/obj/tests/bench/%.o $(TESTUTIL_OBJ) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/fuzz/regress_%: $(B)/obj/fuzz/fuzz_%.o $(B)/obj/fuzz/standalone.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- Dependencies -------------------------------------------------------------------------------

deps:
	@tools/deps.sh install

# Cheap check run before test/run: installs (and says so) only when something is missing.
.deps-check:
	@tools/deps.sh ensure
.PHONY: .deps-check

# ---- Running -------------------------------------------------------------------------------------

run: .deps-check
	@$(MAKE) --no-print-directory all
	$(BIN)/cairn --web.listen-address=127.0.0.1:9090 --storage.tsdb.path=data/ $(ARGS)

# ---- Tests -----------------------------------------------------------------------------------------

PROMQL_UPSTREAM ?= ../shared/promql-testdata

test: .deps-check
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(ITEST_BIN) $(FUZZ_REG)
	@BIN=$(BIN) B=$(B) MODE=$(MODE) PROMQL_UPSTREAM=$(PROMQL_UPSTREAM) \
	    tests/run.sh $(UNIT_BIN) $(if $(wildcard tests/promql/promqltest.c),promql) \
	    $(ITEST_BIN) $(ITEST_SH) $(FUZZ_REG)
	@$(MAKE) --no-print-directory check-deps format-check

test-unit: .deps-check
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@BIN=$(BIN) B=$(B) tests/run.sh $(UNIT_BIN)

san:
	@$(MAKE) --no-print-directory MODE=san CC=clang test

tsan:
	@$(MAKE) --no-print-directory MODE=tsan CC=clang all $(UNIT_BIN)
	@BIN=build/tsan/bin B=build/tsan TSAN_ONLY=1 tests/run.sh $(filter %_concurrency,$(patsubst $(B)/%,build/tsan/%,$(UNIT_BIN)))

valgrind: all $(UNIT_BIN)
	@for t in $(UNIT_BIN); do valgrind -q --leak-check=full --error-exitcode=1 $$t || exit 1; done

fuzz-regress: all $(FUZZ_REG)
	@BIN=$(BIN) B=$(B) tests/run.sh $(FUZZ_REG)

# libFuzzer builds (clang): build/fuzz/fuzz_<name>. The library sources are compiled once with
# the fuzzer's instrumentation (-fsanitize=fuzzer-no-link) into build/fuzz/libfuzzdeps.a; each
# target links against it.
FUZZ_SAN    = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = $(CSTD) -g -O1 $(FUZZ_SAN) -I. -I$(GEN) $(XCFLAGS)
FUZZ_LIBSRC = $(TSDB_SRC) $(QUERY_SRC) $(INGEST_SRC) $(API_SRC) $(PROTO_C)
FUZZ_LIBOBJ = $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_LIBSRC))

build/fuzz/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/libfuzzdeps.a: $(FUZZ_LIBOBJ)
	rm -f $@
	ar rcs $@ $^

build/fuzz/fuzz_%: fuzz/fuzz_%.c build/fuzz/libfuzzdeps.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libfuzzdeps.a $(LDLIBS)

fuzz: $(FUZZ_LF)

T ?= chunk
SECS ?= 60
fuzz-run: fuzz
	@mkdir -p build/fuzz/corpus-$(T)
	build/fuzz/fuzz_$(T) -max_total_time=$(SECS) build/fuzz/corpus-$(T) fuzz/corpus/$(T) \
	    $(if $(wildcard fuzz/dict/$(T).dict),-dict=fuzz/dict/$(T).dict)

bench:
	@$(MAKE) --no-print-directory MODE=release all $(patsubst $(B)/%,build/release/%,$(BENCH_BIN))
	@for b in $(patsubst $(B)/%,build/release/%,$(BENCH_BIN)); do echo "== $$b"; $$b || exit 1; done

bench-compare:
	@$(MAKE) --no-print-directory MODE=release all
	@tests/bench/compare.sh

# ---- Checks -------------------------------------------------------------------------------------

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find tsdb query ingest api tools tests fuzz -name '*.[ch]')

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format-check: ok"

check-deps:
	@tools/check_deps.sh

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem -I. tsdb query ingest api tools

check: test san lint

# ---- Install -------------------------------------------------------------------------------------

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/cairn/tsdb \
	    $(DESTDIR)$(PREFIX)/include/cairn/query
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB_CAIRN) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 cairn.h $(DESTDIR)$(PREFIX)/include/cairn/
	install -m 644 tsdb/base.h tsdb/tsdb.h $(DESTDIR)$(PREFIX)/include/cairn/tsdb/
	install -m 644 query/query.h $(DESTDIR)$(PREFIX)/include/cairn/query/

clean:
	rm -rf build bin

-include $(shell find $(B) -name '*.d' 2>/dev/null)
