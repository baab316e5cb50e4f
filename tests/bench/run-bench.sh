#!/bin/sh
# run-bench.sh: starts relayd on a scratch state directory with bench users,
# pins it to one CPU and relay-bench to another, runs relay-bench and
# prints one table.  `make bench` runs the standard set; `make bench-check`
# (-c) runs broadcast N=100 S=10 and fails when deliveries/s fall below
# 80% of the figure in tests/bench/baseline.
#
# usage: run-bench.sh [-c] [BUILDDIR]
# environment: BENCH_SECS (seconds per run, default 5), BENCH_IDLE (idle
# clients, default 1000), BENCH_RUNS (which runs of the table, default
# "broadcast logins idle compose"), RELAYD_CPU (default 0), BENCH_CPU
# (default 1).  `BENCH_IDLE=10000 BENCH_RUNS=idle` is the 10,000-client
# run: see relayd(8), LIMITS, for what it needs.

set -u

check=0
if [ "${1:-}" = "-c" ]; then
	check=1
	shift
fi
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
bench=$build/tests/relay-bench
relayd=$build/relayd
secs=${BENCH_SECS:-5}
idle=${BENCH_IDLE:-1000}
rcpu=${RELAYD_CPU:-0}
bcpu=${BENCH_CPU:-1}
runs=${BENCH_RUNS:-broadcast logins idle compose}
nusers=$((idle > 1100 ? idle + 100 : 1100))

for f in "$bench" "$relayd"; do
	[ -x "$f" ] || { echo "run-bench: $f is not built" >&2; exit 1; }
done

# Each client is one worker process with one socket in the hub, so
# relayd needs a descriptor per client: raise the hard limit if that is
# short and we may (root with CAP_SYS_RESOURCE), then the soft limit to
# the hard one.  relay-bench raises its own (1 per client).
nofile=$((idle + 64))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$nofile" ]; then
	ulimit -Hn "$nofile" 2>/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$nofile" ]; then
	echo "run-bench: ulimit -n is $(ulimit -n); $idle idle clients need" \
	    "about $nofile" >&2
fi
# One process per client, besides whatever else runs here.
pidmax=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 0)
if [ "$pidmax" -gt 0 ] && [ "$pidmax" -lt $((idle + 1000)) ]; then
	echo "run-bench: kernel.pid_max is $pidmax; $idle idle clients" \
	    "need more (sysctl kernel.pid_max=$((idle * 2 + 1000)))" >&2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/relay-bench.XXXXXX") || exit 1
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

umask 077
mkdir "$tmp/state"
# A Fernet key is 32 random bytes in URL-safe base64.
head -c 32 /dev/urandom | base64 | tr '+/' '-_' >"$tmp/key"
echo 246810 >"$tmp/secret"
md5=$(printf %s benchpw | md5sum | cut -d' ' -f1)
awk -v n="$nusers" -v h="$md5" \
    'BEGIN { for (i = 0; i < n; i++) printf "bench%d:%s\n", i, h }' \
    >"$tmp/users"

# Pinned before it forks anything: every worker inherits the mask.  Every
# client comes from 127.0.0.1, and senders go as fast as they can: the
# connection and frame-rate limits must allow them all.
taskset -c "$rcpu" "$relayd" -d -l 127.0.0.1 -p 0 -s "$tmp/state" \
    -k "$tmp/key" -S "$tmp/secret" -u "$tmp/users" -o login_grace=600 \
    -o max_clients=$((idle + 1000)) \
    -o max_clients_per_source=$((idle + 1000)) \
    -o frame_rate=100000000 -o frame_burst=100000000 \
    2>"$tmp/relayd.log" &
pid=$!
port=
i=0
while [ $i -lt 100 ]; do
	port=$(sed -n 's/^relayd: listening on 127\.0\.0\.1 port \([0-9]*\)$/\1/p' \
	    "$tmp/relayd.log")
	[ -n "$port" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$port" ]; then
	echo "run-bench: relayd did not start:" >&2
	cat "$tmp/relayd.log" >&2
	exit 1
fi

results=$tmp/results
: >"$results"
status=0

# run NAME ARGS...: one relay-bench run; its RESULT line goes to the table.
run() {
	name=$1
	shift
	echo "== $name" >&2
	"$bench" "$@" -p "$port" -K "$tmp/key" -S "$tmp/secret" -U bench \
	    -W benchpw --pid "$pid" --cpu "$rcpu" --self-cpu "$bcpu" \
	    >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat "$tmp/out" "$tmp/err" >&2
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run-bench: relayd died; its log:" >&2
		tail -20 "$tmp/relayd.log" >&2
		pid=
		exit 1
	fi
	r=$(grep '^RESULT ' "$tmp/out")
	if [ $rc -ne 0 ] || [ -z "$r" ]; then
		echo "run-bench: $name failed (exit $rc); relayd's log:" >&2
		grep -v -e ' from 127\.0\.0\.1' "$tmp/relayd.log" | tail -20 >&2
		status=1
	fi
	echo "$name ${r#RESULT }" >>"$results"
}

# ms MICROSECONDS
ms() {
	awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'
}

# field NAME LINE: the value of NAME=... in a RESULT line.
field() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

if [ $check -eq 1 ]; then
	base=$(sed -n 's/^broadcast-n100-s10 \([0-9]*\).*/\1/p' \
	    "$here/baseline")
	[ -n "$base" ] || { echo "run-bench: no figure in $here/baseline" \
	    >&2; exit 1; }
	run broadcast-n100-s10 broadcast -n 100 -s 10 -b 64 -d "$secs"
	got=$(field deliv_s "$(tail -1 "$results")")
	[ -n "$got" ] || exit 1
	min=$((base * 8 / 10))
	echo "bench-check: $got deliveries/s; baseline $base, floor $min"
	if [ $status -ne 0 ] || [ "$got" -lt "$min" ]; then
		echo "bench-check: FAIL" >&2
		exit 1
	fi
	echo "bench-check: ok"
	exit 0
fi

# wanted RUN: is RUN in BENCH_RUNS?
wanted() {
	case " $runs " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

if wanted broadcast; then
	for n in 10 100 1000; do
		for s in 1 10; do
			run "broadcast-n$n-s$s" broadcast -n $n -s $s -b 64 \
			    -d "$secs"
		done
	done
	# Latency at half of saturation, N=100 S=10.
	sat=$(field sends_s "$(grep '^broadcast-n100-s10 ' "$results")")
	if [ -n "$sat" ] && [ "$sat" -gt 0 ]; then
		run "broadcast-n100-s10-half" broadcast -n 100 -s 10 -b 64 \
		    -d "$secs" --rate $((sat / 2))
	fi
fi
wanted logins && run logins logins -d "$secs" -c 16 -n 1000
wanted compose && run compose-n10 compose -n 10 -d "$secs"
# Last: its thousands of workers take the core for seconds as they end.
# Logging them in takes a while too: 64 at a time.
wanted idle && run "idle-n$idle" idle -n "$idle" -d 3 -c 64

echo
printf '%-26s %10s %9s %8s %8s %8s %5s %7s %8s %6s\n' run "ops/s" \
    "sends/s" "p50 ms" "p99 ms" "max ms" lost "relayd%" "us/op" bench%
while read -r name rest; do
	mode=$(field mode "$rest")
	case $mode in
	broadcast) ops=$(field deliv_s "$rest"); snd=$(field sends_s "$rest")
		lost=$(($(field lost "$rest") + $(field ooo "$rest")))
		per=$(field us_per_deliv "$rest") ;;
	logins)	ops=$(field conn_s "$rest"); snd=-; lost=$(field lost "$rest")
		per=$(field us_per_conn "$rest") ;;
	compose) ops=$(field compose_s "$rest"); snd=-
		lost=$(field errors "$rest"); per=- ;;
	idle)	printf '%-26s %s workers, relayd PSS %s KiB, worker USS %s KiB' \
		    "$name" "$(field workers "$rest")" \
		    "$(field total_pss_kib "$rest")" \
		    "$(field worker_uss_kib "$rest")"
		printf ' (max %s), hub CPU %s%%\n' \
		    "$(field worker_uss_max_kib "$rest")" \
		    "$(field hub_cpu "$rest")"
		continue ;;
	*)	printf '%-26s failed\n' "$name"; continue ;;
	esac
	printf '%-26s %10s %9s %8s %8s %8s %5s %7s %8s %6s\n' "$name" \
	    "$ops" "$snd" "$(ms "$(field p50_us "$rest")")" \
	    "$(ms "$(field p99_us "$rest")")" \
	    "$(ms "$(field max_us "$rest")")" \
	    "$lost" "$(field relayd_cpu "$rest")" "$per" \
	    "$(field bench_cpu "$rest")"
done <"$results"
exit $status
