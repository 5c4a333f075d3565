# postkit: `make run` starts a whole mail system on loopback ports, `make test`
# runs every test. See README.md.

GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
CMDS     := smtpd sendq deliver pop3d imapd mkuser
FUZZTIME ?= 3s
LONGFUZZ ?= 60s

# urfave_cli_no_docs leaves out urfave/cli's Markdown and man page
# generation (we write man/ by hand), and with it a Markdown parser whose
# package initialisation cost every deliver(8) process a third of a
# millisecond, 8% of a delivery. Exported, so that the end-to-end tests
# build the binaries the same way.
export GOFLAGS := $(strip $(GOFLAGS) -tags=urfave_cli_no_docs)

.PHONY: all build test check fmt fuzz bench run install clean

all: build

build:
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./,$(wildcard $(CMDS:%=cmd/%)))

# Unit, package and end-to-end tests, then every fuzz target briefly (the
# committed corpora under testdata/fuzz are replayed by the plain test run).
test: build
	$(GO) test -count=1 -timeout 30m ./...
	FUZZTIME=$(FUZZTIME) FUZZ_REPORT=1 scripts/fuzz.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fuzz:
	FUZZ_SAVE=1 FUZZTIME=$(LONGFUZZ) scripts/fuzz.sh

bench: build
	scripts/bench.sh

run: build
	$(GO) run ./scripts/run

# make install [PREFIX=/usr/local] [DESTDIR=]: the programs in PREFIX/sbin
# (sendmail and mailq are links to sendq), the setup script as
# PREFIX/sbin/postkit-setup, manual pages in PREFIX/share/man, systemd units
# in UNITDIR (default PREFIX/lib/systemd/system, which systemd reads for
# PREFIX /usr/local and /usr), and examples (etc/, inetd.conf, xinetd.d/,
# tcpserver run scripts) in DOCDIR/examples. Units and examples name the
# programs by their installed path, PREFIX/sbin. Nothing is written outside
# these directories: /var/lib/postkit is made by postkit-setup.
install: UNITDIR ?= $(PREFIX)/lib/systemd/system
install: DOCDIR ?= $(PREFIX)/share/doc/postkit
install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 $(DESTDIR)$(PREFIX)/share/man/man8
	for c in $(notdir $(wildcard $(CMDS:%=bin/%))); do install -m 0755 bin/$$c $(DESTDIR)$(PREFIX)/sbin/$$c; done
	ln -sf sendq $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sf sendq $(DESTDIR)$(PREFIX)/sbin/mailq
	install -m 0755 scripts/setup.sh $(DESTDIR)$(PREFIX)/sbin/postkit-setup
	for p in $(wildcard man/*.5); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man5/; done
	for p in $(wildcard man/*.7); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man7/; done
	for p in $(wildcard man/*.8); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man8/; done
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples/etc $(DESTDIR)$(DOCDIR)/examples/xinetd.d
	for u in scripts/systemd/*.socket scripts/systemd/*.service; do \
		sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' $$u > $(DESTDIR)$(UNITDIR)/$${u##*/} && chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	for f in etc-example/*; do install -m 0644 $$f $(DESTDIR)$(DOCDIR)/examples/etc/; done
	sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' inetd/examples/inetd.conf > $(DESTDIR)$(DOCDIR)/examples/inetd.conf
	chmod 0644 $(DESTDIR)$(DOCDIR)/examples/inetd.conf
	for f in inetd/examples/xinetd.d/*; do \
		sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' $$f > $(DESTDIR)$(DOCDIR)/examples/xinetd.d/$${f##*/} && chmod 0644 $(DESTDIR)$(DOCDIR)/examples/xinetd.d/$${f##*/} || exit 1; \
	done
	for d in inetd/examples/tcpserver/*/; do \
		n=$$(basename $$d); install -d $(DESTDIR)$(DOCDIR)/examples/tcpserver/$$n && \
		sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' $$d/run > $(DESTDIR)$(DOCDIR)/examples/tcpserver/$$n/run && \
		chmod 0755 $(DESTDIR)$(DOCDIR)/examples/tcpserver/$$n/run || exit 1; \
	done

clean:
	rm -rf bin run
