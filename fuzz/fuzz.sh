#!/usr/bin/env bash
# Builds and runs the fuzz targets with libFuzzer on stable Rust (docs/fuzzing.md).
#
#   fuzz/fuzz.sh build                 build every target
#   fuzz/fuzz.sh run TARGET [ARGS...]  fuzz TARGET on its kept corpus, one process; ARGS go
#                                      to libFuzzer (e.g. -runs=10000000 or -max_total_time=60)
#   fuzz/fuzz.sh cmin TARGET DIR...    merge DIR... into TARGET's corpus, keeping a minimal set
#                                      (and every crash-*/timeout-*/oom-* input)
#   fuzz/fuzz.sh check SECONDS         run every target for SECONDS on its corpus (CI)
#   fuzz/fuzz.sh repro TARGET FILE...  run TARGET once on FILE... (a crash to reproduce),
#                                      printing what each input gave
#   fuzz/fuzz.sh list                  the targets
#
# New inputs found by `run` go to fuzz/artifacts/TARGET/new (not kept: `cmin` them into the
# corpus); crashes, timeouts and out-of-memory inputs to fuzz/artifacts/TARGET/.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"

TRIPLE=x86_64-unknown-linux-gnu
TARGETS=(elf kernel runtime_api_reader runtime_api_server saved_space zip_package)
# libFuzzer's coverage instrumentation through stable codegen options: what cargo-fuzz
# passes, without its nightly-only -Z flags (no sanitizer: safe Rust needs no ASan to catch
# out-of-bounds, and panics abort). --target keeps the flags off build scripts.
RUSTFLAGS_FUZZ="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FUZZ:-$PWD/target}"
BIN="$CARGO_TARGET_DIR/$TRIPLE/release"
# Limits every run uses: an input-driven allocation over 2 GiB or a run over 10 s is a bug.
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)

build() {
    RUSTFLAGS="$RUSTFLAGS_FUZZ" cargo build --release --locked --target "$TRIPLE" --bins
}

# Arguments that are paths, made absolute (relative ones are taken from the caller's folder).
absolute() {
    local f
    for f in "$@"; do case "$f" in /* | -*) echo "$f" ;; *) echo "$caller/$f" ;; esac; done
}

known() {
    local t
    for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    echo "unknown target $1 (targets: ${TARGETS[*]})" >&2
    exit 2
}

case "${1:-}" in
build)
    build
    ;;
run)
    target=${2:?target}; known "$target"; shift 2
    mkdir -p "artifacts/$target/new" "corpus/$target"
    "$BIN/$target" "${LIMITS[@]}" -artifact_prefix="artifacts/$target/" \
        "artifacts/$target/new" "corpus/$target" "$@"
    ;;
cmin)
    target=${2:?target}; known "$target"; shift 2
    mkdir -p "corpus/$target"
    mapfile -t dirs < <(absolute "$@")
    tmp=$(mktemp -d)
    "$BIN/$target" "${LIMITS[@]}" -merge=1 "$tmp" "corpus/$target" "${dirs[@]}"
    # Inputs that once crashed stay, under their own names, whatever the merge chose.
    for kept in "corpus/$target"/{crash,timeout,oom,leak,slow-unit}-*; do
        [ -e "$kept" ] || continue
        rm -f "$tmp/$(sha1sum "$kept" | cut -d' ' -f1)"
        cp "$kept" "$tmp/"
    done
    rm -rf "corpus/$target"
    mv "$tmp" "corpus/$target"
    chmod 755 "corpus/$target"
    ls "corpus/$target" | wc -l
    ;;
check)
    seconds=${2:?seconds}
    build
    for target in "${TARGETS[@]}"; do
        echo "--- $target: ${seconds}s on corpus/$target"
        mkdir -p "artifacts/$target"
        # Inputs found go to a scratch directory, so the kept corpus is only read.
        scratch=$(mktemp -d)
        log="artifacts/$target/check.log"
        status=0
        "$BIN/$target" "${LIMITS[@]}" -artifact_prefix="artifacts/$target/" \
            -max_total_time="$seconds" -print_final_stats=1 "$scratch" "corpus/$target" \
            >"$log" 2>&1 || status=$?
        rm -rf "$scratch"
        grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec)' \
            "$log" || true
        if [ "$status" -ne 0 ]; then
            tail -n 40 "$log" >&2
            echo "FAIL: $target exited $status; the input is under fuzz/artifacts/$target/" >&2
            exit 1
        fi
    done
    ;;
repro)
    target=${2:?target}; known "$target"; shift 2
    mapfile -t files < <(absolute "$@")
    FUZZ_PRINT=1 "$BIN/$target" "${LIMITS[@]}" "${files[@]}"
    ;;
list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
*)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
