#!/bin/sh
# deps-win.sh - what `make win` / `make test-win` need, all from Debian:
#   * packages: the mingw-w64 cross toolchain, zlib for mingw (libz-mingw-w64-dev), wine64,
#     dpkg-dev (apt-get source), zip, and the native build's packages (tools/deps.sh);
#   * Lua 5.4, liblzma and libcrypto built for Windows (static) from Debian's source packages
#     lua5.4, xz-utils and openssl (a deb-src entry is added when there is none).
# Built libraries are cached OUTSIDE the clone, one folder per package and Debian version:
#   ${NCPFLASH_WIN_CACHE:-/var/cache/ncpflash-win}/<source package>-<version>/{include,lib}
# so a machine builds each once (OpenSSL takes minutes); a new Debian version gets a new folder.
#
#   deps-win.sh install OUT.mk   install/build what is missing, then write OUT.mk (make variables
#                                WIN_LUA, WIN_LZMA, WIN_SSL = the cache folders)
#   deps-win.sh clean            remove the cache
set -eu
CACHE=${NCPFLASH_WIN_CACHE:-/var/cache/ncpflash-win}
HOST=x86_64-w64-mingw32
PKGS="gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev mingw-w64-tools
libz-mingw-w64-dev wine wine64 dpkg-dev zip make perl"
JOBS=${JOBS:-2}

say() { echo "deps-win: $*"; }
die() { echo "deps-win: $*" >&2; exit 1; }
root() { [ "$(id -u)" = 0 ]; }

install_packages() {
	missing=""
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	cmd="apt-get install -y --no-install-recommends$missing"
	root || die "missing Debian packages:$missing; run as root:  sudo $cmd"
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	$cmd >/dev/null || die "'$cmd' failed"
}

# apt-get source needs deb-src entries: add them next to the deb ones (same mirrors, suites).
ensure_deb_src() {
	if apt-cache showsrc lua5.4 2>/dev/null | grep -q '^Version:'; then return 0; fi
	root || die "no deb-src entry for apt-get source; as root, add 'Types: deb-src' to /etc/apt/sources.list.d/debian.sources"
	src=/etc/apt/sources.list.d/ncpflash-deb-src.sources
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$src"
	elif [ -f /etc/apt/sources.list ]; then
		grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
			>/etc/apt/sources.list.d/ncpflash-deb-src.list
	else
		die "cannot find the apt sources to mirror as deb-src"
	fi
	say "added deb-src entries ($src)"
	apt-get update -qq >/dev/null
	apt-cache showsrc lua5.4 2>/dev/null | grep -q '^Version:' || die "still no source packages after adding deb-src"
}

# The versions of a source package apt knows, newest first.
src_versions() {
	list=$(apt-cache showsrc "$1" 2>/dev/null | sed -n 's/^Version: //p' | sort -u)
	sorted=""
	for v in $list; do # insertion sort by Debian version order
		out="" placed=""
		for w in $sorted; do
			if [ -z "$placed" ] && dpkg --compare-versions "$v" gt "$w"; then
				out="$out $v"
				placed=1
			fi
			out="$out $w"
		done
		[ -z "$placed" ] && out="$out $v"
		sorted=$out
	done
	echo $sorted
}

# fetch PKG VERSION into a fresh work dir; prints the unpacked source dir (empty: not served)
fetch() {
	work=$(mktemp -d "$CACHE/.work-$1-XXXXXX")
	if ! (cd "$work" && apt-get source -qq "$1=$2" >/dev/null 2>&1); then
		rm -rf "$work"
		return 0
	fi
	for d in "$work"/*/; do
		[ -d "$d" ] && { echo "${d%/}"; return 0; }
	done
	rm -rf "$work"
}

# Builders: $1 = unpacked source dir, $2 = destination; non-zero on any failure.
build_lua() {
	mkdir -p "$2/lib" "$2/include" && cd "$1/src" || return 1
	objs=""
	for c in *.c; do
		case $c in lua.c|luac.c) continue ;; esac
		# the flags of Debian's own build (src/Makefile): C99 + 5.3 compatibility
		$HOST-gcc -O2 -std=gnu99 -DLUA_COMPAT_5_3 -c "$c" -o "${c%.c}.o" || return 1
		objs="$objs ${c%.c}.o"
	done
	# shellcheck disable=SC2086
	$HOST-ar rcs "$2/lib/liblua.a" $objs &&
		cp lua.h luaconf.h lualib.h lauxlib.h lua.hpp "$2/include/"
}

build_xz() {
	cd "$1" || return 1
	# intrin.h: memcmplen.h calls _BitScanForward64 without declaring it on mingw (5.4.1)
	CFLAGS="-O2 -include intrin.h" ./configure -q --host=$HOST --prefix="$2" \
		--disable-shared --enable-static --disable-xz --disable-xzdec --disable-lzmadec \
		--disable-lzmainfo --disable-scripts --disable-lzma-links --disable-doc \
		--disable-nls --disable-threads >/dev/null 2>&1 &&
		make -s -j"$JOBS" -C src/liblzma >/dev/null 2>&1 &&
		make -s -C src/liblzma install >/dev/null
}

build_openssl() {
	cd "$1" || return 1
	# libcrypto only, static, without what ncpflash never calls (it uses EC P-256, ECDH,
	# ECDSA, AES, SHA-2, PEM/ASN.1): the build is the slow part, this cuts it down.
	./Configure mingw64 --cross-compile-prefix=$HOST- --prefix="$2" --libdir=lib \
		no-shared no-tests no-module no-engine no-dso no-legacy \
		no-aria no-bf no-blake2 no-camellia no-cast no-cms no-comp no-ct no-des no-dh \
		no-dsa no-ec2m no-idea no-md4 no-mdc2 no-ocb no-ocsp no-rc2 no-rc4 no-rmd160 \
		no-scrypt no-seed no-siphash no-sm2 no-sm3 no-sm4 no-srp no-srtp no-ts \
		no-whirlpool no-ssl no-tls no-dtls no-sock no-ui-console >/dev/null || return 1
	make -s -j"$JOBS" build_generated >/dev/null 2>&1 &&
		make -s -j"$JOBS" libcrypto.a >/dev/null 2>&1 || return 1
	mkdir -p "$2/lib" "$2/include" && cp libcrypto.a "$2/lib/" &&
		cp -r include/openssl "$2/include/"
}

# ensure PKG BUILDER: prints the cache dir holding the built package. The newest version
# already built, or the newest the mirror serves (a version apt lists may answer 404).
ensure() {
	versions=$(src_versions "$1")
	[ -n "$versions" ] || die "apt knows no source package $1"
	for ver in $versions; do
		if [ -f "$CACHE/$1-$ver/.ok" ]; then echo "$CACHE/$1-$ver"; return 0; fi
		srcdir=$(fetch "$1" "$ver")
		if [ -z "$srcdir" ]; then
			say "$1 $ver: not served by the mirror, trying an older version" >&2
			continue
		fi
		dest="$CACHE/$1-$ver"
		say "building $1 $ver for Windows into $dest" >&2
		t0=$(date +%s)
		rm -rf "$dest"
		# debian/copyright: the license texts, shipped by make dist-win
		if ! ("$2" "$srcdir" "$dest" && cp "$srcdir/debian/copyright" "$dest/copyright") >&2; then
			rm -rf "$dest" "$(dirname "$srcdir")"
			die "building $1 $ver failed"
		fi
		rm -rf "$(dirname "$srcdir")"
		echo "$1 $ver built $(date -u +%Y-%m-%dT%H:%MZ) in $(( $(date +%s) - t0 )) s" >"$dest/.ok"
		say "$1 $ver: built in $(( $(date +%s) - t0 )) s" >&2
		echo "$dest"
		return 0
	done
	die "no version of source package $1 could be fetched ($versions)"
}

case "${1:-}" in
install)
	out=${2:?usage: deps-win.sh install OUT.mk}
	sh "$(dirname "$0")/deps.sh" check-or-install
	install_packages
	if ! mkdir -p "$CACHE" 2>/dev/null || ! [ -w "$CACHE" ]; then
		CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ncpflash-win
		mkdir -p "$CACHE"
	fi
	ensure_deb_src
	# one builder at a time per cache (two clones building at once would race)
	exec 9>"$CACHE/.lock"
	flock 9
	lua=$(ensure lua5.4 build_lua)
	lzma=$(ensure xz-utils build_xz)
	ssl=$(ensure openssl build_openssl)
	mkdir -p "$(dirname "$out")"
	printf 'WIN_LUA = %s\nWIN_LZMA = %s\nWIN_SSL = %s\n' "$lua" "$lzma" "$ssl" >"$out"
	;;
clean)
	rm -rf "$CACHE"
	;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
