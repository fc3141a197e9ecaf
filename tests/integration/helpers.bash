# SPDX-License-Identifier: MIT
# helpers.bash: bats glue around experiments/lib/netns.sh: kernel probes, per-test topology, leak-checking teardown.
#
# A suite does:   load helpers
#                 setup_file() { tl_suite_setup; }
#                 setup()      { tl_test_setup; }       # topology up, cleartext blocked
#                 teardown()   { tl_test_teardown; }    # stop tunlab, assert nothing left
# FRONTEND (env, default tun) picks the frontend under test; TUNLAB the binary.

TL_REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# shellcheck source=../../experiments/lib/netns.sh
source "$TL_REPO/experiments/lib/netns.sh"

FRONTEND=${FRONTEND:-tun}
# A stack trace from a sanitizer build in a daemon's log fails the test.
TL_SAN_PATTERN='AddressSanitizer|LeakSanitizer|runtime error'

# ---- kernel and tool probes: a missing feature skips, never fails ------------
#
# Every skip says which kind it is. "env: ..." (tl_skip_env) is something
# this machine lacks: a package, root, /dev/net/tun, a kernel feature. The
# CI machine must lack none of them, so under CI=true it is a failure.
# "design: ..." (tl_skip_design) is a test that does not apply by choice:
# --quick, a frontend that cannot do it by design, the sanitizer build.
# tests/run, under CI=true, also counts any skip not marked "design:" as a
# failure, so a bare `skip` cannot hide there either.

tl_skip_env() {
	[[ ${CI:-} != true ]] || tl_fail "env: $* (CI=true: the CI machine must have this; experiments/lib/deps.sh)"
	skip "env: $*"
}

tl_skip_design() {
	skip "design: $*"
}

# Prints why the test cannot run here, or nothing.
tl_probe_netns() {
	((EUID == 0)) || { echo "needs root (network namespaces, iptables)"; return; }
	command -v ip >/dev/null || { echo "iproute2 (ip) not installed"; return; }
	local probe="$TL_NS_PREFIX-probe-$$-$RANDOM"
	if ! ip netns add "$probe" 2>/dev/null; then
		echo "cannot create network namespaces here (ip netns add failed)"
		return
	fi
	if ! ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null; then
		echo "kernel has no veth support"
	fi
	ip netns del "$probe" 2>/dev/null || true
}

tl_probe_frontend() {
	case $1 in
	tun)
		[[ -c /dev/net/tun ]] || { echo "no /dev/net/tun (kernel without TUN, or not in this container)"; return; }
		{ exec {fd}<>/dev/net/tun; } 2>/dev/null || { echo "cannot open /dev/net/tun"; return; }
		exec {fd}>&-
		;;
	nfqueue)
		modprobe -q nfnetlink_queue 2>/dev/null || true
		[[ -d /proc/net/netfilter ]] || echo "no netfilter in this kernel"
		;;
	esac
}

# tl_require_tools TOOL...: skip when a userspace tool is missing.
tl_require_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || tl_skip_env "$tool not installed (experiments/lib/deps.sh installs it)"
	done
}

tl_require_net() {
	local why
	why=$(tl_probe_netns)
	[[ -z $why ]] || tl_skip_env "$why"
}

tl_require_frontend() {
	local why
	why=$(tl_probe_frontend "$FRONTEND")
	[[ -z $why ]] || tl_skip_env "frontend $FRONTEND: $why"
}

tl_require_tunlab() {
	[[ -x $TUNLAB ]] || tl_fail "expected an executable tunlab at TUNLAB=$TUNLAB (run make)"
}

# ---- suite and test life cycle ------------------------------------------------------

# One PKI per suite file (fast), plus a second CA for the wrong-CA tests.
tl_suite_setup() {
	export TL_PKI="$BATS_FILE_TMPDIR/pki"
	export TL_BAD_PKI="$BATS_FILE_TMPDIR/pki-other-ca"
	"$TL_MKPKI" "$TL_PKI" cli cli2 >/dev/null
	"$TL_MKPKI" "$TL_BAD_PKI" cli >/dev/null
}

# tl_test_setup [--no-topology]: each test gets its own TL_ID, so a test that
# leaks cannot collide with the next.
tl_test_setup() {
	TL_ID="$$-${BATS_TEST_NUMBER:-0}"
	if [[ ${1:-} == --no-topology ]]; then
		tl_init --no-trap
		return
	fi
	tl_require_net
	tl_init --no-trap
	tl_topology_up
}

# Stops what the test left running and asserts that tunlab cleaned up after
# itself. Cleans up in every case; fails (with every reason) afterwards.
tl_test_teardown() {
	[[ -n ${TL_TMP:-} ]] || return 0
	local -a errors=()
	tl_teardown_tunlab errors
	local ns left
	for ns in "$NS_CLI" "$NS_SRV"; do
		left=$(tl_leftovers "$ns")
		[[ -z $left ]] || errors+=("expected no tunlab state left in $ns after SIGTERM, found:"$'\n'"$left")
	done
	tl_teardown_san_check errors
	# Helpers a test started (listeners, pings) are ours to kill; afterwards
	# nothing we started may remain.
	tl_kill_started
	local -a alive
	mapfile -t alive < <(tl_started_pids)
	((${#alive[@]} == 0)) || errors+=("expected every started process gone after SIGKILL: $(tl_pid_cmdlines "${alive[@]}")")
	# bats shows this only for a failed test: the daemons' side of the story.
	if [[ -z ${BATS_TEST_COMPLETED:-} || ${#errors[@]} -gt 0 ]]; then
		local log
		for log in "$TL_TMP"/*.log; do
			[[ -f $log ]] && tl_log_tail "$log"
		done
	fi
	tl_cleanup
	((${#TL_FAKE_LOCKS[@]} == 0)) || rm -f -- "${TL_FAKE_LOCKS[@]}"
	TL_FAKE_LOCKS=()
	for ns in "$NS_CLI" "$NS_SRV" "$NS_DST" "${TL_EXTRA_NS[@]}"; do
		! tl_ns_exists "$ns" || errors+=("expected namespace $ns deleted")
	done
	if ((${#errors[@]})); then
		printf 'teardown: %s\n' "${errors[@]}" >&2
		return 1
	fi
}

tl_pid_cmdlines() {
	local pid
	for pid in "$@"; do
		printf '%s(%s) ' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
	done
}

# SIGTERM every tunlab the test started and still runs: it must exit 0.
tl_teardown_tunlab() {
	local -n _errors=$1
	local var pid
	for var in TL_CLI_PID TL_SRV_PID TL_CLI2_PID; do
		pid=${!var:-}
		[[ -n $pid ]] || continue
		if ! tl_pid_alive "$pid"; then
			# Died before teardown: a crash unless the test said otherwise.
			local rc=0
			wait "$pid" 2>/dev/null || rc=$?
			((rc == 0 || rc == 127)) || _errors+=("$var=$pid exited by itself with status $rc before teardown")
			continue
		fi
		tl_stop "$pid" TERM 10 || true
		((TL_STOP_STATUS == 0)) || _errors+=("expected $var=$pid to exit 0 on SIGTERM, got status $TL_STOP_STATUS")
	done
}

tl_teardown_san_check() {
	local -n _errs=$1
	local log
	for log in "$TL_TMP"/*.log; do
		[[ -f $log ]] || continue
		if grep -qE "$TL_SAN_PATTERN" "$log"; then
			_errs+=("sanitizer report in $log:"$'\n'"$(grep -E -A12 "$TL_SAN_PATTERN" "$log" | head -40)")
		fi
	done
}

# ---- small assertions for tests ----------------------------------------------------

# tl_expect_ge WHAT ACTUAL MIN
tl_expect_ge() {
	[[ $2 =~ ^[0-9]+$ ]] || tl_fail "expected $1 to be a number >= $3, got '$2'" || return 1
	(($2 >= $3)) || tl_fail "expected $1 >= $3, got $2"
}

# tl_expect_gt WHAT ACTUAL MIN
tl_expect_gt() {
	[[ $2 =~ ^[0-9]+$ ]] || tl_fail "expected $1 to be a number > $3, got '$2'" || return 1
	(($2 > $3)) || tl_fail "expected $1 > $3, got $2"
}

# tl_expect_eq WHAT ACTUAL EXPECTED
tl_expect_eq() {
	[[ $2 == "$3" ]] || tl_fail "expected $1 to be '$3', got '$2'"
}

# tl_expect_contains WHAT HAYSTACK NEEDLE
tl_expect_contains() {
	[[ $2 == *"$3"* ]] || tl_fail "expected $1 to contain '$3', got: $2"
}

# Wait until a stats key of FILE reaches MIN (stats lag by one interval).
tl_wait_stat_ge() {
	local file=$1 key=$2 min=$3 timeout=${4:-$TL_TIMEOUT}
	tl_wait_until "$timeout" tl_json_test "$file" ".$key >= $min" ||
		tl_fail "expected $key >= $min in $file within ${timeout}s, last value: $(tl_json_get "$file" "$key" 2>&1)"
}

# ---- instance locks (base/owner.h) ------------------------------------------------

# tl_owner_lock NS PID: the lock file that vouches for PID's objects in NS.
tl_owner_lock() {
	echo "/run/tunlab/$(ip netns exec "$1" stat -L -c %i /proc/self/ns/net)-$2.lock"
}

# tl_fake_dead_owner NS PID: what a crashed instance PID leaves in /run:
# its lock file, held by nobody. Removed at teardown if cleanup did not.
tl_fake_dead_owner() {
	local lock
	lock=$(tl_owner_lock "$1" "$2") || return 1
	mkdir -p -m 0700 /run/tunlab
	: >"$lock"
	TL_FAKE_LOCKS+=("$lock")
}
TL_FAKE_LOCKS=()

# ---- fail-closed after kill -9 (the packet frontends that leave rules behind) ----

# start_capture NAME FILTER: tcpdump on srv's underlay end, bounded by time
# and count, PID in TL_LAST_CAPTURE; returns once it listens.
start_capture() {
	local log=$TL_TMP/$1.log
	tl_bg "$NS_SRV" "$log" timeout 6 tcpdump -n -l -i "$TL_UL_IF" -c 5 "$2" >/dev/null
	TL_LAST_CAPTURE=$TL_LAST_PID
	tl_wait_until 5 grep -q 'listening on' "$log" || tl_fail "expected tcpdump to start in srv"
}

# packets_seen NAME: the packet lines tcpdump printed.
packets_seen() {
	grep -E '^[0-9]{2}:[0-9]{2}:' "$TL_TMP/$1.log" || true
}

# ICMP, UDP and a TCP connect from cli to dst; all are expected to fail.
send_probes() {
	n_cli ping -n -q -c 3 -i 0.2 -W 1 "$TL_DST_IN4" >/dev/null 2>&1 || true
	echo probe | n_cli timeout 3 socat -u - "UDP4-SENDTO:$TL_DST_IN4:5002" 2>/dev/null || true
	n_cli timeout 3 socat -u /dev/null "TCP4:$TL_DST_IN4:5003,connect-timeout=1" 2>/dev/null || true
}

# assert_fail_closed_after_kill MIN_REMOVED WHAT: with a client running,
# kill -9 it; nothing to dst may leave in clear while its objects stay;
# tunlab cleanup removes at least MIN_REMOVED (WHAT says which) and leaves
# nothing; then, as the control, the same probes do leave in clear, so the
# first capture would have seen a leak.
assert_fail_closed_after_kill() {
	local min=$1 what=$2
	kill -KILL "$TL_CLI_PID"
	tl_wait_exit "$TL_CLI_PID" 5 || true
	TL_CLI_PID=""
	run tl_leftovers "$NS_CLI"
	tl_expect_contains "the dead client's rules, still in place" "$output" "iptables: "

	start_capture leak "host $TL_DST_IN4"
	send_probes
	tl_wait_exit "$TL_LAST_CAPTURE" 10 || true
	[[ -z $(packets_seen leak) ]] ||
		tl_fail "expected nothing to dst on the underlay while the dead client's objects stay, saw: $(packets_seen leak)"

	run n_cli "$TUNLAB" cleanup
	[[ $status == 0 ]] || tl_fail "expected tunlab cleanup to exit 0, got $status: $output"
	[[ $output =~ removed\ ([0-9]+)\ leftover ]] || tl_fail "expected a removal count, got: $output"
	tl_expect_ge "objects removed ($what)" "${BASH_REMATCH[1]}" "$min"
	run tl_leftovers "$NS_CLI"
	[[ -z $output ]] || tl_fail "expected no tunlab state in cli after cleanup, found: $output"
	run n_cli ip -o addr show dev lo
	[[ $output != *"$TL_TUN_CLI4"* ]] || tl_fail "expected the inner address gone from lo: $output"

	start_capture control "host $TL_DST_IN4"
	send_probes
	tl_wait_exit "$TL_LAST_CAPTURE" 10 || true
	[[ -n $(packets_seen control) ]] ||
		tl_fail "expected the control capture to see the probes in clear once the objects are gone"
}

# ---- bulk transfers (pcap.bats, nfqueue.bats) ----

# send_blob NS_FROM NS_TO ADDR PORT BYTES: BYTES of random data over TCP
# (IPv6 when ADDR is one, in brackets), compared at the far end.
send_blob() {
	local from=$1 to=$2 addr=$3 port=$4 bytes=$5 listen=TCP4-LISTEN
	[[ $addr != \[* ]] || listen=TCP6-LISTEN
	head -c "$bytes" /dev/urandom >"$TL_TMP/blob-$port"
	tl_bg "$to" "$TL_TMP/sink-$port.log" \
		socat -T 20 -u "$listen:$port,reuseaddr" "CREATE:$TL_TMP/blob-$port.out" >/dev/null
	local sink=$TL_LAST_PID
	tl_wait_listen "$to" tcp "$port"
	tl_assert "$bytes bytes sent through the tunnel to $addr:$port" \
		ip netns exec "$from" timeout 30 socat -u "OPEN:$TL_TMP/blob-$port" "TCP:$addr:$port"
	tl_wait_exit "$sink" 20 || tl_fail "expected the receiving socat to finish within 20 s"
	tl_assert "the $bytes bytes received identical to what was sent" \
		cmp -s "$TL_TMP/blob-$port" "$TL_TMP/blob-$port.out"
}

# assert_gso_blobs_both_ways: with a tunnel up whose both ends inject
# through lo (the packet frontends' default), 8 MiB cli -> dst and 8 MiB
# dst -> cli arrive intact; both ends captured and injected GSO packets
# (above the 1500 MTU on average) and segmented nothing in software, since
# each announced that it takes offload packets.
assert_gso_blobs_both_ways() {
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 8388608
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 8388608
	sleep 0.5
	local side packets bytes
	for side in "$TL_CLI_STATS" "$TL_SRV_STATS"; do
		packets=$(tl_json_get "$side" fe_captured_packets)
		bytes=$(tl_json_get "$side" fe_captured_bytes)
		tl_expect_gt "bytes per captured packet in $(basename "$side") (GSO packets above the 1500 MTU)" \
			"$((bytes / packets))" 1500
		packets=$(tl_json_get "$side" fe_injected_packets)
		bytes=$(tl_json_get "$side" fe_injected_bytes)
		tl_expect_gt "bytes per injected packet in $(basename "$side") (GSO packets injected whole)" \
			"$((bytes / packets))" 1500
		tl_expect_eq "packets segmented in software for the peer" "$(tl_json_get "$side" tx_segmented)" 0
		tl_expect_eq "injections refused" "$(tl_json_get "$side" fe_inject_errors)" 0
	done
	tl_assert "no packet the tunnel could not segment" tl_json_test "$TL_CLI_STATS" '.drop_offload == 0'
	tl_assert "no packet the tunnel could not segment" tl_json_test "$TL_SRV_STATS" '.drop_offload == 0'
}

# assert_exit_forwards_like_a_router: with a tunnel up whose server injects
# through lo (the default), the exit forwards what it injects: a ping with
# TTL 1 from cli dies there ("Time to live exceeded" comes back through
# the tunnel, where a raw socket's packet would reach dst), and a DF ping
# too big for a 1280-byte srv-dst link gets "fragmentation needed" back
# (a raw socket's packet vanished without one).
assert_exit_forwards_like_a_router() {
	run n_cli timeout 10 ping -n -c 1 -t 1 -W 3 "$TL_DST_IN4"
	tl_expect_contains "ping -t 1 through the tunnel" "$output" "Time to live exceeded"
	ip -n "$NS_SRV" link set "$TL_IN_IF" mtu 1280
	ip -n "$NS_DST" link set "$TL_IN_IF" mtu 1280
	run n_cli timeout 10 ping -n -M do -s 1300 -c 2 -i 0.3 -W 2 "$TL_DST_IN4"
	ip -n "$NS_SRV" link set "$TL_IN_IF" mtu 1500
	ip -n "$NS_DST" link set "$TL_IN_IF" mtu 1500
	[[ $output == *"Frag needed"* || $output == *"message too long, mtu=1280"* ]] ||
		tl_fail "expected frag-needed (mtu 1280) back for a DF ping of 1328 bytes, got: $output"
}
