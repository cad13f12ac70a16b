#!/usr/bin/env bash
# Run every fuzz target in the module for a bounded time each.
# Usage: bench/fuzz-all.sh [SECONDS_PER_TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-20}"
status=0
while IFS= read -r line; do
  file="${line%%:*}"
  name="$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")"
  pkg="./$(dirname "$file")"
  echo "== $pkg $name (${t}s)"
  go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "${t}s" -parallel 1 || status=1
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' internal test bench 2>/dev/null | sort)
exit $status
