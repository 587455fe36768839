#!/bin/sh
# Makes the seed corpus of fuzz_test.go (see README.md). Run from this
# directory: sh mkseeds.sh. Needs dpkg-deb, GNU tar and GNU ar (binutils).
set -eu
export SOURCE_DATE_EPOCH=1600000000 LC_ALL=C
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT

# corpus FILE OUT writes FILE in go test's corpus encoding.
corpus() {
	{
		echo 'go test fuzz v1'
		od -An -v -tx1 "$1" | awk '
		BEGIN { for (i = 32; i < 127; i++) c[sprintf("%02x", i)] = sprintf("%c", i)
			c["22"] = "\\\""; c["5c"] = "\\\\"; c["0a"] = "\\n"; c["09"] = "\\t"; c["0d"] = "\\r"
			printf "[]byte(\"" }
		{ for (i = 1; i <= NF; i++) printf "%s", ($i in c) ? c[$i] : "\\x" $i }
		END { print "\")" }'
	} > "$2"
}

# The two-file tree: a control file and one file of data.
mkdir -p "$src/tree/DEBIAN" "$src/tree/etc"
cat > "$src/tree/DEBIAN/control" <<'CONTROL'
Package: byz-seed
Version: 1.0-1
Architecture: all
Maintainer: Byzantium <byz@example.org>
Installed-Size: 1
Depends: libc6 (>= 2.34), busybox | busybox-static
Description: fuzz seed
 A two-file package for the deb fuzz corpus.
CONTROL
printf 'key=value\n' > "$src/tree/etc/byz-seed.conf"

for z in gzip xz zstd; do
	dpkg-deb --root-owner-group -Z$z --build "$src/tree" "$src/seed-$z.deb" >/dev/null
	corpus "$src/seed-$z.deb" fuzz/FuzzOpen/seed-$z
done

# dpkg-deb -Znone writes tar's 10 KiB records, mostly NULs: cut each tar
# after its end-of-archive blocks and put the members back in order with
# GNU ar (deterministic mode, names ending in '/').
dpkg-deb --root-owner-group -Znone --build "$src/tree" "$src/seed-none.deb" >/dev/null
mkdir "$src/none"
(
	cd "$src/none"
	ar x "$src/seed-none.deb"
	for t in control.tar data.tar; do
		n=$(tar -tRf $t | sed -n 's/^block \([0-9]*\): \*\* Block of NULs \*\*$/\1/p')
		head -c $(((n + 2) * 512)) $t > $t.cut && mv $t.cut $t
	done
	ar rcD "$src/seed-none-ar.deb" debian-binary control.tar data.tar
)
dpkg-deb -c "$src/seed-none-ar.deb" >/dev/null # still a package to dpkg
corpus "$src/seed-none-ar.deb" fuzz/FuzzOpen/seed-none-ar

# Control files: the seed package's, a minimal one, one with comments, case,
# CRLF line ends, continuation lines and a second stanza, and a real
# installed package's from dpkg's database.
corpus "$src/tree/DEBIAN/control" fuzz/FuzzParseControl/seed-byz-seed
printf 'Package: a\nVersion: 1\nArchitecture: all\n' > "$src/minimal"
corpus "$src/minimal" fuzz/FuzzParseControl/seed-minimal
printf '# comment\r\npackage: a\r\nVERSION: 1:2.0~rc1-1\r\narchitecture: amd64\r\nPre-Depends: x,\r\n  y (>= 1)\r\nEssential: yes\r\nDescription: short\r\n long\r\n .\r\n more\r\n\r\nPackage: second\r\n' > "$src/odd"
corpus "$src/odd" fuzz/FuzzParseControl/seed-odd
dpkg-query -s dpkg > "$src/dpkg"
corpus "$src/dpkg" fuzz/FuzzParseControl/seed-dpkg-status
