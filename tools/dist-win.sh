#!/bin/sh
# dist-win.sh WB VERSION - `make dist-win`: WB/ncpflash-VERSION-win64.zip holding ncpflash.exe
# (stripped), README.md and, under licenses/, the license texts of everything linked into the
# .exe (Debian's copyright files of the packages it was built from).
set -eu
WB=$1 VERSION=$2
val() { sed -n "s/^$1 = //p" "$WB/deps.mk"; }
name=ncpflash-$VERSION-win64
stage=$WB/dist/$name
rm -rf "$WB/dist"
mkdir -p "$stage/licenses"
x86_64-w64-mingw32-strip -o "$stage/ncpflash.exe" "$WB/ncpflash.exe"
cp README.md "$stage/README.md"
cp "$(val WIN_LUA)/copyright" "$stage/licenses/lua5.4.txt"
cp "$(val WIN_LZMA)/copyright" "$stage/licenses/xz-utils-liblzma.txt"
cp "$(val WIN_SSL)/copyright" "$stage/licenses/openssl-libcrypto.txt"
cp /usr/share/doc/libz-mingw-w64-dev/copyright "$stage/licenses/zlib.txt"
cp /usr/share/doc/mingw-w64-x86-64-dev/copyright "$stage/licenses/mingw-w64-runtime-winpthreads.txt"
cp /usr/share/doc/gcc-mingw-w64-x86-64-win32-runtime/copyright "$stage/licenses/gcc-runtime-libgcc.txt"
# the copyright files name standard licenses by their path on Debian: ship those texts too
mkdir -p "$stage/licenses/common-licenses"
for f in $(grep -oh "/usr/share/common-licenses/[A-Za-z0-9.+-]*[A-Za-z0-9+-]" "$stage"/licenses/*.txt | sort -u); do
	[ -f "$f" ] && cp "$f" "$stage/licenses/common-licenses/"
done
cat >"$stage/licenses/README.txt" <<TXT
ncpflash.exe is one static program. It contains, besides ncpflash itself:
  Lua 5.4          ($(basename "$(val WIN_LUA)"), Debian source package)      lua5.4.txt
  liblzma          ($(basename "$(val WIN_LZMA)"), Debian source package)   xz-utils-liblzma.txt
  libcrypto        ($(basename "$(val WIN_SSL)"), Debian source package)   openssl-libcrypto.txt
  zlib             (libz-mingw-w64-dev $(dpkg-query -W -f='${Version}' libz-mingw-w64-dev))             zlib.txt
  mingw-w64 CRT and winpthreads (mingw-w64-x86-64-dev $(dpkg-query -W -f='${Version}' mingw-w64-x86-64-dev))  mingw-w64-runtime-winpthreads.txt
  libgcc           (gcc-mingw-w64 $(dpkg-query -W -f='${Version}' gcc-mingw-w64-x86-64-win32-runtime))  gcc-runtime-libgcc.txt
Each file is the Debian copyright file of that package; the standard licenses they refer to
(/usr/share/common-licenses/NAME on Debian) are in common-licenses/.
TXT
(cd "$WB/dist" && rm -f "../$name.zip" && zip -qr "../$name.zip" "$name")
rm -rf "$WB/dist"
echo "dist-win: $WB/$name.zip ($(wc -c <"$WB/$name.zip") bytes)"
