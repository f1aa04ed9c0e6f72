#!/bin/sh
# test-win.sh B WB [FILTER...] - `make test-win`: the test suite against WB/ncpflash.exe under
# wine. The runner (B/ncpflash), ncpsim and the test peers run natively; every ncpflash the tests
# start is `wine WB/ncpflash.exe` (tests/lib/helpers.lua), the C unit tests are WB/tests/*.exe,
# and tests that passed without starting ncpflash are run again inside the .exe (tests/run.lua).
# The wine prefix lives in WB/wine; wineserver is stopped at the end.
set -u
B=$1 WB=$2
shift 2
WINEPREFIX="$(cd "$WB" && pwd)/wine"
WINEDEBUG=-all
export WINEPREFIX WINEDEBUG
command -v wine >/dev/null || { echo "test-win: wine is not installed (tools/deps-win.sh)" >&2; exit 1; }
if [ ! -f "$WINEPREFIX/system.reg" ]; then
	echo "test-win: creating the wine prefix $WINEPREFIX"
	# no Mono/Gecko installers: console programs need neither
	WINEDLLOVERRIDES="mscoree=;mshtml=" wineboot -i >/dev/null 2>&1
fi
# one wineserver for the whole run, its own output (object dumps when a mapped pty goes away)
# in a log instead of in whichever test's stderr started it first
wineserver -k 2>/dev/null
wineserver -p >"$WB/wineserver.log" 2>&1
NCPFLASH_BUILD=$B NCPFLASH_EXE=$WB/ncpflash.exe NCPFLASH_LAUNCHER=wine NCPFLASH_C_TESTS=$WB/tests \
	"$B/ncpflash" run tests/run.lua "$@"
rc=$?
wineserver -k 2>/dev/null # nothing of wine stays running
wineserver -w 2>/dev/null
exit $rc
