#!/bin/sh
# Regenerates the reader's test images with squashfs-tools 4.5.1 (Debian 12).
# Run as root from this directory: sh mkimages.sh
set -eu
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/dir/sub" "$src/a"
printf 'hello, squashfs\n' > "$src/dir/hello.txt"
seq 1 2000 > "$src/dir/seq.txt"                  # 8893 bytes: 2 full 4 KiB blocks + a fragment tail
head -c 5000 /dev/zero > "$src/dir/zeros"         # a sparse block plus a tail
ln "$src/dir/hello.txt" "$src/dir/sub/hardlink"
ln -s ../hello.txt "$src/dir/sub/symlink"
mkfifo "$src/dir/fifo"
mknod "$src/dir/null" c 1 3
setfattr -n user.comment -v 'a squashfs test' "$src/dir/hello.txt"
setfattr -n trusted.overlay.opaque -v y "$src/dir/sub"
printf 'x\n' > "$src/a/f"
find "$src" -exec touch -h -d @1600000000 {} +
for c in gzip xz zstd lz4 lzo lzma; do
	mksquashfs "$src/dir" small-$c.sqfs -noappend -nopad -quiet -no-progress -comp $c -b 4096 -mkfs-time 1600000000
done
# Uncompressed metadata and data, so tests can patch tables byte by byte.
mksquashfs "$src/a" plain.sqfs -noappend -nopad -quiet -no-progress -comp gzip -noI -noD -noF -noX -mkfs-time 1600000000
# The fuzz corpus holds the same images in go test's corpus encoding.
for f in small-gzip small-xz small-zstd small-lz4 small-lzo small-lzma plain; do
	{ echo 'go test fuzz v1'; printf '[]byte("'; od -An -v -tx1 $f.sqfs | tr -d ' \n' | sed 's/\(..\)/\\x\1/g'; echo '")'; } > fuzz/FuzzReader/seed-$f
done
