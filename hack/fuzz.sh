#!/usr/bin/env bash
# fuzz.sh: run every Go fuzz target of the module (each "func FuzzX" in a
# _test.go file) for a bounded time: FUZZTIME per target (default 10s, any
# -fuzztime value). FUZZ_MATCH limits the run to targets whose name matches that
# regular expression. A failing input is written by Go to the package's
# testdata/fuzz/<Target>/ and, once there, runs as a seed on every go test.
# Runs every target even when one fails; exits 1 if any did.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
match=${FUZZ_MATCH:-.}

failed=()
count=0
start=$(date +%s)
# Found by grep rather than go test -list, which would build every test
# binary once more just to list it.
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  pkg=./${dir#./}
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | grep -E -- "$match" || true)
  for target in $targets; do
    count=$((count + 1))
    t0=$(date +%s)
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >"${TMPDIR:-/tmp}/fuzz-$target.log" 2>&1; then
      echo "fuzz: ok   $pkg $target ($(( $(date +%s) - t0 ))s, $(grep -o 'execs: [0-9]*' "${TMPDIR:-/tmp}/fuzz-$target.log" | tail -1))"
    else
      echo "fuzz: FAIL $pkg $target"
      tail -n 40 "${TMPDIR:-/tmp}/fuzz-$target.log"
      failed+=("$pkg $target")
    fi
  done
done
echo "fuzz: $count targets, ${fuzztime} each, $(( $(date +%s) - start ))s in all"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: failed: %s\n' "${failed[@]}"
  exit 1
fi
