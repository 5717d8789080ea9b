#!/usr/bin/env bash
# Fuzzes the functions that judge untrusted input, with cargo-fuzz (libFuzzer):
#   scripts/fuzz.sh [TARGET] [SECONDS]
# TARGET is url, sniff, classify, a validator (validate_png, validate_jpeg, validate_gif,
# validate_webp, validate_bmp, validate_tiff, validate_ico, validate_isobmff, validate_jxl), or all
# (the default); each target runs SECONDS (default 60). An input that takes over 5 s is reported
# as a crash: the validators must run in time linear in their input.
# A crash stops that target, prints the reproducer and leaves it in fuzz/artifacts/TARGET/;
# pin it in tests/props.rs as a plain #[test] named after the bug. The corpus grows in
# fuzz/corpus/TARGET (not committed); fuzz/seeds/TARGET holds the hand-made starting inputs.
#
# Toolchain: libFuzzer's instrumentation needs -Z flags, hence a nightly toolchain. Without one,
# the script falls back to the stable toolchain with RUSTC_BOOTSTRAP=1, which unlocks the same
# -Z flags on stable rustc and is enough for cargo-fuzz (AddressSanitizer included; both paths
# were tried). FUZZ_SANITIZER=none runs several times faster (sniff: ~200k instead of ~30k
# executions a second): the code under test is safe Rust, so a crash is a panic or an overflow
# (cargo-fuzz turns debug assertions on), which needs no sanitizer to be seen.
# The first build takes a few minutes: jobd's dependencies are compiled with instrumentation.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-all}
seconds=${2:-60}
sanitizer=${FUZZ_SANITIZER:-address}
validators=(validate_png validate_jpeg validate_gif validate_webp validate_bmp validate_tiff
    validate_ico validate_isobmff validate_jxl)
all=(url sniff classify "${validators[@]}")

case "$target" in
all) targets=("${all[@]}") ;;
url | sniff | classify | validate_*) targets=("$target") ;;
*)
    echo "fuzz.sh: unknown target '$target'; expected one of: ${all[*]} all" >&2
    exit 2
    ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "fuzz.sh: SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    echo "fuzz.sh: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
fi

# The validators start from the test corpus: every accepted format from real encoders
# (tests/corpus/make.py, Pillow), each file in the seed folder of its format's target.
seed_validators() {
    local gen=fuzz/corpus-gen target ext
    [[ -d $gen ]] || python3 tests/corpus/make.py "$gen" >/dev/null
    for target in "${validators[@]}"; do
        mkdir -p "fuzz/seeds/$target"
        case $target in
            validate_png) ext=png ;; validate_jpeg) ext=jpg ;; validate_gif) ext=gif ;;
            validate_webp) ext=webp ;; validate_bmp) ext=bmp ;; validate_tiff) ext=tif ;;
            validate_ico) ext=ico ;; validate_isobmff) ext='{avif,heic}' ;; validate_jxl) ext=jxl ;;
        esac
        eval "cp -n $gen/*.$ext fuzz/seeds/$target/ 2>/dev/null" || true
    done
}
seed_validators

status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "== fuzzing $t for ${seconds}s (sanitizer: $sanitizer)" >&2
    # The first directory receives new inputs; the seeds are only read.
    if ! cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "$t" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" -- -max_total_time="$seconds" -timeout=5 -print_final_stats=1; then
        echo "fuzz.sh: $t found a crash; see fuzz/artifacts/$t/" >&2
        status=1
    fi
done
exit $status
