#!/bin/sh
# fuzz.sh BUILD SECONDS TARGET... - run each libFuzzer target for SECONDS
# (`make fuzz`).  The working corpus is BUILD/fuzz/corpus/TARGET, seeded from
# tests/fuzz/corpus/TARGET and tests/fuzz/regress/TARGET; crashes land in
# BUILD/fuzz/crashes/TARGET.  Prints one line per target (runs, execs/s,
# corpus size, crashes) and exits 1 when any target found a crash: copy the
# crash file to tests/fuzz/regress/TARGET/ (it is replayed by `make test`),
# fix the bug, and run again.
set -u
B=$1; SECONDS_EACH=$2; shift 2
found=0
total_runs=0
for t in "$@"; do
	bin=$B/fuzz/fuzz_$t
	corpus=$B/fuzz/corpus/$t
	crashes=$B/fuzz/crashes/$t
	mkdir -p "$corpus" "$crashes"
	log=$B/fuzz/$t.log
	seeds=""
	for d in tests/fuzz/corpus/$t tests/fuzz/regress/$t; do [ -d "$d" ] && seeds="$seeds $d"; done
	# the Lua targets keep one Lua state whose garbage collector frees later:
	# libFuzzer's per-input leak check would flag that (and cost 80% of the
	# time), so it is off for them; `make check-asan` checks leaks.
	leaks=1
	case $t in isp|rfc2217) ;; *) leaks=0 ;; esac
	# -timeout: a hang is a finding
	"$bin" "$corpus" $seeds -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 \
		-detect_leaks=$leaks \
		-rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$crashes/" \
		>"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	size=$(ls "$corpus" | wc -l)
	ncrash=$(ls "$crashes" | wc -l)
	total_runs=$((total_runs + ${runs:-0}))
	printf 'fuzz %-8s %4ss  %9s runs  %6s exec/s  corpus %5s  crashes %s\n' \
		"$t" "$SECONDS_EACH" "${runs:-?}" "${rate:-?}" "$size" "$ncrash"
	if [ "$rc" != 0 ] || [ "$ncrash" != 0 ]; then
		found=1
		echo "  libFuzzer exit $rc; log $log; crashes in $crashes" >&2
		grep -m3 -E "ERROR|SUMMARY|not an ncpflash error|fuzz_" "$log" | sed 's/^/  /' >&2
	fi
done
echo "fuzz: $total_runs runs in total, $SECONDS_EACH s per target"
exit $found
