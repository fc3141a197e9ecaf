# SPDX-License-Identifier: MIT
# measure.sh: measurement helpers for bench and the experiments (sourced, never run).
# shellcheck shell=bash
#
# Progress lines, iperf3 runs, tunlab --stats deltas, tidy CSV rows, run
# metadata, medians.
#
# Sourced after netns.sh (tl_bg, tl_wait_listen, n_cli, ...) and systems.sh.
# One measurement = fresh topology, one system started, one iperf3 test,
# everything torn down: no state (routes, conntrack, sockets) leaks from one
# system or repetition into the next, and repetitions of different systems
# are interleaved so slow drift of the machine hits all systems alike.

MEAS_ROOT=${MEAS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MEAS_TAG=${MEAS_TAG:-measure}
MEAS_T0=${MEAS_T0:-$SECONDS}
MEAS_DST=$TL_DST_IN4 # netns.sh: 10.102.0.2, or the inventory's dst
MEAS_PORT=5201
MEAS_PING_INTERVAL=${MEAS_PING_INTERVAL:-0.01} # seconds between echoes (root may go below 0.2)
MEAS_CSV_HEADER="system,parameter,metric,value,unit,repetition"

meas_die() {
	echo "[$MEAS_TAG] error: $*" >&2
	exit 1
}

meas_elapsed() {
	echo $((SECONDS - MEAS_T0))
}

# "[throughput] tun rep 2/5 (elapsed 34 s)"
meas_progress() {
	printf '[%s] %s (elapsed %d s)\n' "$MEAS_TAG" "$*" "$(meas_elapsed)"
}

# meas_eta_text DONE TOTAL ELAPSED GUESS: "about 3 min left" after DONE of
# TOTAL tests took ELAPSED seconds; GUESS seconds a test before any is done.
meas_eta_text() {
	local done=$1 total=$2 elapsed=$3 guess=$4 left
	if ((done > 0)); then
		left=$(((total - done) * elapsed / done))
	else
		left=$((total * guess))
	fi
	if ((left >= 90)); then
		echo "about $(((left + 30) / 60)) min left"
	else
		echo "about $left s left"
	fi
}

meas_need_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null ||
			meas_die "$tool not found: run 'make deps' (experiments/lib/deps.sh)"
	done
}

# First value of KEY anywhere in the JSON document or line on stdin, so a
# stats line may nest its counters ({"tunnel":{"tx_bytes":..}}) or not.
meas_json_num() {
	jq -r --arg k "$1" 'first(.. | objects | select(has($k)) | .[$k]) // empty'
}

# Last complete line of a file (a stats writer may be mid-line).
meas_last_line() {
	tl_fetch "$1"
	[[ -s $1 ]] || return 0
	grep -a '}[[:space:]]*$' "$1" | tail -n 1
}

meas_line_count() {
	tl_fetch "$1"
	if [[ -e $1 ]]; then
		wc -l <"$1"
	else
		echo 0
	fi
}

# median min max count of the numbers on stdin, one a line.
meas_stats() {
	sort -g | awk '
		{ v[n++] = $1 }
		END {
			if (n == 0) { print "nan nan nan 0"; exit }
			m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
			printf "%.6g %.6g %.6g %d\n", m, v[0], v[n - 1], n
		}'
}

# Values of METRIC for SYSTEM (and PARAMETER, if given) in a tidy CSV, one a line.
meas_csv_values() {
	local csv=$1 system=$2 metric=$3 param=${4:-}
	awk -F, -v s="$system" -v m="$metric" -v p="$param" \
		'NR > 1 && $1 == s && $3 == m && $4 != "" && (p == "" || $2 == p) { print $4 }' "$csv"
}

meas_csv_row() {
	local csv=$1
	shift
	local IFS=,
	echo "$*" >>"$csv"
}

# meas_iperf_run OUT SECONDS [iperf3 client flags...]: one iperf3 test
# cli -> dst of SECONDS, its -J output left in OUT; fails, saying why, when
# iperf3 does. The server is started per test (-1: serves one test and
# exits), so a crashed test leaves nothing listening for the next one. The
# client runs in the background and is waited for by polling, so that an
# INT or TERM runs the cleanup trap at once instead of after the test. The
# client connects to SYS_TARGET when the system set one (a relay in cli),
# else to the server in dst.
meas_iperf_run() {
	local out=$1 seconds=$2 pid rc=0 err
	shift 2
	local target=${SYS_TARGET:-$MEAS_DST:$MEAS_PORT}
	tl_bg "$NS_DST" "$TL_TMP/iperf3-server.log" \
		iperf3 -s -1 -B "$MEAS_DST" -p "$MEAS_PORT" >/dev/null
	tl_wait_listen "$NS_DST" tcp "$MEAS_PORT" 5 ||
		meas_die "iperf3 server in dst is not listening on $MEAS_PORT"
	rm -f -- "$out" # iperf3 appends to its --logfile
	pid=$(tl_bg "$NS_CLI" "$TL_TMP/iperf3-client.log" iperf3 -c "${target%:*}" -p "${target##*:}" \
		-t "$seconds" -J --logfile "$out" --connect-timeout 5000 "$@")
	tl_wait_exit "$pid" $((seconds + 30)) || rc=$?
	if ((rc != 0)) && tl_pid_alive "$pid"; then
		tl_stop "$pid" TERM 2 || true
	fi
	tl_fetch "$out" "$TL_TMP/iperf3-client.log"
	err=$(jq -r '.error // empty' "$out" 2>/dev/null) || err="no JSON output"
	if ((rc != 0)) || [[ -n $err ]]; then
		echo "[$MEAS_TAG] iperf3 failed (exit $rc): ${err:-no error message}" >&2
		cat "$TL_TMP/iperf3-client.log" >&2 || true
		return 1
	fi
}

# meas_iperf_tcp OUT SECONDS [STREAMS [iperf3 flags...]]: a TCP test that must move bytes.
meas_iperf_tcp() {
	local out=$1 seconds=$2 streams=${3:-1}
	shift $(($# < 3 ? $# : 3))
	meas_iperf_run "$out" "$seconds" -P "$streams" "$@" || return 1
	jq -e '.end.sum_received.bytes > 0' "$out" >/dev/null 2>&1 && return 0
	echo "[$MEAS_TAG] iperf3 received no bytes" >&2
	return 1
}

# Waits for the stats file to hold a complete line (the daemon writes one
# per --stats-interval), up to 5 s.
meas_stats_wait_first() {
	local file=$1 i
	for ((i = 0; i < 50; i++)); do
		[[ -n $(meas_last_line "$file") ]] && return 0
		sleep 0.1
	done
	return 1
}

# Waits until the stats file grew past COUNT lines, so the line we read
# was written after the traffic ended. Up to 5 s.
meas_stats_wait_newer() {
	local file=$1 count=$2 i
	for ((i = 0; i < 50; i++)); do
		(($(meas_line_count "$file") > count)) && return 0
		sleep 0.1
	done
	return 1
}

declare -A MEAS_BEFORE=() MEAS_AFTER=()
MEAS_DEV_BEFORE="" MEAS_DEV_AFTER=""
MEAS_CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# CPU time of a process (all its threads) from /proc, as a stats-like JSON
# line, so that the references' CPU per GB is computed like tunlab's.
meas_proc_cpu() {
	local stat
	local -a f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	read -ra f <<<"${stat##*) }"
	awk -v u="${f[11]}" -v s="${f[12]}" -v hz="$MEAS_CLK_TCK" \
		'BEGIN { printf "{\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f}\n", u / hz, s / hz }'
}

# Bytes sent by SYS_TUN_DEV in cli ("" when there is none).
meas_dev_tx_bytes() {
	[[ -n $SYS_TUN_DEV ]] || return 0
	tl_ns "$NS_CLI" ip -s -j link show dev "$SYS_TUN_DEV" 2>/dev/null | jq -r '.[0].stats64.tx.bytes // empty'
}

# Samples the processes in SYS_PIDS and the device SYS_TUN_DEV into
# MEAS_BEFORE/MEAS_DEV_BEFORE (when BEFORE) or the AFTER ones.
meas_sample_procs() {
	local when=$1 word
	for word in $SYS_PIDS; do
		if [[ $when == before ]]; then
			MEAS_BEFORE[${word%%=*}]=$(meas_proc_cpu "${word#*=}")
		else
			MEAS_AFTER[${word%%=*}]=$(meas_proc_cpu "${word#*=}")
		fi
	done
	if [[ $when == before ]]; then
		MEAS_DEV_BEFORE=$(meas_dev_tx_bytes)
	else
		MEAS_DEV_AFTER=$(meas_dev_tx_bytes)
	fi
}

# Samples every SYS_STATS file before the traffic starts. The daemons write
# a line per interval, so the sample may be up to one interval old: harmless,
# since nothing moved in between.
meas_stats_before() {
	local word role file
	MEAS_BEFORE=() MEAS_AFTER=()
	meas_sample_procs before
	for word in $SYS_STATS; do
		role=${word%%=*} file=${word#*=}
		meas_stats_wait_first "$file" ||
			meas_die "tunlab $role wrote no stats line to $file"
		MEAS_BEFORE[$role]=$(meas_last_line "$file")
	done
}

# Samples them again from a line written after the traffic ended, so that
# the sample holds all of it.
meas_stats_after() {
	local word role file
	meas_sample_procs after
	for word in $SYS_STATS; do
		role=${word%%=*} file=${word#*=}
		meas_stats_wait_newer "$file" "$(meas_line_count "$file")" ||
			echo "[$MEAS_TAG] warning: no new stats line from tunlab $role" >&2
		MEAS_AFTER[$role]=$(meas_last_line "$file")
	done
}

# Difference of KEY between the two samples of ROLE ("" if absent).
meas_stats_delta() {
	local role=$1 key=$2 a b
	a=$(meas_json_num "$key" <<<"${MEAS_BEFORE[$role]:-}")
	b=$(meas_json_num "$key" <<<"${MEAS_AFTER[$role]:-}")
	[[ -n $a && -n $b ]] || return 0
	awk -v a="$a" -v b="$b" 'BEGIN { d = b - a; print (d == int(d) ? sprintf("%.0f", d) : sprintf("%.6f", d)) }'
}

# CPU seconds (user + system) the daemon in ROLE spent per 1e9 payload bytes.
meas_cpu_per_gb() {
	local role=$1 bytes=$2 u s
	u=$(meas_stats_delta "$role" cpu_user_s)
	s=$(meas_stats_delta "$role" cpu_sys_s)
	[[ -n $u && -n $s && $bytes -gt 0 ]] || return 0
	awk -v u="$u" -v s="$s" -v b="$bytes" 'BEGIN { printf "%.4f\n", (u + s) / (b / 1e9) }'
}

# meas_system_up ID FN WORK [CMD...]: a fresh topology with system ID (start
# function FN) running in it; its logs go to WORK. CMD, when given, runs
# once the topology is up and before the system starts (loss: the router's
# delay and loss, so that the system connects over the path it is measured
# on). Dies when any of them fails.
meas_system_up() {
	local id=$1 fn=$2 work=$3
	shift 3
	mkdir -p "$work"
	sys_reset
	tl_topology_up >"$work/topology.log" 2>&1 ||
		{ cat "$work/topology.log" >&2; meas_die "topology did not come up"; }
	(($# == 0)) || "$@" || meas_die "$id: '$*' failed before the start"
	"$fn" "$work" >"$work/start.log" 2>&1 ||
		{ cat "$work/start.log" >&2; meas_die "system $id did not start"; }
}

# meas_system_down FN: every process we started stopped, the topology gone.
meas_system_down() {
	sys_stop "$1" >/dev/null 2>&1 || true
	tl_topology_down >/dev/null 2>&1 || true
}

# meas_tcp_bulk_case ID REP SECONDS STREAMS RAWDIR CSV: one iperf3 TCP test
# with STREAMS parallel streams on the running system, tidy rows for
# parameter "streams=N" (throughput, bytes, retransmits, CPU seconds per GB
# at each tunnel end). Raw iperf3 JSON and the stats lines go to RAWDIR.
meas_tcp_bulk_case() {
	local id=$1 rep=$2 seconds=$3 streams=$4 rawdir=$5 csv=$6
	local param="streams=$streams" base="$rawdir/$id-tcp-streams$streams-rep$rep"
	local bytes gbps retr cpu role word

	meas_stats_before
	if ! meas_iperf_tcp "$base.json" "$seconds" "$streams"; then
		tail -n 20 "$TL_TMP"/*.log >&2 || true
		meas_die "$id rep $rep streams $streams: no measurement"
	fi
	meas_stats_after
	bytes=$(jq -r '.end.sum_received.bytes' "$base.json")
	gbps=$(jq -r '.end.sum_received.bits_per_second / 1e9' "$base.json")
	retr=$(jq -r '.end.sum_sent.retransmits // empty' "$base.json")
	meas_csv_row "$csv" "$id" "$param" throughput "$gbps" Gbit/s "$rep"
	meas_csv_row "$csv" "$id" "$param" bytes_received "$bytes" B "$rep"
	[[ -z $retr ]] || meas_csv_row "$csv" "$id" "$param" retransmits "$retr" count "$rep"
	for word in $SYS_STATS; do
		cp "${word#*=}" "$base.${word%%=*}.stats.jsonl"
	done
	for role in client server; do
		cpu=$(meas_cpu_per_gb "$role" "$bytes")
		[[ -z $cpu ]] || meas_csv_row "$csv" "$id" "$param" "cpu_$role" "$cpu" s/GB "$rep"
	done
	meas_check_tunnelled "$id" "$bytes"
	MEAS_LAST_GBPS=$gbps
}

# One measurement of system ID (start function FN) at repetition REP:
# topology up, system up, iperf3 with 1 stream, stats, everything down.
meas_tcp_bulk_one() {
	local id=$1 fn=$2 rep=$3 seconds=$4 rawdir=$5 csv=$6
	meas_system_up "$id" "$fn" "$TL_TMP/$id-rep$rep"
	meas_tcp_bulk_case "$id" "$rep" "$seconds" 1 "$rawdir" "$csv"
	meas_system_down "$fn"
}

# A tunnel system must have framed at least the payload iperf3 moved (by
# tunlab's client stats, or the tx bytes of the tunnel device in cli); less
# means the traffic went some other way and the figure is not the tunnel's.
meas_check_tunnelled() {
	local id=$1 bytes=$2 tx
	if [[ -n $SYS_TUN_DEV ]]; then
		[[ -n $MEAS_DEV_BEFORE && -n $MEAS_DEV_AFTER ]] ||
			meas_die "$id: could not read the tx bytes of $SYS_TUN_DEV in cli"
		tx=$((MEAS_DEV_AFTER - MEAS_DEV_BEFORE))
		((tx >= bytes)) ||
			meas_die "$id: $SYS_TUN_DEV sent $tx bytes but iperf3 moved $bytes: traffic bypassed the tunnel"
	fi
	[[ $SYS_STATS == *client=* ]] || return 0
	# The proxy frames byte streams, not packets: its row names its own counter.
	tx=$(meas_stats_delta client "${SYS_TX_KEY:-tx_bytes}")
	[[ -n $tx ]] || { echo "[$MEAS_TAG] warning: $id: no ${SYS_TX_KEY:-tx_bytes} in client stats" >&2; return 0; }
	awk -v t="$tx" -v b="$bytes" 'BEGIN { exit !(t >= b) }' ||
		meas_die "$id: tunlab client framed $tx bytes but iperf3 moved $bytes: traffic bypassed the tunnel"
}

# Runs REPS rounds of every selected system (rows from sys_select on
# stdin-free SELECTED), interleaved: rep 1 of each, then rep 2, ...
meas_tcp_bulk_matrix() {
	local selected=$1 reps=$2 seconds=$3 rawdir=$4 csv=$5
	local -a rows
	local rep k=0 n row id fn others
	mapfile -t rows <<<"$selected"
	meas_warn_competitors
	n=$((reps * ${#rows[@]}))
	[[ -s $csv ]] || echo "$MEAS_CSV_HEADER" >"$csv"
	for ((rep = 1; rep <= reps; rep++)); do
		for row in "${rows[@]}"; do
			read -r id fn _ <<<"$row"
			k=$((k + 1))
			others=$(meas_competitors | wc -l)
			meas_progress "$id rep $rep/$reps, test $k/$n, ${seconds} s$( ((others == 0)) ||
				echo ", warning: $others other iperf3/tunlab/VPN processes running")"
			meas_tcp_bulk_one "$id" "$fn" "$rep" "$seconds" "$rawdir" "$csv"
			meas_progress "$id rep $rep/$reps: $(printf '%.2f' "$MEAS_LAST_GBPS") Gbit/s"
		done
	done
}

# iperf3, tunlab and reference tunnel processes that are not ours (another
# run on the same 2 cores skews every figure), one "PID command" a line.
meas_competitors() {
	local pid name
	while read -r pid; do
		[[ -n $pid ]] || continue
		tl_pid_ours "$pid" || ps -o pid=,args= -p "$pid" || true
	done < <(for name in iperf3 tunlab openvpn wireguard-go stunnel4; do pgrep -x "$name" || true; done)
}

# Says so when something else is measuring on this machine right now.
meas_warn_competitors() {
	local others
	others=$(meas_competitors)
	[[ -z $others ]] && return 0
	echo "[$MEAS_TAG] warning: other iperf3/tunlab/VPN processes are running; figures will be low and noisy:" >&2
	cut -c1-110 <<<"$others" | sed 's/^/    /' >&2
}

meas_tool_version() {
	local out
	out=$("$@" 2>&1 | head -n 1) || true
	echo "${out:-unknown}"
}

# Writes the run's metadata as "key: value" lines; extra "key: value"
# arguments (parameters, repetitions, systems) follow the standard ones.
meas_write_meta() {
	local file=$1 commit cpu line
	shift
	commit=$("$MEAS_ROOT/experiments/lib/commit.sh")
	[[ $commit != unknown ]] || commit="none (no commit yet)"
	cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	{
		echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "commit: $commit"
		# experiments/run-all exports it; provenance.sh reads it.
		echo "run: ${MEAS_RUN:-single experiment (not a reference run: make experiments makes those)}"
		echo "kernel: $(uname -r)"
		echo "cpu: ${cpu:-unknown}"
		echo "cores: $(nproc)"
		echo "iperf3: $(meas_tool_version iperf3 --version)"
		echo "openssl: $(meas_tool_version openssl version)"
		echo "gnuplot: $(meas_tool_version gnuplot --version)"
		echo "jq: $(meas_tool_version jq --version)"
		meas_meta_reference_tools
		echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "other iperf3/tunlab/VPN processes at start: $(meas_competitors | wc -l)"
		# On real hosts the lines above describe the controller; each
		# host's own are the host.ROLE.* lines.
		[[ $TL_BACKEND != hosts ]] || tl_hosts_facts
		if [[ -n ${TUNLAB:-} && -x ${TUNLAB:-} ]]; then
			echo "tunlab: $(meas_tool_version "$TUNLAB" --version)"
		fi
		for line in "$@"; do
			echo "$line"
		done
	} >"$file"
}

# Versions of the reference systems' tools that are installed.
meas_meta_reference_tools() {
	command -v openvpn >/dev/null && echo "openvpn: $(meas_tool_version openvpn --version)"
	command -v wireguard-go >/dev/null && echo "wireguard-go: $(meas_tool_version wireguard-go --version)"
	command -v wg >/dev/null && echo "wireguard-tools: $(meas_tool_version wg --version)"
	# stunnel prints a config note before its version line.
	command -v stunnel4 >/dev/null &&
		echo "stunnel: $(stunnel4 -version 2>&1 | grep -m 1 '^stunnel ' || echo unknown)"
	return 0
}

# Metadata lines naming each selected system: "system.tun: tunlab tun",
# and what carried its packets: "transport.tun: tls (TCP)" (systems.sh).
meas_meta_systems() {
	local selected=$1 id label
	while read -r id _ _ label; do
		[[ -n $id ]] || continue
		echo "system.$id: $label"
		[[ -z ${SYS_TRANSPORT[$id]:-} ]] || echo "transport.$id: ${SYS_TRANSPORT[$id]}"
	done <<<"$selected"
}

# Checks that VALUE is an integer from MIN to MAX, for flag FLAG.
meas_check_int() {
	local flag=$1 value=$2 min=$3 max=$4
	if [[ ! $value =~ ^[0-9]+$ ]] || ((value < min || value > max)); then
		meas_die "$flag: '$value' is not a whole number from $min to $max"
	fi
}

# meas_median CSV SYSTEM METRIC [PARAMETER]: the median, or "" when there is none.
meas_median() {
	local m
	m=$(meas_csv_values "$1" "$2" "$3" "${4:-}" | meas_stats)
	[[ $m == nan* ]] || echo "${m%% *}"
}

# meas_print_summary CSV SELECTED [PARAMETER]: the human summary of a TCP
# bulk run (default parameter streams=1): one line per system, then each
# system's ratio to the first row (the reference, plain veth by default).
meas_print_summary() {
	local csv=$1 selected=$2 param=${3:-streams=1} id ref="" ref_med=""
	local med lo hi n cpu_c cpu_s line ratios=""
	echo
	echo "TCP bulk throughput cli -> dst, ${param/=/ } (median, min-max over repetitions):"
	while read -r id _; do
		[[ -n $id ]] || continue
		read -r med lo hi n < <(meas_csv_values "$csv" "$id" throughput "$param" | meas_stats)
		line=$(printf '  %-12s %8.3f Gbit/s  (n=%d, min %.3f, max %.3f)' "$id" "$med" "$n" "$lo" "$hi")
		[[ $n != 0 ]] || continue
		cpu_c=$(meas_median "$csv" "$id" cpu_client "$param")
		cpu_s=$(meas_median "$csv" "$id" cpu_server "$param")
		[[ -z $cpu_c ]] || line+=$(printf '  CPU: client %.2f s/GB' "$cpu_c")
		[[ -z $cpu_s ]] || line+=$(printf ', server %.2f s/GB' "$cpu_s")
		echo "$line"
		if [[ -z $ref ]]; then
			ref=$id ref_med=$med
		else
			ratios+=$(printf '  ratio %s/%s = %.3f' "$id" "$ref" \
				"$(awk -v a="$med" -v b="$ref_med" 'BEGIN { print (b > 0 ? a / b : 0) }')")$'\n'
		fi
	done <<<"$selected"
	printf '%s' "$ratios"
}

# ---- latency: ping samples and TCP request/response --------------------------

# meas_ping_rows CSV ID REP PARAM COUNT RAW [ping flags...]: COUNT echoes
# cli -> dst MEAS_PING_INTERVAL seconds apart, the output kept in RAW; one row per answered
# echo (metric rtt, ms) and one with the loss (rtt_loss, %). Sets
# MEAS_PING_MEDIAN (ms, "" when nothing came back).
# With -w, ping stops once COUNT echoes are answered, and the ones still in
# flight then count as lost: at tens of ms of RTT that is most of the
# loss it reports. MEAS_PING_EXACT=1 sends exactly COUNT and waits for
# their answers (ping's own two RTTs), bounded by timeout instead.
meas_ping_rows() {
	local csv=$1 id=$2 rep=$3 param=$4 count=$5 raw=$6
	shift 6
	local -a bound=(-w $((count / 100 + 3)))
	[[ ${MEAS_PING_EXACT:-0} != 1 ]] || bound=()
	ip netns exec "$NS_CLI" timeout -s INT $((count / 100 + 5)) ping -n -i "$MEAS_PING_INTERVAL" -c "$count" -W 1 \
		${bound[@]+"${bound[@]}"} "$@" "$MEAS_DST" >"$raw" 2>&1 || true
	meas_ping_samples <"$raw" | awk -v s="$id" -v p="$param" -v r="$rep" \
		'{ printf "%s,%s,rtt,%s,ms,%s\n", s, p, $1, r }' >>"$csv"
	meas_csv_row "$csv" "$id" "$param" rtt_loss "$(meas_ping_loss <"$raw")" % "$rep"
	# shellcheck disable=SC2034 # read by the experiments
	MEAS_PING_MEDIAN=$(meas_ping_samples <"$raw" | meas_stats | awk '$4 > 0 { print $1 }')
}

# The RTT of each answered echo in ping's output, ms, one a line.
meas_ping_samples() {
	sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p'
}

# The loss percentage from ping's summary line (100 when there is none).
meas_ping_loss() {
	awk '/packets transmitted/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^loss/ || $(i + 1) == "packet") {
			v = $i; sub(/%/, "", v); print v; found = 1; exit } }
		END { if (!found) print 100 }'
}

# meas_tool_bin NAME [OVERRIDE]: the path of experiments/tools/NAME as built
# beside the tunlab under test (else in build/), or OVERRIDE when given.
meas_tool_bin() {
	local name=$1 bin=${2:-}
	[[ -n $bin ]] || bin=$(dirname "${TUNLAB:-$MEAS_ROOT/build/tunlab}")/tools/$name
	[[ -x $bin ]] || bin=$MEAS_ROOT/build/tools/$name
	[[ -x $bin ]] || meas_die "no $name at $bin: run make (it builds build/tools/$name)"
	echo "$bin"
}

meas_tcp_rr_bin() {
	meas_tool_bin tcp_rr "${MEAS_TCP_RR:-}"
}

# meas_tcp_rr_rows CSV ID REP SECONDS SIZE RAW: tcp_rr for SECONDS with
# SIZE-byte requests and responses, cli -> a tcp_rr server on dst's iperf3
# port (or SYS_TARGET); its output line kept in RAW. Rows (parameter
# size=N): rr_rate (transactions/s), rr_p50_us, rr_p90_us, rr_p99_us.
# Sets MEAS_RR_RATE and MEAS_RR_TRANSACTIONS (the count).
meas_tcp_rr_rows() {
	local csv=$1 id=$2 rep=$3 seconds=$4 size=$5 raw=$6 bin pid key val
	local target=${SYS_TARGET:-$MEAS_DST:$MEAS_PORT}
	bin=$(meas_tcp_rr_bin)
	pid=$(tl_bg "$NS_DST" "$TL_TMP/tcp_rr-server.log" "$bin" server \
		--listen "$MEAS_DST:$MEAS_PORT" --once --timeout 10)
	tl_wait_listen "$NS_DST" tcp "$MEAS_PORT" 5 || meas_die "tcp_rr server in dst is not listening"
	ip netns exec "$NS_CLI" timeout $((seconds + 20)) "$bin" client --connect "$target" \
		--seconds "$seconds" --size "$size" --timeout 5 >"$raw" 2>&1 ||
		{ cat "$raw" "$TL_TMP/tcp_rr-server.log" >&2; meas_die "$id: tcp_rr failed"; }
	tl_wait_exit "$pid" 5 >/dev/null 2>&1 || tl_stop "$pid" TERM 2 || true
	for key in transactions rate p50_us p90_us p99_us; do
		val=$(tr ' ' '\n' <"$raw" | sed -n "s/^$key=//p")
		[[ -n $val ]] || meas_die "$id: no $key in tcp_rr's output: $(cat "$raw")"
		if [[ $key == transactions ]]; then
			# shellcheck disable=SC2034 # read by the experiments
			MEAS_RR_TRANSACTIONS=$val
		elif [[ $key == rate ]]; then
			meas_csv_row "$csv" "$id" "size=$size" rr_rate "$val" 1/s "$rep"
			# shellcheck disable=SC2034 # read by the experiments
			MEAS_RR_RATE=$val
		else
			meas_csv_row "$csv" "$id" "size=$size" "rr_$key" "$val" us "$rep"
		fi
	done
}

# ---- scheduling: the time a tunnel end waits for a CPU ------------------------
#
# On two cores shared by both tunnel ends and both traffic ends, a packet's
# time is also the time its process waits on a run queue before it runs.
# The kernel counts it per thread (/proc/PID/task/TID/schedstat: time on a
# CPU, time runnable but waiting, times scheduled in; CONFIG_SCHED_INFO), and
# /proc/stat counts the machine's idle and stolen time. Two samples around a
# phase say how much of it each end spent waiting, and how often it ran.

# The tunnel ends as "role=PID" words: SYS_PIDS for a reference system,
# tunlab's client and server otherwise (nothing for plain).
meas_tunnel_pids() {
	if [[ -n $SYS_PIDS ]]; then
		echo "$SYS_PIDS"
	elif [[ -n ${TL_CLI_PID:-} && -n ${TL_SRV_PID:-} ]]; then
		echo "client=$TL_CLI_PID server=$TL_SRV_PID"
	fi
}

# One sample as words: "t=NS cpu=TOTAL,IDLE,STEAL role=RUN,WAIT,RUNS ...",
# times in ns (the machine's in clock ticks), each role's threads summed.
meas_sched_sample() {
	local word task sum
	echo -n "t=$(date +%s%N) "
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "cpu=%.0f,%.0f,%.0f", t, $5 + $6, $9 }' /proc/stat
	for word in $(meas_tunnel_pids); do
		sum=$(for task in /proc/"${word#*=}"/task/*/schedstat; do cat "$task" 2>/dev/null || true; done |
			awk '{ r += $1; w += $2; n += $3 } END { printf "%.0f,%.0f,%.0f", r, w, n }')
		echo -n " ${word%%=*}=$sum"
	done
	echo
}

# meas_sched_rows CSV ID REP PARAM BEFORE AFTER [EVENTS]: rows for the
# interval between two samples: machine_idle and machine_steal (% of all
# CPU time), and per tunnel end ROLE_wait_share (% of the interval it was
# runnable but waited for a CPU, its threads summed: above 100 when several
# wait at once, as wireguard-go's may), ROLE_wait_per_run (us, the mean wait each
# time it was scheduled in) and ROLE_runs (times scheduled in per second);
# given the number of EVENTS in the interval (tcp_rr's transactions), also
# ROLE_runs_per_event, ROLE_wait_per_event and ROLE_cpu_per_event (us on a
# CPU, its code and the kernel's work on its behalf). A thread that exits
# between the samples takes its counts with it, so a role whose sums went
# down is left out.
meas_sched_rows() {
	local csv=$1 id=$2 rep=$3 param=$4 before=$5 after=$6 events=${7:-0}
	awk -v b="$before" -v a="$after" -v s="$id" -v p="$param" -v r="$rep" -v ev="$events" '
		function parse(str, m,   n, w, i, kv) {
			n = split(str, w, " ")
			for (i = 1; i <= n; i++) { split(w[i], kv, "="); m[kv[1]] = kv[2] }
		}
		function row(metric, value, unit) { printf "%s,%s,%s,%.3f,%s,%s\n", s, p, metric, value, unit, r }
		BEGIN {
			parse(b, B); parse(a, A)
			secs = (A["t"] - B["t"]) / 1e9
			if (secs <= 0) exit
			split(B["cpu"], cb, ","); split(A["cpu"], ca, ",")
			if (ca[1] > cb[1]) {
				row("machine_idle", 100 * (ca[2] - cb[2]) / (ca[1] - cb[1]), "%")
				row("machine_steal", 100 * (ca[3] - cb[3]) / (ca[1] - cb[1]), "%")
			}
			for (role in A) {
				if (role == "t" || role == "cpu" || !(role in B)) continue
				split(B[role], xb, ","); split(A[role], xa, ",")
				wait = xa[2] - xb[2]; runs = xa[3] - xb[3]
				if (wait < 0 || runs <= 0) continue
				row(role "_wait_share", 100 * wait / 1e9 / secs, "%")
				row(role "_wait_per_run", wait / runs / 1e3, "us")
				row(role "_runs", runs / secs, "1/s")
				if (ev > 0) {
					row(role "_runs_per_event", runs / ev, "1")
					row(role "_wait_per_event", wait / ev / 1e3, "us")
					row(role "_cpu_per_event", (xa[1] - xb[1]) / ev / 1e3, "us")
				}
			}
		}' >>"$csv"
}

# ---- setup time ---------------------------------------------------------------

MEAS_SETUP_BOUND=${MEAS_SETUP_BOUND:-10} # seconds an echo may take to come back

# meas_start_timed ID FN WORK TARGET RAW: starts system ID (start function
# FN) while a pinger in cli sends an echo to TARGET every 10 ms (its -D
# output kept in RAW). srv blocks cleartext forwarding first, so no echo is
# answered before the system carries it. Sets MEAS_SETUP_MS: from the call
# of the start function (nothing of the system running yet) to the first
# answered echo, 10 ms resolution. Returns 2 when no echo came back within
# MEAS_SETUP_BOUND seconds although the system started (it carries no
# ICMP); dies when the system does not start.
meas_start_timed() {
	local id=$1 fn=$2 work=$3 target=$4 raw=$5 pid t0 first
	mkdir -p "$work"
	tl_block_cleartext || meas_die "could not block cleartext forwarding in srv"
	# stdbuf: ping's stdio would hold its lines until it exits.
	pid=$(tl_bg "$NS_CLI" "$raw" stdbuf -oL ping -n -D -i 0.01 -W 1 -w "$MEAS_SETUP_BOUND" \
		-c $((MEAS_SETUP_BOUND * 100)) "$target")
	tl_wait_until 5 grep -q '^PING' "$raw" || meas_die "the pinger in cli did not start"
	t0=$EPOCHREALTIME
	"$fn" "$work" >"$work/start.log" 2>&1 ||
		{ cat "$work/start.log" >&2; meas_die "system $id did not start"; }
	[[ -z $SYS_TARGET ]] || return 2 # a TCP relay: no echo will ever come
	tl_wait_until "$MEAS_SETUP_BOUND" meas_echo_answered "$pid" "$raw" || true
	tl_stop "$pid" INT 2 >/dev/null 2>&1 || true
	first=$(sed -n 's/^\[\([0-9.]*\)\] .*bytes from.*/\1/p' "$raw" | head -n 1)
	[[ -n $first ]] || return 2
	# shellcheck disable=SC2034 # read by the experiments
	MEAS_SETUP_MS=$(awk -v a="${t0/,/.}" -v b="$first" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
}

meas_echo_answered() {
	grep -q 'bytes from' "$2" && return 0
	tl_pid_alive "$1" || return 255
	return 1
}

# meas_kernel_objects NS: "routes rules links" in NS: routes of every table
# (IPv4 and IPv6), policy rules plus netfilter rules (nft's view, which
# includes iptables-nft's), and network devices.
meas_kernel_objects() {
	local ns=$1 routes rules nf links
	routes=$(( $(ip -n "$ns" -4 route show table all | wc -l) + $(ip -n "$ns" -6 route show table all | wc -l) ))
	rules=$(( $(ip -n "$ns" -4 rule show | wc -l) + $(ip -n "$ns" -6 rule show | wc -l) ))
	nf=$(ip netns exec "$ns" nft -a list ruleset 2>/dev/null |
		grep -E '# handle [0-9]+$' | grep -cvE '^[[:space:]]*(table|chain|set|map|flowtable) ' || true)
	links=$(ip -n "$ns" -o link show | wc -l)
	echo "$routes $((rules + nf)) $links"
}
