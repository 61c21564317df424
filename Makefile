# plm - `make` builds build/plm and the tests; `make demo` runs the demo; `make test` runs
# the test suite; `make asan` builds and runs it under AddressSanitizer + UBSan;
# `make check` does both; `make bench` runs the benchmarks.
CC      ?= gcc
BUILD   ?= build
# 512-bit vectors where the CPU has them (gcc's -march=native prefers 256 on Intel): the
# elementwise passes (GELU, LayerNorm, softmax, AdamW) made a small BERT step 3-4% faster,
# fp32 and bf16, on an AVX-512 Xeon (bench/README.md); a no-op on AVX2-only CPUs.
OPT     ?= -O3 -march=native -mprefer-vector-width=512
CFLAGS  ?= $(OPT) -g
# No FP traps and no errno from libm: IEEE arithmetic is unchanged, but loops with
# selects and math calls (softmax, GELU) can be vectorised.
CFLAGS  += -std=c17 -Wall -Wextra -Werror -fopenmp -fno-trapping-math -fno-math-errno -D_GNU_SOURCE -Isrc
# GEMM: oneDNN, plus OpenBLAS's OpenMP build (Debian libopenblas0-openmp, linked by
# soname) for the layouts where it measured faster; one OpenMP runtime (libgomp)
# drives plm and both libraries. bench/README.md has the measurements.
OPENBLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
LDLIBS  += -ldnnl -L$(OPENBLAS_DIR) -l:libopenblas.so.0 -Wl,-rpath,$(OPENBLAS_DIR) -lcjson -lxxhash -lnettle -lpcre2-8 -lutf8proc -lm -fopenmp

# Data parallelism over MPI (src/train/dist.c): MPI=1 builds with Open MPI (Debian's
# libopenmpi-dev), MPI=0 without (a world of one process). Default: with, when mpicc exists.
MPI ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
CFLAGS  += -DPLM_MPI $(shell mpicc --showme:compile)
LDLIBS  += $(shell mpicc --showme:link)
endif

LIB_SRC  := $(filter-out src/cli/%,$(wildcard src/*/*.c))
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HEADERS  := $(wildcard src/*/*.h) $(wildcard tests/*.h)

.PHONY: all test check asan demo bench format format-check clean fuzz
all: $(BUILD)/plm $(TESTS)

# The README's two commands end in these.
demo: $(BUILD)/plm
	./$(BUILD)/plm demo

# Both suites run even when the first fails; each leaves its counts in a file and the
# closing line is the one "N passed, N failed" over both (non-zero exit on any failure;
# a suite that did not get to count, e.g. a failed build, counts as a failure).
check:
	@rm -f $(BUILD)/check-counts build-asan/check-counts
	-@PLM_COUNTS=$(CURDIR)/$(BUILD)/check-counts PLM_SUITE="normal build" $(MAKE) --no-print-directory test
	-@PLM_COUNTS=$(CURDIR)/build-asan/check-counts PLM_SUITE="sanitizer build" $(MAKE) --no-print-directory asan
	@bash scripts/check_summary.sh "normal build=$(BUILD)/check-counts" "sanitizer build=build-asan/check-counts"

$(BUILD)/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# dist.o is rebuilt when MPI changes
$(BUILD)/src/train/dist.o: $(BUILD)/mpi-$(MPI).stamp
$(BUILD)/mpi-$(MPI).stamp:
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/mpi-*.stamp
	@touch $@

$(BUILD)/libplm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/plm: $(CLI_OBJ) $(BUILD)/libplm.a
	$(CC) $(CFLAGS) $(CLI_OBJ) $(BUILD)/libplm.a $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(BUILD)/libplm.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libplm.a $(LDLIBS) -o $@

$(BUILD)/bench/plm_step: bench/plm_step.c $(BUILD)/libplm.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/libplm.a $(LDLIBS) -o $@

# MPI_Allreduce latency / bandwidth (docs/scaling.md); needs MPI=1
$(BUILD)/bench/allreduce: bench/allreduce.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LDLIBS) -o $@

test: all
	BUILD=$(BUILD) bash tests/run.sh $(TEST_FILTER)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -march=native -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LDLIBS="$(LDLIBS) -fsanitize=address,undefined" all
	BUILD=build-asan PLM_SANITIZE=1 bash tests/run.sh $(TEST_FILTER)

bench: all $(BUILD)/bench/plm_step
	bash bench/run.sh

format:
	clang-format -i $(wildcard src/*/*.[ch] tests/*.[ch] bench/*.[ch] fuzz/*.[ch])

format-check:
	clang-format --dry-run -Werror $(wildcard src/*/*.[ch] tests/*.[ch] bench/*.[ch] fuzz/*.[ch])

clean:
	rm -rf build build-asan build-fuzz

# Fuzz targets (fuzz/*.c) against the tokenizer, core, safetensors, config and dataset sources,
# with clang's libFuzzer, ASan and UBSan; scripts/fuzz.sh runs each for a bounded time.
FUZZ_LIB := $(wildcard src/core/*.c src/tokenizer/*.c) src/train/safetensors.c src/model/config.c \
            src/tasks/datasets.c src/tasks/chat.c src/data/corpus.c src/data/shards.c
FUZZ_BIN := $(patsubst fuzz/%.c,build-fuzz/%,$(wildcard fuzz/*.c))
fuzz: $(FUZZ_BIN)
build-fuzz/%: fuzz/%.c $(FUZZ_LIB) $(HEADERS) Makefile
	@mkdir -p build-fuzz
	clang -g -O1 -std=c17 -D_GNU_SOURCE -Isrc -fopenmp -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $< $(FUZZ_LIB) -lcjson -lxxhash -lnettle -lutf8proc -lpcre2-8 -lm -o $@
