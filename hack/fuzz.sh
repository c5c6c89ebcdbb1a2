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
    log="${TMPDIR:-/tmp}/fuzz-$target.log"
    t0=$(date +%s)
    # Go 1.26's fuzz coordinator can end a clean run with a bare "context
    # deadline exceeded" when -fuzztime expires mid-exec (golang/go#75804,
    # fixed in 1.27). That run wrote no failing input: run the target once
    # more, and count it as a flake only if that happens again.
    outcome=fail
    for attempt in 1 2; do
      if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
        outcome=ok
        break
      fi
      if grep -q 'Failing input written\|failure while testing seed corpus' "$log" ||
        ! grep -q '^    context deadline exceeded$' "$log"; then
        break
      fi
      outcome=flake
      echo "fuzz: $pkg $target ended with the fuzz engine's own deadline error (attempt $attempt)"
    done
    case $outcome in
    ok) echo "fuzz: ok   $pkg $target ($(( $(date +%s) - t0 ))s, $(grep -o 'execs: [0-9]*' "$log" | tail -1))" ;;
    flake) echo "fuzz: FLAKE $pkg $target: the fuzz engine's deadline error twice, no failing input" ;;
    *)
      echo "fuzz: FAIL $pkg $target"
      tail -n 40 "$log"
      failed+=("$pkg $target")
      ;;
    esac
  done
done
echo "fuzz: $count targets, ${fuzztime} each, $(( $(date +%s) - start ))s in all"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: failed: %s\n' "${failed[@]}"
  exit 1
fi
