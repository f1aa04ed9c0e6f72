#!/bin/sh
# deps.sh - make sure the Debian packages the build and tests need are there.
#   deps.sh install            install what is missing (root) or print the command
#   deps.sh check-or-install   same, but exit 1 when something is missing and we are not root
#   deps.sh fuzz               same for `make fuzz` / `make check-asan` (clang, libFuzzer, valgrind)
#   deps.sh lab                same for the lab tests (`make test`): Debian's labgrid, pytest and ser2net
set -u
# libsqlite3-dev, libmicrohttpd-dev: the station (unit records, dashboard); curl: its API tests;
# openssl: the tests sign synthetic boot images (the secure-boot guard verifies signatures)
PKGS="make gcc pkg-config liblua5.4-dev libserialport-dev zlib1g-dev liblzma-dev libssl-dev lua-check socat xz-utils libsqlite3-dev libmicrohttpd-dev curl openssl"
# optional: the station's dashboard test drives headless Chromium (skipped, saying so, without it)
OPTIONAL="chromium chromium-driver fonts-dejavu-core"
[ "${1:-}" = fuzz ] && PKGS="clang-14 libclang-rt-14-dev valgrind" && OPTIONAL=""
[ "${1:-}" = lab ] && PKGS="python3-labgrid python3-pytest ser2net" && OPTIONAL=""
optional() {
	want=""
	for p in $OPTIONAL; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
	done
	[ -z "$want" ] && return 0
	if [ "$(id -u)" = 0 ]; then
		echo "deps: installing (optional):$want"
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300$want; } >/dev/null 2>&1 ||
			echo "deps: optional packages$want could not be installed; the dashboard test will be skipped" >&2
	else
		echo "deps: optional (dashboard test):  sudo apt-get install -y --no-install-recommends$want" >&2
	fi
}
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && { optional; exit 0; }
cmd="apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300$missing"
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && $cmd >/dev/null || { echo "deps: '$cmd' failed" >&2; exit 1; }
	optional
	exit 0
fi
echo "deps: missing Debian packages:$missing" >&2
echo "deps: run as root:  sudo $cmd" >&2
[ "${1:-}" = install ] && exit 1
exit 1
