# Byzantium. `make` builds bin/byz and the default output; `make test` runs
# the tests; `make bench` compares byz with its peer tools.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Reproducible outputs: the epoch is the last commit's time. It is passed
# to the builds only: the tests' oracle tools (mksquashfs, dpkg-deb) honour
# it too and must see the times the tests give them.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: all byz sample deps fetch test test-short vet fuzz bench clean

all: byz sample

byz:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/byz ./cmd/byz

# Until the bootable image exists (issue 3), the default output is a real
# module built from a Debian package.
sample: byz fetch
	mkdir -p out
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bin/byz module create .cache/debs/busybox-static_*.deb -o out/001-busybox.xzm
	bin/byz module info out/001-busybox.xzm

fetch:
	ci/fetch-debs busybox-static dep:linux-image-cloud-amd64

deps:
	ci/install-deps

test: deps fetch
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

test-short:
	$(GO) test -short ./...

# Run every fuzz target for a while (the kept corpora run in `make test`).
fuzz:
	$(GO) test -run XXX -fuzz FuzzReader -fuzztime 2m ./modules/squashfs/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime 30s ./modules/manifest/

bench: byz deps
	$(GO) run ./ci/bench

clean:
	rm -rf bin out
