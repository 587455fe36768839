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

.PHONY: all byz bins runtime image deps fetch relock npm-fetch npm-relock test test-short vet fuzz bench man clean

# The default output: out/byzantium.iso and out/byzantium-usb.img.
all: image

byz:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/byz ./cmd/byz

# byz, and the two static binaries the image runs: byz-init (the
# initramfs's PID 1) and byzd (the node daemon).
bins: byz
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/byz-init ./cmd/byz-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/byzd ./cmd/byzd

# out/runtime is the runtime module's source (examples/*.yaml name it):
# byzd, byz (the CLI, for byz persist on the node and the console login)
# and /sbin/init. Files are copied only when they differ, so an unchanged
# byzd leaves the module's cache key alone. /etc/inittab is not here: byz
# build writes it from the spec's console setting, and refuses a module
# that brings its own, such as an out/runtime made before it did.
runtime: bins
	mkdir -p out/runtime/usr/sbin out/runtime/usr/bin
	rm -f out/runtime/etc/inittab
	cp -a examples/runtime/. out/runtime/
	cmp -s bin/byzd out/runtime/usr/sbin/byzd || cp bin/byzd out/runtime/usr/sbin/byzd
	cmp -s bin/byz out/runtime/usr/bin/byz || cp bin/byz out/runtime/usr/bin/byz

image: runtime fetch npm-fetch
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bin/byz build -f examples/byzantium.yaml -o out

# The Debian packages the examples and tests are built from, into
# .cache/debs (gitignored), exactly as examples/debs.lock pins them (version
# and sha256). make relock pins what the archive serves now.
BOOT_DEBS := isolinux syslinux-common shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed grub-pc-bin
# The optional ngircd module: the server and every shared library it loads
# (the base is busybox-static, with no libc). Only what the dynamic linker
# needs: apt's Depends also pull in maintainer-script and init-system
# packages (debconf, init-system-helpers, lsb-base, adduser) and libgcc-s1,
# gcc-12-base and libaudit-common, which nothing in the module loads.
# Check with builder's TestNgircdModule after changing it.
SERVICE_DEBS := ngircd libc6 libpam0g libaudit1 libcap-ng0 libident zlib1g libgnutls30 libp11-kit0 libffi8 \
	libidn2-0 libunistring2 libtasn1-6 libnettle8 libhogweed6 libgmp10
# The babeld module (loaded at boot): the mesh's routing engine and the
# libraries it loads; libc6 is in SERVICE_DEBS already. libb2-1 needs
# libgomp1 (its BLAKE2 uses OpenMP). Check with builder's TestBabeldModule.
MESH_DEBS := babeld libb2-1 libgomp1
# wpa_supplicant 2.10 (built with mesh and SAE) and its libraries: a keyed
# 802.11s mesh peers through it. ci/meshguest's TestWifi runs it in a QEMU
# guest with mac80211_hwsim.
WIFI_DEBS := wpasupplicant libnl-3-200 libnl-genl-3-200 libnl-route-3-200 libpcsclite1 libssl3 libdbus-1-3 \
	libsystemd0 libcap2 libgcrypt20 liblzma5 libzstd1 liblz4-1 libgpg-error0
# The optional php module: php-fpm and every shared library it and its
# extensions load (libxml2 pulls in ICU, which costs most of the module;
# intl then adds little). Extensions: Debian's common set, opcache, the XML
# ones (DokuWiki's php-xml) and intl (DokuWiki sorts with its Collator);
# not curl, gd or mbstring, which DokuWiki does without. tzdata: Debian's
# PHP knows no time zone, not even UTC, without it; gcc-12-base holds the
# documentation libgcc-s1 and libstdc++6 link to. libc6, zlib1g,
# libffi8, libssl3 and libsystemd0's libraries are locked above already.
# Check with builder's TestDokuWikiModule after changing it.
PHP_DEBS := php8.2-fpm php8.2-common php8.2-opcache php8.2-xml php8.2-intl libacl1 libapparmor1 libargon2-1 \
	libpcre2-8-0 libsodium23 libxml2 libicu72 libstdc++6 libgcc-s1 libxslt1.1 tzdata gcc-12-base
# The optional dokuwiki module: Debian's DokuWiki and the PHP and JavaScript
# libraries it loads by path or links to (/usr/share/php, /usr/share/javascript).
WIKI_DEBS := dokuwiki libjs-jquery libjs-jquery-cookie libjs-jquery-ui libphp-simplepie php-geshi php-phpseclib \
	php-random-compat

# The optional nodejs module: Debian 12's Node.js 18 and every shared
# library /usr/bin/node loads (libc6 and zlib1g are in SERVICE_DEBS, libssl3
# in WIFI_DEBS already), plus the JavaScript that libnode108 loads from
# /usr/share/nodejs (acorn, cjs-module-lexer, undici: Debian builds Node
# without its bundled copies). Check with builder's TestTheLoungeModule.
NODE_DEBS := nodejs libnode108 libuv1 libc-ares2 libbrotli1 libnghttp2-14 libicu72 libstdc++6 libgcc-s1 \
	node-acorn node-cjs-module-lexer node-undici
fetch:
	ci/fetch-debs --lock examples/debs.lock

relock:
	ci/fetch-debs --relock examples/debs.lock busybox-static dep:linux-image-cloud-amd64 dep:linux-image-amd64 $(BOOT_DEBS) $(SERVICE_DEBS) $(MESH_DEBS) $(WIFI_DEBS) \
	$(PHP_DEBS) $(WIKI_DEBS) $(NODE_DEBS)

# npm applications (examples/apps/*/, each a package.json and its
# package-lock.json): their package tarballs into .cache/npm (gitignored),
# each checked against its lock's integrity, from the registry npm's own
# configuration names (byz module fetch). make npm-relock refreshes the locks
# from their package.json with this machine's npm, writing no registry URLs.
NPM_APPS := $(patsubst %/package.json,%,$(wildcard examples/apps/*/package.json))
npm-fetch: byz
	bin/byz module fetch $(addprefix npm:,$(NPM_APPS))

npm-relock:
	ci/npm-relock $(NPM_APPS)

deps:
	ci/install-deps

# The timeout is a backstop against a hung test, not a speed check: ci/e2e
# boots some twenty QEMU guests under TCG and took 23 of 25 minutes on a
# quiet CI machine, more when the machine is shared.
test: deps fetch npm-fetch
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...

test-short:
	$(GO) test -short ./...

# Run every fuzz target for a while (the kept corpora run in `make test`).
fuzz:
	$(GO) test -run XXX -fuzz FuzzReader -fuzztime 2m ./modules/squashfs/
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime 30s ./modules/manifest/
	$(GO) test -run XXX -fuzz FuzzRead -fuzztime 1m -fuzzminimizetime 0 ./runtime/luks2/
	$(GO) test -run XXX -fuzz FuzzOpenFS -fuzztime 1m ./image/fat/
	$(GO) test -run XXX -fuzz FuzzParseLock -fuzztime 30s ./modules/npm/
	$(GO) test -run XXX -fuzz FuzzTarWalker -fuzztime 1m ./modules/npm/
	$(GO) test -run XXX -fuzz FuzzResponse -fuzztime 1m ./runtime/webfront/fcgi/
	$(GO) test -run XXX -fuzz FuzzParseLine -fuzztime 1m ./runtime/mesh/babel/

# Module and ISO writers beside mksquashfs and xorriso; byz clone of the USB
# image beside dd and a read-back; a no-change rebuild
# (must report 0 built: no compression); boot time to /healthz beside the
# direct-boot floor, and to byz-init's ready line; the web front beside
# the apps reached directly; the memory of the default node with its three
# web apps on, and the media each app adds; the mesh simulator's convergence and memory per
# node for 10, 50 and 100 nodes (real babeld in network namespaces, as root).
bench: image deps
	$(GO) run ./ci/bench
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) bin/byz build -f examples/byzantium.yaml -o out
	$(GO) test -run XXX -bench 'Boot|Persist|Daemon' -benchtime 3x ./ci/e2e ./ci/qemu
	$(GO) test -run XXX -bench MeshLine -benchtime 1x -timeout 40m ./ci/e2e
	$(GO) test -run XXX -bench Front -benchtime 1x ./runtime/webfront
	$(GO) test -run XXX -bench WebApps -benchtime 1x -timeout 30m ./ci/e2e
	$(GO) test -run XXX -bench SessionUnderAttack -benchtime 300x ./runtime/auth
	$(GO) test -run XXX -bench Withdraw -benchtime 3x ./runtime/mesh/gateway
	$(GO) test -run XXX -bench Convergence -benchtime 1x -timeout 20m ./ci/meshsim
	$(GO) test -run XXX -bench GatewayLoss -benchtime 1x ./ci/meshsim

# A man page per byz command, made from its --help text.
man: byz
	bin/byz man out/man

clean:
	rm -rf bin out
