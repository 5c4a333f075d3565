#!/bin/sh
# Runs every Go fuzz target in the module for $FUZZTIME each (default 3s).
# `make test` runs it briefly, `make fuzz` longer. New inputs that crash are
# written under the package's testdata/fuzz/ and replayed by `go test`.
set -eu
cd "$(dirname "$0")/.."
t=${FUZZTIME:-3s}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
	pkg=./$(dirname "${f#./}")
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		echo "fuzz $pkg $name ($t)"
		go test -run '^$' -fuzz "^$name\$" -fuzztime "$t" "$pkg" >/tmp/postkit-fuzz.$$ 2>&1 || {
			cat /tmp/postkit-fuzz.$$; rm -f /tmp/postkit-fuzz.$$; exit 1; }
	done
done
rm -f /tmp/postkit-fuzz.$$
