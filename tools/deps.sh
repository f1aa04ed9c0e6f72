#!/bin/sh
# deps.sh - make sure the Debian packages the build and tests need are there.
#   deps.sh install            install what is missing (root) or print the command
#   deps.sh check-or-install   same, but exit 1 when something is missing and we are not root
#   deps.sh fuzz               same for `make fuzz` / `make check-asan` (clang, libFuzzer, valgrind)
#   deps.sh lab                same for the lab tests (`make test`): Debian's labgrid, pytest and ser2net
set -u
PKGS="make gcc pkg-config liblua5.4-dev libserialport-dev zlib1g-dev liblzma-dev libssl-dev lua-check socat xz-utils"
[ "${1:-}" = fuzz ] && PKGS="clang-14 libclang-rt-14-dev valgrind"
[ "${1:-}" = lab ] && PKGS="python3-labgrid python3-pytest ser2net"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300$missing"
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null && $cmd >/dev/null || { echo "deps: '$cmd' failed" >&2; exit 1; }
	exit 0
fi
echo "deps: missing Debian packages:$missing" >&2
echo "deps: run as root:  sudo $cmd" >&2
[ "${1:-}" = install ] && exit 1
exit 1
