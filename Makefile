# postkit: `make run` starts a whole mail system on loopback ports, `make test`
# runs every test. See README.md.

GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
CMDS     := smtpd sendq deliver pop3d imapd mkuser
FUZZTIME ?= 3s
LONGFUZZ ?= 60s

.PHONY: all build test check fmt fuzz bench run install clean

all: build

build:
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./,$(wildcard $(CMDS:%=cmd/%)))

# Unit, package and end-to-end tests, then every fuzz target briefly (the
# committed corpora under testdata/fuzz are replayed by the plain test run).
test: build
	$(GO) test -count=1 -timeout 30m ./...
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fuzz:
	FUZZTIME=$(LONGFUZZ) scripts/fuzz.sh

bench: build
	scripts/bench.sh

run: build
	$(GO) run ./scripts/run

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/share/man/man8
	for c in $(notdir $(wildcard $(CMDS:%=bin/%))); do install -m 0755 bin/$$c $(DESTDIR)$(PREFIX)/sbin/$$c; done
	for p in $(wildcard man/*.5); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man5/; done
	for p in $(wildcard man/*.7); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man7/; done
	for p in $(wildcard man/*.8); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man8/; done

clean:
	rm -rf bin run
