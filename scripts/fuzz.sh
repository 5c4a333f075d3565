#!/bin/sh
# Runs every Go fuzz target in the module (or in the package directories
# given as arguments) for $FUZZTIME each (default 3s).
# `make test` runs it briefly, `make fuzz` longer. New inputs that crash are
# written under the package's testdata/fuzz/ and replayed by `go test`.
#
# With FUZZ_SAVE=1 (as `make fuzz` sets) it also copies the inputs the fuzzer
# found interesting, which Go keeps only in $(go env GOCACHE)/fuzz/, into the
# package's testdata/fuzz/<FuzzName>/ so they are committed and replayed by
# every `go test`. Only the smallest are copied, up to $FUZZ_KEEP files
# (default 50) and $FUZZ_KEEP_BYTES (default 200 KiB) per target, so the
# repository stays small; files already there are never removed.
#
# With FUZZ_REPORT=1 (as `make test` sets) a new failing input is reported
# loudly, and left in testdata/fuzz/ for a developer to commit with its fix,
# but does not fail the run: a random search gating every test run would
# fail CI on whatever the fuzzer happens to find that day, unrelated to the
# change under test. The committed corpora are replayed by `go test`, where a
# failure always fails; `make fuzz` fails on a new finding.
set -eu
cd "$(dirname "$0")/.."
t=${FUZZTIME:-3s}
save=${FUZZ_SAVE:-}
report=${FUZZ_REPORT:-}
keep=${FUZZ_KEEP:-50}
keepbytes=${FUZZ_KEEP_BYTES:-204800}
cache=$(go env GOCACHE)/fuzz
out=/tmp/postkit-fuzz.$$
trap 'rm -f "$out"' EXIT

# save PKG NAME: copies the cached corpus of NAME into PKG/testdata/fuzz/NAME.
save() {
	src=$cache/$(go list "$1")/$2
	dst=$1/testdata/fuzz/$2
	[ -d "$src" ] || return 0
	mkdir -p "$dst"
	n=$(find "$dst" -type f | wc -l)
	bytes=$(find "$dst" -type f -exec cat {} + | wc -c)
	for c in "$src"/*; do
		printf '%s %s\n' "$(wc -c <"$c")" "$c"
	done | sort -n | while read -r size c; do
		[ -e "$dst/${c##*/}" ] && continue
		[ "$n" -lt "$keep" ] && [ $((bytes + size)) -le "$keepbytes" ] || break
		cp "$c" "$dst/"
		n=$((n + 1)) bytes=$((bytes + size))
	done
	echo "  $dst: $(find "$dst" -type f | wc -l) files"
}

# finding PKG NAME: a fuzz run failed; fail, or with FUZZ_REPORT only say so.
finding() {
	cat "$out"
	[ -n "$report" ] || exit 1
	echo "FUZZ FINDING in $1 $2: see above; the input is in $1/testdata/fuzz/$2/ (not failing this run, FUZZ_REPORT is set)"
}

[ $# -gt 0 ] || set -- .
grep -rl --include='*_test.go' '^func Fuzz' "$@" | sort | while read -r f; do
	pkg=./$(dirname "${f#./}")
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		echo "fuzz $pkg $name ($t)"
		if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$t" "$pkg" >"$out" 2>&1; then
			# Go's fuzzing coordinator sometimes fails a run with
			# "context deadline exceeded" as -fuzztime ends, with no
			# failing input: run such a target once more. A real
			# failure writes its input to testdata/ and fails again.
			if grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
				echo "  retrying $name: the fuzzing run timed out without a failing input"
				go test -run '^$' -fuzz "^$name\$" -fuzztime "$t" "$pkg" >"$out" 2>&1 || finding "$pkg" "$name"
			else
				finding "$pkg" "$name"
			fi
		fi
		[ -z "$save" ] || save "$pkg" "$name"
	done
done
