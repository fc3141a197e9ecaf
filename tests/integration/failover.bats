#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# failover.bats: state as data (issue 16): TLS session tickets from a key file shared by servers, rotation, identity on resumption.
#
# A "second server" is a new tunlab process on the srv namespace that
# shares nothing with the first but its files (peers, certificates,
# --ticket-keys): what it knows of a returning client, it read there.
#
#   FRONTEND=tun TUNLAB=build/tunlab bats tests/integration/failover.bats

load helpers

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	tl_require_tools ping jq
	tl_require_frontend
	tl_test_setup
	tl_block_cleartext
	TL_KEYS=$TL_TMP/ticket.keys
}

teardown() {
	# A failover test's first server, when it failed before stopping it.
	[[ -z ${SRV1_PID:-} ]] || tl_stop "$SRV1_PID" TERM 5 || true
	tl_test_teardown
}

# A fresh ticket key: 80 random bytes, 160 hex digits (name, HMAC key, AES key).
new_key() {
	od -An -v -tx1 -N80 /dev/urandom | tr -d ' \n'
}

# write_keys KEY [KEY]: the current key, then the previous one, mode 600.
write_keys() {
	(umask 077 && printf '%s\n' "# tunlab ticket keys: current, previous" "$@" >"$TL_KEYS.new")
	mv "$TL_KEYS.new" "$TL_KEYS"
}

# The stats and log of server instance NAME, so the last line read is never the previous one's.
use_server_files() {
	TL_SRV_LOG=$TL_TMP/$1.log
	TL_SRV_STATS=$TL_TMP/$1-stats.jsonl
}

# start_server NAME [flags]: a server instance with its own files and the shared ticket keys.
start_server() {
	use_server_files "$1"
	shift
	tl_start_tunlab_server "$FRONTEND" --ticket-keys "$TL_KEYS" --keepalive 1 "$@"
}

kill_server() {
	kill -KILL "$TL_SRV_PID"
	tl_wait_exit "$TL_SRV_PID" 5 || true
	TL_SRV_PID=""
}

# expect_handshakes FULL RESUMED: the server instance's counters, once it has a session.
expect_handshakes() {
	tl_wait_stat_ge "$TL_SRV_STATS" sessions_active 1 "$TL_TIMEOUT"
	tl_wait_stat_ge "$TL_SRV_STATS" "handshakes_$( (($2)) && echo resumed || echo full)" 1
	tl_assert "$(basename "$TL_SRV_STATS"): $1 full and $2 resumed handshakes" \
		tl_json_test "$TL_SRV_STATS" ".handshakes_full == $1 and .handshakes_resumed == $2"
}

note() {
	echo "# $*" >&3
}

ping_through() {
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 ||
		tl_fail "expected cli->dst to answer through the tunnel within ${TL_TIMEOUT}s"
}

@test "a second server sharing --ticket-keys resumes the client's session: an abbreviated handshake on both ends" {
	write_keys "$(new_key)"
	start_server srv1
	tl_start_tunlab_client "$FRONTEND" --keepalive 1
	ping_through
	expect_handshakes 1 0
	kill_server
	start_server srv2
	expect_handshakes 0 1
	tl_wait_stat_ge "$TL_CLI_STATS" handshakes_resumed 1
	tl_assert "the client to count one full handshake and one resumed" \
		tl_json_test "$TL_CLI_STATS" '.handshakes_full == 1 and .handshakes_resumed == 1'
	ping_through
	! grep -qiE '[0-9a-f]{32}' "$TL_TMP"/srv*.log || tl_fail "expected no key material in the servers' logs"
}

@test "without --ticket-keys a restarted server makes a full handshake" {
	use_server_files srv1
	tl_start_tunlab_server "$FRONTEND"
	tl_start_tunlab_client "$FRONTEND"
	expect_handshakes 1 0
	kill_server
	use_server_files srv2
	tl_start_tunlab_server "$FRONTEND"
	expect_handshakes 1 0
}

@test "ticket-key rotation: the previous key still opens tickets, a key two rotations old does not; SIGHUP rereads the file" {
	local a b c d
	a=$(new_key) b=$(new_key) c=$(new_key) d=$(new_key)
	write_keys "$a"
	start_server srv1
	tl_start_tunlab_client "$FRONTEND" --keepalive 1
	expect_handshakes 1 0
	# The client holds a ticket under a; two rotations later a is gone.
	write_keys "$c" "$b"
	kill_server
	start_server srv2
	expect_handshakes 1 0
	# Its new ticket is under c; one rotation later c is the previous key.
	write_keys "$d" "$c"
	kill_server
	start_server srv3
	expect_handshakes 0 1
	ping_through

	# SIGHUP: a file open to others is refused whole, the keys in force stay.
	chmod 644 "$TL_KEYS"
	kill -HUP "$TL_SRV_PID"
	tl_wait_until 5 grep -qF "lets others read or change the keys; chmod 600 it; the previous ticket keys stay in force" "$TL_SRV_LOG" ||
		tl_fail "expected the server to refuse a key file open to others; its log: $(tail -n 5 "$TL_SRV_LOG")"
	chmod 600 "$TL_KEYS"
	kill -HUP "$TL_SRV_PID"
	tl_wait_until 5 grep -qF "SIGHUP: --ticket-keys $TL_KEYS reloaded" "$TL_SRV_LOG" ||
		tl_fail "expected the server to reread the key file on SIGHUP"
	tl_assert "the server to run on" tl_pid_alive "$TL_SRV_PID"
}

@test "--ticket-keys: a key file readable by others or malformed is refused at start" {
	write_keys "$(new_key)"
	chmod 640 "$TL_KEYS"
	tl_pki
	tl_write_peers
	run ip netns exec "$NS_SRV" "$TUNLAB" server --frontend "$FRONTEND" --listen "$TL_SRV_UL4:$TL_PORT" \
		--cert "$TL_PKI/server.crt" --key "$TL_PKI/server.key" --ca "$TL_PKI/ca.crt" \
		--peers "$TL_PEERS" --export "$TL_IN_NET4" --ticket-keys "$TL_KEYS"
	((status != 0)) || tl_fail "expected a server with a group-readable key file to exit non-zero"
	tl_expect_contains "the error" "$output" "mode 640 lets others read or change the keys"
	rm -f "$TL_KEYS"
	(umask 077 && echo "0123abcd" >"$TL_KEYS")
	run ip netns exec "$NS_SRV" "$TUNLAB" server --frontend "$FRONTEND" --listen "$TL_SRV_UL4:$TL_PORT" \
		--cert "$TL_PKI/server.crt" --key "$TL_PKI/server.key" --ca "$TL_PKI/ca.crt" \
		--peers "$TL_PEERS" --export "$TL_IN_NET4" --ticket-keys "$TL_KEYS"
	((status != 0)) || tl_fail "expected a server with a malformed key file to exit non-zero"
	tl_expect_contains "the error" "$output" ":1: not a key of 160 hex digits"
	[[ $output != *0123abcd* ]] || tl_fail "expected the error not to quote the file's contents"
}

@test "a peer removed from the peers file cannot resume: its resumed handshake is refused by name" {
	tl_require_tools openssl
	write_keys "$(new_key)"
	start_server srv1
	tl_start_tunlab_client "$FRONTEND" --keepalive 1
	expect_handshakes 1 0
	echo "cli2 $TL_TUN_CLI2_4/32" >"$TL_PEERS.new"
	mv "$TL_PEERS.new" "$TL_PEERS"
	kill -HUP "$TL_SRV_PID"
	tl_wait_until 5 grep -qF ": removed from the peers file, cut off" "$TL_SRV_LOG" ||
		tl_fail "expected the reload to cut cli"
	# The client comes back at once with its ticket: TLS resumes, the name check refuses.
	tl_wait_stat_ge "$TL_SRV_STATS" handshakes_resumed 1
	tl_wait_until "$TL_TIMEOUT" grep -qF "client 'cli' from" "$TL_SRV_LOG" || true
	tl_wait_until "$TL_TIMEOUT" grep -qF "unknown peer 'cli'" "$TL_SRV_LOG" ||
		tl_fail "expected the resumed handshake of the removed peer to be refused as unknown"
	tl_assert "no session for the removed peer" tl_json_test "$TL_SRV_STATS" '.sessions_active == 0'
	tl_assert_not "no answer from dst" tl_ping_dst 1
}

@test "a revoked peer cannot resume: the ticket is ignored and the full handshake refuses the certificate" {
	TL_PKI=$TL_TMP/pki-crl
	"$TL_MKPKI" "$TL_PKI" cli cli2 --crl >/dev/null
	cp "$TL_PKI/crl.pem" "$TL_TMP/crl.pem"
	write_keys "$(new_key)"
	start_server srv1 --crl "$TL_TMP/crl.pem"
	tl_start_tunlab_client "$FRONTEND" --keepalive 1
	expect_handshakes 1 0
	"$TL_MKPKI" "$TL_PKI" --revoke cli >/dev/null
	cp "$TL_PKI/crl.pem" "$TL_TMP/crl.pem"
	kill_server
	start_server srv2 --crl "$TL_TMP/crl.pem"
	tl_wait_until "$TL_TIMEOUT" grep -qF "refused: certificate verify failed: certificate revoked" "$TL_SRV_LOG" ||
		tl_fail "expected the revoked client refused at a full handshake; log: $(tail -n 5 "$TL_SRV_LOG")"
	tl_wait_stat_ge "$TL_SRV_STATS" handshake_failures 1
	tl_assert "no resumed handshake for a revoked certificate" \
		tl_json_test "$TL_SRV_STATS" '.handshakes_resumed == 0 and .sessions_active == 0'
}

# ---- two server namespaces: srv, and srv2 beside it -----------------------------------

# A second server namespace, srv2, with its own underlay to cli (ul1,
# 10.103.0.0/24) and its own link to dst (in1, 10.104.0.0/24), forwarding,
# and cleartext blocked like srv's. dst still answers from 10.102.0.2.
TL_SRV2_UL4=10.103.0.1 TL_CLI_UL1_4=10.103.0.2
TL_SRV2_IN4=10.104.0.1 TL_DST_IN1_4=10.104.0.2

srv2_up() {
	NS_SRV2="$TL_NS_PREFIX-srv2-$TL_ID"
	TL_EXTRA_NS+=("$NS_SRV2")
	tl_cmd ip netns add "$NS_SRV2"
	tl_cmd ip -n "$NS_SRV2" link set lo up
	tl_cmd ip -n "$NS_CLI" link add ul1 type veth peer name ul1 netns "$NS_SRV2"
	tl_cmd ip -n "$NS_SRV2" link add in1 type veth peer name in1 netns "$NS_DST"
	local ns dev addr
	while read -r ns dev addr; do
		tl_cmd ip -n "$ns" addr add "$addr" dev "$dev"
		tl_cmd ip -n "$ns" link set "$dev" up
	done <<-EOF2
		$NS_CLI ul1 $TL_CLI_UL1_4/24
		$NS_SRV2 ul1 $TL_SRV2_UL4/24
		$NS_SRV2 in1 $TL_SRV2_IN4/24
		$NS_DST in1 $TL_DST_IN1_4/24
	EOF2
	tl_cmd ip -n "$NS_SRV2" route add "$TL_IN_NET4" via "$TL_DST_IN1_4"
	tl_cmd ip netns exec "$NS_SRV2" sysctl -qw net.ipv4.ip_forward=1 >/dev/null
	tl_cmd ip netns exec "$NS_SRV2" iptables -w 5 -I FORWARD -i ul1 -j DROP
	tl_cmd ip netns exec "$NS_SRV2" iptables -w 5 -I FORWARD -o ul1 -j DROP
}

# start_srv2 NAME: a tunlab server in srv2 with the same files as srv's (PID in SRV2_PID).
start_srv2() {
	local saved_ns=$NS_SRV saved_ul=$TL_SRV_UL4 saved_pid=${TL_SRV_PID:-}
	NS_SRV=$NS_SRV2 TL_SRV_UL4=$TL_SRV2_UL4
	use_server_files "$1"
	local rc=0
	tl_start_tunlab_server "$FRONTEND" --ticket-keys "$TL_KEYS" --keepalive 1 || rc=$?
	SRV2_PID=$TL_SRV_PID SRV2_STATS=$TL_SRV_STATS SRV2_LOG=$TL_SRV_LOG
	NS_SRV=$saved_ns TL_SRV_UL4=$saved_ul TL_SRV_PID=$saved_pid
	return "$rc"
}

@test "several --connect: the client moves to the second server when the first is killed, and resumes there" {
	write_keys "$(new_key)"
	srv2_up
	start_srv2 srv2
	start_server srv1
	tl_start_tunlab_client "$FRONTEND" --keepalive 1 --connect "$TL_SRV2_UL4:$TL_PORT"
	ping_through
	expect_handshakes 1 0
	tl_bg "$NS_CLI" "$TL_TMP/ping.log" ping -n -c 100 -i 0.05 -W 1 "$TL_DST_IN4" >/dev/null
	local pinger=$TL_LAST_PID
	sleep 0.5
	kill_server
	# What keepalived would move on the inner side: dst's way back to the tunnel.
	tl_cmd ip -n "$NS_DST" route add "$TL_TUN_NET4" via "$TL_SRV2_IN4"
	TL_SRV_PID=$SRV2_PID TL_SRV_STATS=$SRV2_STATS TL_SRV_LOG=$SRV2_LOG
	expect_handshakes 0 1
	# A reset (data in flight) or a FIN (idle), the kernel's answer for a killed process.
	tl_wait_until 5 grep -qE "to $TL_SRV_UL4:$TL_PORT lost: (Connection reset by peer|peer closed without close_notify); trying $TL_SRV2_UL4:$TL_PORT now" "$TL_CLI_LOG" ||
		tl_fail "expected the client to move to the second endpoint at once; its log: $(tail -n 5 "$TL_CLI_LOG")"
	tl_wait_stat_ge "$TL_CLI_STATS" reconnects 1
	ping_through
	tl_wait_exit "$pinger" 15 || true
	local received
	received=$(grep -oE '[0-9]+ received' "$TL_TMP/ping.log" | cut -d' ' -f1)
	note "pings answered across the failover: ${received:-0} of 100"
	tl_expect_ge "echo replies of 100 across the failover" "${received:-0}" 50
	# Nothing of either server is left once it stops.
	tl_stop "$SRV2_PID" TERM 10
	TL_SRV_PID=""
	((TL_STOP_STATUS == 0)) || tl_fail "expected the second server to exit 0 on SIGTERM"
	[[ -z $(tl_leftovers "$NS_SRV2") ]] || tl_fail "expected nothing left in srv2: $(tl_leftovers "$NS_SRV2")"
	[[ -z $(tl_leftovers "$NS_SRV") ]] || tl_fail "expected nothing of the killed server left in srv"
}

# ---- a floating service address: keepalived moves it (netns.sh's failover topology) ----
#
# cli, srv, srv2 and dst on bridges in a namespace of their own; keepalived
# in srv and srv2 moves 10.101.0.1 (what the client connects to) and dst's
# gateway 10.102.0.1 together. Both servers bind the service address and
# share the peers file and --ticket-keys.

# fo_up [nowatch]: the pair and a client; unless nowatch, srv's health follows its process.
fo_up() {
	tl_require_tools keepalived
	tl_topology_down
	tl_failover_topology_up
	tl_block_cleartext
	tl_on_srv2 tl_block_cleartext
	tl_keepalived_pair
	write_keys "$(new_key)"
	fo_start_server srv2
	fo_start_server srv1
	[[ ${1:-} == nowatch ]] || tl_keepalived_watch srv1 "$SRV1_PID"
	tl_start_tunlab_client "$FRONTEND" --keepalive 1
	ping_through
	expect_handshakes 1 0
}

# fo_start_server NAME: the tunlab server of the pair in NAME's namespace
# (srv1: srv, srv2: srv2), with the other as --standby; SRVn_PID,
# SRVn_STATS, SRVn_LOG name it. A restart gets files of its own.
fo_start_server() {
	local -a flags
	local n=${1#srv} files=$1 ns=$NS_SRV
	[[ $1 == srv1 ]] || ns=$NS_SRV2
	if [[ -e $TL_TMP/$1-stats.jsonl ]]; then
		FO_RESTARTS=$((${FO_RESTARTS:-0} + 1))
		files=$1-$FO_RESTARTS
	fi
	mapfile -t flags < <(tl_fo_server_flags "$1")
	NS_SRV=$ns start_server "$files" "${flags[@]}"
	printf -v "SRV${n}_PID" %s "$TL_SRV_PID"
	printf -v "SRV${n}_STATS" %s "$TL_SRV_STATS"
	printf -v "SRV${n}_LOG" %s "$TL_SRV_LOG"
}

# The servers' namespaces' inodes: what their files in /run/tunlab are named by.
fo_ns_inodes() {
	stat -L -c %i "/run/netns/$NS_SRV" "/run/netns/$NS_SRV2"
}

# Replies in a ping log so far.
fo_replies_ge() {
	(($(grep -c 'bytes from' "$1" 2>/dev/null || echo 0) >= $2))
}

@test "keepalived moves the service address when the active server is kill -9-ed; the client follows it and resumes on srv2; teardown leaves nothing of either server" {
	fo_up
	local -a inodes ka_pids
	mapfile -t inodes < <(fo_ns_inodes)
	ka_pids=("$(cat "$TL_TMP/ka-srv1/pid")" "$(cat "$TL_TMP/ka-srv2/pid")")
	{ kill -KILL "$SRV1_PID"; wait "$SRV1_PID"; } 2>/dev/null || true
	tl_wait_until 5 tl_vip_on "$NS_SRV2" || tl_fail "expected srv2 to take the service address; $(tail -n 3 "$TL_TMP/ka-srv2/keepalived.log")"
	tl_assert_not "srv to have given the address up" tl_vip_on "$NS_SRV"
	TL_SRV_PID=$SRV2_PID
	use_server_files srv2
	expect_handshakes 0 1
	tl_wait_stat_ge "$TL_CLI_STATS" handshakes_resumed 1
	ping_through
	# Nothing of the topology, VRRP included, has an interface in the root namespace.
	! ip -o link show | grep -qE '\b(p-cli|p-s[12][ui]|p-dst|br-ul|br-in)\b' ||
		tl_fail "expected no link of the failover topology in the root namespace"

	# The harness's own teardown (a Ctrl-C's), with everything still running.
	local srv2_pid=$SRV2_PID pid inode tmp=$TL_TMP
	local -a errors=()
	TL_KEEP=1 tl_cleanup 2>/dev/null
	TL_TMP=$tmp tl_teardown_san_check errors
	rm -rf -- "$tmp"
	((${#errors[@]} == 0)) || tl_fail "${errors[*]}"
	for pid in "${ka_pids[@]}" "$srv2_pid" "$TL_CLI_PID"; do
		! tl_pid_alive "$pid" || tl_fail "expected process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) gone after teardown"
	done
	for ns in "$NS_CLI" "$NS_SRV" "$NS_SRV2" "$NS_DST" "$NS_LAN"; do
		! tl_ns_exists "$ns" || tl_fail "expected namespace $ns deleted"
	done
	for inode in "${inodes[@]}"; do
		! compgen -G "/run/tunlab/$inode-*" >/dev/null ||
			tl_fail "expected no lock or control socket of a server left: $(ls /run/tunlab/"$inode"-*)"
	done
}

# fo_switchover FROM TO HOW: one planned switchover from server FROM to TO
# (srv1, srv2) under a 100/s ping of its own, HOW "ctl" or "signal";
# afterwards FROM is stopped, leaves nothing behind, and is started again
# as the standby. The echoes lost are in FO_LOST.
fo_switchover() {
	local from=$1 to=$2 how=$3 nf=${1#srv} nt=${2#srv} pinger sent received
	local from_pid_var=SRV${nf}_PID from_stats_var=SRV${nf}_STATS from_log_var=SRV${nf}_LOG
	local to_stats_var=SRV${nt}_STATS from_ns=$NS_SRV resumed_before t0 took
	[[ $from == srv1 ]] || from_ns=$NS_SRV2
	local from_pid=${!from_pid_var} from_stats=${!from_stats_var} from_log=${!from_log_var}
	resumed_before=$(tl_json_last "$TL_CLI_STATS" | jq .handshakes_resumed)
	# 2.5 s of echoes: the switchover (about 1 s: the old session closes 0.5-1 s after the move) inside them.
	tl_bg "$NS_CLI" "$TL_TMP/ping-$from.log" ping -n -i 0.01 -c 250 -W 1 "$TL_DST_IN4" >/dev/null
	pinger=$TL_LAST_PID
	tl_wait_until 5 fo_replies_ge "$TL_TMP/ping-$from.log" 30 || tl_fail "expected the ping to run through the tunnel"
	t0=$(tl_now_ms)
	TL_FO_ACTIVE=$from tl_handover "$from_pid" "$from_stats" "$([[ $how == ctl ]] && echo ctl)"
	took=$(($(tl_now_ms) - t0))
	if [[ $how == ctl ]]; then
		[[ $TL_HANDOVER_REPLY == "ok: listener closed, 1 client(s) told to move" ]] ||
			tl_fail "expected the handover to tell one client, got: $TL_HANDOVER_REPLY"
	fi
	grep -qF "told to move to the standby" "$from_log" ||
		tl_fail "expected $from's server to send its client MOVE: $(tail -n 3 "$from_log")"
	grep -qF "moved to the standby; its session here carries what still comes back" "$from_log" ||
		tl_fail "expected the client to say MOVED to $from: $(tail -n 3 "$from_log")"
	tl_wait_until 5 tl_vip_on "$([[ $to == srv1 ]] && echo "$NS_SRV" || echo "$NS_SRV2")" ||
		tl_fail "expected $to to take both addresses"
	tl_wait_stat_ge "${!to_stats_var}" handshakes_resumed 1
	tl_assert "$to's server: the client came back with a resumed handshake only" \
		tl_json_test "${!to_stats_var}" '.handshakes_full == 0 and .handshakes_resumed == 1 and .sessions_active == 1'
	tl_wait_stat_ge "$TL_CLI_STATS" handshakes_resumed $((resumed_before + 1))
	tl_wait_exit "$pinger" 15 || true
	sent=$(awk '/packets transmitted/ { print $1 }' "$TL_TMP/ping-$from.log")
	received=$(awk '/packets transmitted/ { print $4 }' "$TL_TMP/ping-$from.log")
	[[ -n $sent && -n $received ]] || tl_fail "expected ping's summary: $(tail -n 2 "$TL_TMP/ping-$from.log")"
	FO_LOST=$((sent - received))
	note "planned switchover $from -> $to ($how, both addresses moved after $took ms): $received of $sent echoes answered"
	# The client closed its old session once nothing came back on it; the old server stops clean.
	tl_wait_until 5 tl_json_test "$from_stats" '.sessions_active == 0' ||
		tl_fail "expected the client to have left $from's server"
	tl_stop "$from_pid" TERM 10
	((TL_STOP_STATUS == 0)) || tl_fail "expected $from's server to exit 0 on SIGTERM after the handover"
	[[ -z $(tl_leftovers "$from_ns") ]] || tl_fail "expected nothing left in $from: $(tl_leftovers "$from_ns")"
	tl_keepalived_up "$from"
	fo_start_server "$from"
}

@test "planned switchovers, make before break: three under a 100/s ping lose no echo, and each new session on the standby is resumed" {
	fo_up nowatch
	local i from=srv1 to=srv2 how swap
	for i in 1 2 3; do
		how=ctl
		((i != 2)) || how=signal
		fo_switchover "$from" "$to" "$how"
		((FO_LOST == 0)) || tl_fail "expected no echo lost in switchover $i ($from -> $to): $FO_LOST lost"
		swap=$from from=$to to=$swap
	done
	tl_assert "the client: one full handshake, then one resumed per switchover" \
		tl_json_test "$TL_CLI_STATS" '.handshakes_full == 1 and .handshakes_resumed == 3 and .moves == 3'
	! grep -qF "closed by peer" "$TL_CLI_LOG" ||
		tl_fail "expected no session of the client to be closed under it: $(grep -F "closed by peer" "$TL_CLI_LOG")"
	# A handover with no client left tells nobody.
	run ip netns exec "$NS_SRV" "$TUNLAB" handover --pid "$SRV1_PID"
	((status == 0)) && [[ $output == "ok: listener closed, 0 client(s) told to move" ]] ||
		tl_fail "expected a handover of the idle standby to answer with 0 clients, got $status: $output"
}

# The measurement harness: tests/run leaves it out of the sanitizer pass.
# bats test_tags=normal-only
@test "experiments/failover --quick: tun and proxy, kill -9 and a planned switchover; tun's inner TCP survives with a resumed handshake, the proxy's streams do not; nothing left" {
	tl_require_tools keepalived socat python3
	local results=$TL_TMP/results prefix="tlfo$$-${BATS_TEST_NUMBER}" tmp=$TL_TMP/exp-tmp
	mkdir -p "$results/plots" "$tmp"
	local -a before
	mapfile -t before < <(ls /run/tunlab 2>/dev/null)
	run env TL_NS_PREFIX="$prefix" TMPDIR="$tmp" timeout 240 "$TL_REPO/experiments/failover" \
		--tunlab "$TUNLAB" --quick --systems tun,proxy --results "$results"
	echo "$output" | tail -n 20
	((status == 0)) || tl_fail "expected experiments/failover --quick to exit 0, got $status"
	local csv=$results/failover.csv
	[[ $(head -n 1 "$csv") == "system,parameter,metric,value,unit,repetition" ]] || tl_fail "expected the tidy header"
	local row
	for row in "tun,kill9,inner_tcp_survived,1" "tun,kill9,resumed,1" "tun,switchover,inner_tcp_survived,1" \
		"tun,switchover,resumed,1" "tun,switchover,lost_pings," "tun,kill9,outage_ms," \
		"tun,kill9,bytes_delivered,4000000" "proxy,kill9,inner_tcp_survived,0" "proxy,kill9,bytes_delivered,"; do
		grep -q "^$row" "$csv" || tl_fail "expected a row $row... in failover.csv:"$'\n'"$(cat "$csv")"
	done
	! grep -q '^failed\.' "$results/failover.meta" || tl_fail "expected no failed test: $(grep '^failed\.' "$results/failover.meta")"
	# Nothing of it is left: namespaces, processes (keepalived, tunlab, watchers), /run/tunlab files.
	local left pid
	left=$(ip netns list | awk -v p="$prefix-" 'index($1, p) == 1 { print $1 }')
	[[ -z $left ]] || tl_fail "expected the experiment's namespaces deleted, left: $left"
	for pid in /proc/[0-9]*; do
		grep -qF "$tmp" "$pid/cmdline" 2>/dev/null &&
			tl_fail "expected no process of the experiment left: $(tr '\0' ' ' <"$pid/cmdline")"
	done
	local f
	for f in $(ls /run/tunlab 2>/dev/null); do
		[[ " ${before[*]} " == *" $f "* ]] && continue
		pid=${f#*-} pid=${pid%%.*}
		tl_pid_alive "$pid" || tl_fail "expected no file of a stopped tunlab left in /run/tunlab: $f"
	done
}
