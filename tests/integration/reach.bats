#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# reach.bats: what a peer may reach (issue 13, findings 1, 2 and 9): --export at the server, --route at the client, for every frontend.
#
# A hostile peer (tests/tools/tl_peer, linked against the tunnel library)
# connects with a valid certificate and sends crafted inner packets, stream
# opens and datagrams. Listeners on srv's loopback (and on every address of
# srv) must see nothing of what the policy refuses; dst must see what it
# allows; the server's stats count each refusal by reason. For finding 9,
# tl_peer is the server and a real nfqueue or pcap client must refuse its
# packets from outside the routes and to its own loopback.
#
#   TUNLAB=build/tunlab bats tests/integration/reach.bats

load helpers

TL_PEER=${TL_PEER:-$(dirname "$TUNLAB")/tools/tl_peer}
PORT=5555          # the UDP port every crafted packet goes to
TCP_PORT=5556      # a TCP service on srv's loopback and its own addresses

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	[[ -x $TL_PEER ]] || tl_fail "expected the hostile peer tool at $TL_PEER (run make)"
	if [[ $BATS_TEST_DESCRIPTION == cli:* ]]; then
		tl_test_setup --no-topology
		return
	fi
	tl_require_tools jq socat
	tl_test_setup
	tl_block_cleartext
}

teardown() {
	tl_test_teardown
}

require_frontend() {
	local why
	why=$(tl_probe_frontend "$1")
	[[ -z $why ]] || tl_skip_env "frontend $1: $why"
}

# udp_listen NS NAME ADDRESS: a UDP listener on ADDRESS (or "any4"/"any6")
# port $PORT, every datagram it gets appended to $TL_TMP/NAME.got.
udp_listen() {
	local ns=$1 name=$2 addr=$3 spec
	case $addr in
	any4) spec="UDP4-RECV:$PORT,reuseaddr" ;;
	any6) spec="UDP6-RECV:$PORT,reuseaddr,ipv6only=1" ;;
	*:*) spec="UDP6-RECV:$PORT,reuseaddr,bind=[$addr]" ;;
	*) spec="UDP4-RECV:$PORT,reuseaddr,bind=$addr" ;;
	esac
	: >"$TL_TMP/$name.got"
	tl_bg "$ns" "$TL_TMP/$name.log" socat -u "$spec" "OPEN:$TL_TMP/$name.got,append" >/dev/null
}

# got NAME: how many datagrams of tl_peer's the listener NAME received.
got() {
	grep -o tl_peer "$TL_TMP/$1.got" | wc -l
}

expect_got() {
	local name=$1 want=$2 n
	n=$(got "$name")
	((n == want)) || tl_fail "expected $want datagram(s) at listener $name, got $n"
}

# peer_client ACTION...: tl_peer as cli (certificate cli, prefixes
# 10.8.0.2/32 and fd08::2/128) from cli's namespace; output in $output.
peer_client() {
	run n_cli timeout 30 "$TL_PEER" client --connect "$TL_SRV_UL4:$TL_PORT" --server-name server \
		--cert "$TL_PKI/cli.crt" --key "$TL_PKI/cli.key" --ca "$TL_PKI/ca.crt" "$@"
	[[ $status == 0 ]] || tl_fail "expected tl_peer client to run every action, status $status: $output"
}

# expect_stat FILE KEY VALUE: the server's last stats line says exactly VALUE.
expect_stat() {
	local v
	v=$(tl_json_get "$1" "$2")
	tl_expect_eq "$2 in $(basename "$1")" "$v" "$3"
}

start_server() {
	tl_start_tunlab_server "$@" --address "$TL_TUN_SRV6/$TL_TUN_PLEN6"
}

# Listeners on srv: loopback (both families), and any address, both families.
srv_listeners() {
	udp_listen "$NS_SRV" srv-lo4 127.0.0.1
	udp_listen "$NS_SRV" srv-lo6 ::1
	udp_listen "$NS_SRV" srv-any4 any4
	udp_listen "$NS_SRV" srv-any6 any6
	udp_listen "$NS_DST" dst4 "$TL_DST_IN4"
	udp_listen "$NS_DST" dst6 "$TL_DST_IN6"
	tl_wait_until "$TL_TIMEOUT" eval "[[ \$(ip netns exec $NS_SRV ss -Hlun 'sport = :$PORT' | wc -l) -ge 4 ]]" ||
		tl_fail "expected four UDP listeners on port $PORT in srv"
	tl_wait_listen "$NS_DST" udp "$PORT"
}

# The packet half of findings 2: one frontend on the server, FRONTEND_ARGS its flags.
packets_refused() {
	local fe=$1
	shift
	require_frontend "$fe"
	start_server "$fe" "$@"
	srv_listeners
	local c4=$TL_TUN_CLI4 c6=$TL_TUN_CLI6
	peer_client \
		udp "$c4" 127.0.0.1 "$PORT" \
		udp "$c6" ::1 "$PORT" \
		udp "$c6" ::ffff:127.0.0.1 "$PORT" \
		udp "$c4" 0.0.0.0 "$PORT" \
		udp "$c4" 224.0.0.1 "$PORT" \
		udp "$c6" ff02::1 "$PORT" \
		udp "$c6" fe80::1 "$PORT" \
		udp "$c4" 169.254.169.254 "$PORT" \
		udp "$c4" 255.255.255.255 "$PORT" \
		udp "$c4" 10.102.0.255 "$PORT" \
		udp "$c4" "$TL_SRV_UL4" "$PORT" \
		udp "$c6" "$TL_SRV_UL6" "$PORT" \
		udp "$c4" "$TL_SRV_IN4" "$PORT" \
		udp "$c4" "$TL_TUN_SRV4" "$PORT" \
		udp "$c4" "$TL_TUN_CLI2_4" "$PORT" \
		udp "$c4" 10.103.0.1 "$PORT" \
		wait 300 \
		udp "$c4" "$TL_DST_IN4" "$PORT" \
		udp "$c6" "$TL_DST_IN6" "$PORT"
	tl_wait_until "$TL_TIMEOUT" eval '(( $(got dst4) >= 1 && $(got dst6) >= 1 ))' ||
		tl_fail "expected the packets to exported destinations at dst (v4: $(got dst4), v6: $(got dst6))"
	# The packets to dst came last: whatever srv was going to get, it has.
	expect_got srv-lo4 0
	expect_got srv-lo6 0
	expect_got srv-any4 0
	expect_got srv-any6 0
	expect_got dst4 1
	expect_got dst6 1
	tl_wait_stat_ge "$TL_SRV_STATS" drop_dst_not_exported 1
	local key want
	for key in loopback=3 unspecified=1 multicast=2 link_local=2 broadcast=2 local=4 peer=1 not_exported=1; do
		want=${key#*=}
		expect_stat "$TL_SRV_STATS" "drop_dst_${key%=*}" "$want"
	done
	expect_stat "$TL_SRV_STATS" drop_spoofed_source 0
	expect_stat "$TL_SRV_STATS" fe_inject_denied 0 # the tunnel refused them first
}

@test "cli: a server without --export refuses to start, says why, exit 2" {
	run "$TUNLAB" server --frontend tun --listen 127.0.0.1:4433 --cert c --key k --ca a --peers p
	tl_expect_eq "exit status" "$status" 2
	tl_expect_contains "the one line" "$output" "--export: missing: a server must say what its peers may reach"
	[[ $(wc -l <<<"$output") == 1 ]] || tl_fail "expected one line, got: $output"
}

@test "tun server: peer packets to loopback, multicast, link-local, broadcast, srv itself, another peer are dropped" {
	packets_refused tun
}

@test "nfqueue server: peer packets to loopback, multicast, link-local, broadcast, srv itself, another peer are dropped" {
	packets_refused nfqueue
}

@test "pcap server: peer packets to loopback, multicast, link-local, broadcast, srv itself, another peer are dropped" {
	packets_refused pcap
}

@test "pcap --inject pcap server: peer packets to loopback, multicast, link-local, broadcast, srv itself, another peer are dropped" {
	packets_refused pcap --inject pcap
}

@test "--peer-to-peer: a peer reaches another peer's prefix, never its own or srv's loopback" {
	require_frontend tun
	start_server tun --peer-to-peer
	srv_listeners
	tl_bg "$NS_CLI" "$TL_TMP/cli2.log" timeout 30 "$TL_PEER" client --connect "$TL_SRV_UL4:$TL_PORT" \
		--server-name server --cert "$TL_PKI/cli2.crt" --key "$TL_PKI/cli2.key" --ca "$TL_PKI/ca.crt" \
		wait 8000 >/dev/null
	tl_wait_stat_ge "$TL_SRV_STATS" sessions_active 1
	peer_client udp "$TL_TUN_CLI4" "$TL_TUN_CLI2_4" "$PORT" udp "$TL_TUN_CLI4" "$TL_TUN_CLI4" "$PORT" \
		udp "$TL_TUN_CLI4" 127.0.0.1 "$PORT"
	tl_wait_until "$TL_TIMEOUT" grep -q "received $TL_TUN_CLI4 > $TL_TUN_CLI2_4" "$TL_TMP/cli2.log" ||
		tl_fail "expected cli2 to receive cli's packet with --peer-to-peer: $(cat "$TL_TMP/cli2.log")"
	tl_wait_stat_ge "$TL_SRV_STATS" drop_dst_loopback 1
	expect_stat "$TL_SRV_STATS" drop_dst_peer 1
	expect_got srv-lo4 0
}

# The policy names peers by their entries in the peers file: a SIGHUP that
# swaps the file must swap the policy with it, or a new peer's prefix stays
# "not exported" and a removed one's stays a peer's.
@test "--peer-to-peer after SIGHUP: a peer the reload adds is a peer, one it removes is not" {
	require_frontend tun
	echo "cli  $TL_TUN_CLI4/32,$TL_TUN_CLI6/128" >"$TL_PEERS"
	start_server tun --peer-to-peer
	local c4=$TL_TUN_CLI4 to=$TL_TUN_CLI2_4
	peer_client udp "$c4" "$to" "$PORT" wait 200
	tl_wait_stat_ge "$TL_SRV_STATS" drop_dst_not_exported 1

	printf 'cli  %s/32,%s/128\ncli2 %s/32,%s/128\n' "$c4" "$TL_TUN_CLI6" "$to" "$TL_TUN_CLI2_6" >"$TL_PEERS"
	kill -HUP "$TL_SRV_PID"
	tl_wait_until 5 grep -qF "SIGHUP: $TL_PEERS reloaded: 2 peers" "$TL_SRV_LOG" ||
		tl_fail "expected the server to reload 2 peers: $(tail -n 5 "$TL_SRV_LOG")"
	# cli2 is listed but away: the packet is routed to its slot and counted there.
	peer_client udp "$c4" "$to" "$PORT" wait 200
	tl_wait_stat_ge "$TL_SRV_STATS" drop_peer_down 1

	echo "cli  $c4/32,$TL_TUN_CLI6/128" >"$TL_PEERS"
	kill -HUP "$TL_SRV_PID"
	tl_wait_until 5 grep -qF "SIGHUP: $TL_PEERS reloaded: 1 peers" "$TL_SRV_LOG" ||
		tl_fail "expected the server to reload 1 peer: $(tail -n 5 "$TL_SRV_LOG")"
	peer_client udp "$c4" "$to" "$PORT" wait 200
	tl_wait_stat_ge "$TL_SRV_STATS" drop_dst_not_exported 2
	expect_stat "$TL_SRV_STATS" drop_dst_not_exported 2
	expect_stat "$TL_SRV_STATS" drop_peer_down 1
	expect_stat "$TL_SRV_STATS" drop_dst_peer 0
}

# ---- the proxy exit (finding 1) -------------------------------------------------------

# A TCP service that answers "secret" on ADDR:$TCP_PORT in NS.
tcp_secret() {
	local ns=$1 addr=$2 spec="TCP4-LISTEN:$TCP_PORT,reuseaddr,fork,bind=$2"
	[[ $addr != *:* ]] || spec="TCP6-LISTEN:$TCP_PORT,reuseaddr,fork,bind=[$addr]"
	tl_bg "$ns" "$TL_TMP/secret-$addr.log" socat "$spec" SYSTEM:'echo secret' >/dev/null
}

@test "proxy exit: STREAM_OPEN to loopback, 0.0.0.0, ::ffff:127.0.0.1, 169.254.169.254 and srv itself is refused; dst works" {
	require_frontend nfqueue
	start_server proxy
	local a
	for a in 127.0.0.1 ::1 "$TL_SRV_UL4" "$TL_SRV_IN4"; do
		tcp_secret "$NS_SRV" "$a"
	done
	tcp_secret "$NS_DST" "$TL_DST_IN4"
	tl_wait_until "$TL_TIMEOUT" eval "[[ \$(ip netns exec $NS_SRV ss -Hltn 'sport = :$TCP_PORT' | wc -l) -ge 4 ]]" ||
		tl_fail "expected four TCP services in srv"
	tl_wait_listen "$NS_DST" tcp "$TCP_PORT"
	udp_listen "$NS_SRV" srv-lo4 127.0.0.1
	udp_listen "$NS_DST" dst4 "$TL_DST_IN4"
	tl_wait_listen "$NS_DST" udp "$PORT"
	peer_client open 127.0.0.1 "$TCP_PORT" open 0.0.0.0 "$TCP_PORT" open ::1 "$TCP_PORT" \
		open ::ffff:127.0.0.1 "$TCP_PORT" open 169.254.169.254 80 open "$TL_SRV_UL4" "$TCP_PORT" \
		open "$TL_SRV_IN4" "$TCP_PORT" open "$TL_DST_IN4" "$TCP_PORT" \
		dgram 127.0.0.1 "$PORT" dgram "$TL_DST_IN4" "$PORT" wait 500
	local prohibited=6 # STREAM_RESET_PROHIBITED
	local want
	want=$(printf "open: reset $prohibited\n%.0s" 1 2 3 4 5 6 7; echo "open: connected")
	tl_expect_eq "the exit's answers, in order" "$(grep '^open:' <<<"$output")" "$want"
	tl_wait_until "$TL_TIMEOUT" eval '(( $(got dst4) >= 1 ))' ||
		tl_fail "expected the datagram to dst to arrive"
	tl_wait_stat_ge "$TL_SRV_STATS" drop_dst_loopback 4
	expect_stat "$TL_SRV_STATS" drop_dst_loopback 4
	expect_stat "$TL_SRV_STATS" drop_dst_unspecified 1
	expect_stat "$TL_SRV_STATS" drop_dst_link_local 1
	expect_stat "$TL_SRV_STATS" drop_dst_local 2
	expect_got srv-lo4 0
	local log
	for a in 127.0.0.1 ::1 "$TL_SRV_UL4" "$TL_SRV_IN4"; do
		log=$TL_TMP/secret-$a.log
		[[ ! -s $log ]] || tl_fail "expected no connection to srv's $a: $(cat "$log")"
	done
}

# --export ::/0 covers ::ffff:0:0/96, and a dual-stack socket connected to
# ::ffff:a.b.c.d reaches a.b.c.d: the IPv4 policy must decide those forms.
@test "proxy exit with --export ::/0: STREAM_OPEN to ::ffff:srv and ::ffff:<not exported IPv4> is refused" {
	require_frontend nfqueue
	start_server proxy --export ::/0
	tcp_secret "$NS_SRV" "$TL_SRV_UL4"
	tcp_secret "$NS_CLI" "$TL_CLI_UL4" # reachable from srv, not exported (10.101.0.0/24)
	tcp_secret "$NS_DST" "$TL_DST_IN4"
	tl_wait_listen "$NS_SRV" tcp "$TCP_PORT"
	tl_wait_listen "$NS_CLI" tcp "$TCP_PORT"
	tl_wait_listen "$NS_DST" tcp "$TCP_PORT"
	peer_client open "::ffff:$TL_SRV_UL4" "$TCP_PORT" open "::ffff:$TL_CLI_UL4" "$TCP_PORT" \
		open "$TL_DST_IN4" "$TCP_PORT" wait 300
	local prohibited=6 # STREAM_RESET_PROHIBITED
	tl_expect_eq "the exit's answers, in order" "$(grep '^open:' <<<"$output")" \
		"$(printf 'open: reset %s\nopen: reset %s\nopen: connected' $prohibited $prohibited)"
	tl_wait_stat_ge "$TL_SRV_STATS" drop_dst_local 1
	expect_stat "$TL_SRV_STATS" drop_dst_local 1
	expect_stat "$TL_SRV_STATS" drop_dst_not_exported 1
	local a log
	for a in "$TL_SRV_UL4" "$TL_CLI_UL4"; do
		log=$TL_TMP/secret-$a.log
		[[ ! -s $log ]] || tl_fail "expected no connection to $a through its mapped form: $(cat "$log")"
	done
}

@test "proxy client: an application's connection to a forbidden destination fails with EHOSTUNREACH" {
	require_frontend nfqueue
	start_server proxy
	tl_start_tunlab_client proxy --route 169.254.169.254/32
	tcp_secret "$NS_SRV" "$TL_SRV_IN4"
	tcp_secret "$NS_DST" "$TL_DST_IN4"
	tl_wait_listen "$NS_DST" tcp "$TCP_PORT"
	tl_wait_listen "$NS_SRV" tcp "$TCP_PORT"
	run n_cli timeout 15 socat -T 5 - "TCP4:$TL_DST_IN4:$TCP_PORT,connect-timeout=10" </dev/null
	tl_expect_eq "the answer of dst's service through the proxy" "$output" secret
	local dest
	for dest in "$TL_SRV_IN4" 169.254.169.254; do
		run n_cli timeout 15 socat -u /dev/null "TCP4:$dest:$TCP_PORT,connect-timeout=10"
		[[ $status != 0 ]] || tl_fail "expected the connection to $dest to fail"
		tl_expect_contains "the application's error for $dest" "$output" "No route to host"
	done
	tl_wait_stat_ge "$TL_CLI_STATS" fe_streams_prohibited 2
	[[ ! -s $TL_TMP/secret-$TL_SRV_IN4.log ]] || tl_fail "expected no connection to srv's own $TL_SRV_IN4"
}

# ---- the client (finding 9) -------------------------------------------------------------

# A hostile server in srv: tl_peer with the server certificate, routing anything to cli.
hostile_server() {
	printf 'cli 0.0.0.0/0,::/0\n' >"$TL_TMP/hostile-peers"
	tl_bg "$NS_SRV" "$TL_TMP/hostile.log" timeout 60 "$TL_PEER" server --listen "$TL_SRV_UL4:$TL_PORT" \
		--peers "$TL_TMP/hostile-peers" --cert "$TL_PKI/server.crt" --key "$TL_PKI/server.key" \
		--ca "$TL_PKI/ca.crt" "$@" >/dev/null
	HOSTILE_PID=$TL_LAST_PID
	tl_wait_listen "$NS_SRV" tcp "$TL_PORT"
}

client_refuses() {
	local fe=$1
	require_frontend "$fe"
	tl_pki
	udp_listen "$NS_CLI" cli-lo4 127.0.0.1
	udp_listen "$NS_CLI" cli-any4 any4
	tl_wait_listen "$NS_CLI" udp "$PORT"
	local me=$TL_TUN_CLI4 good=$TL_DST_IN4
	hostile_server wait 1500 \
		udp 10.99.0.1 "$me" "$PORT" \
		udp 127.0.0.1 "$me" "$PORT" \
		udp "$me" "$me" "$PORT" \
		udp "$TL_SRV_UL4" "$me" "$PORT" \
		udp "$good" 127.0.0.1 "$PORT" \
		udp "$good" 224.0.0.1 "$PORT" \
		udp "$good" "$TL_CLI_UL4" "$PORT" \
		udp "$good" 10.99.0.7 "$PORT" \
		wait 300 \
		udp "$good" "$me" "$PORT" \
		wait 1000
	tl_start_tunlab_client "$fe"
	tl_wait_exit "$HOSTILE_PID" 30 || tl_fail "expected the hostile server to finish: $(cat "$TL_TMP/hostile.log")"
	# The good packet came last: whatever cli was going to get, it has.
	tl_wait_until "$TL_TIMEOUT" eval '(( $(got cli-any4) >= 1 ))' ||
		tl_fail "expected the packet from inside the routes to arrive at cli"
	expect_got cli-lo4 0
	expect_got cli-any4 1 # only the packet from inside the routes to cli's --address
	tl_wait_stat_ge "$TL_CLI_STATS" drop_spoofed_source 4
	expect_stat "$TL_CLI_STATS" drop_spoofed_source 4
	expect_stat "$TL_CLI_STATS" drop_dst_loopback 1
	expect_stat "$TL_CLI_STATS" drop_dst_multicast 1
	expect_stat "$TL_CLI_STATS" drop_dst_local 1        # cli's underlay address
	expect_stat "$TL_CLI_STATS" drop_dst_not_exported 1 # no address of cli's
}

@test "nfqueue client: a hostile server's packets from outside the routes or to 127.0.0.1 or another address of cli are dropped" {
	client_refuses nfqueue
}

@test "pcap client: a hostile server's packets from outside the routes or to 127.0.0.1 or another address of cli are dropped" {
	client_refuses pcap
}

@test "proxy client: a hostile server's datagram from outside the routes is dropped by the tunnel" {
	require_frontend nfqueue
	tl_pki
	hostile_server wait 500 sdgram 127.0.0.1 53 sdgram "$TL_SRV_UL4" 53 wait 300 sdgram "$TL_DST_IN4" 53 wait 500
	tl_start_tunlab_client proxy
	tl_wait_exit "$HOSTILE_PID" 30 || tl_fail "expected the hostile server to finish: $(cat "$TL_TMP/hostile.log")"
	# The one from inside the routes reaches the proxy, which knows no such flow.
	tl_wait_stat_ge "$TL_CLI_STATS" fe_dgrams_dropped 1
	expect_stat "$TL_CLI_STATS" fe_dgrams_dropped 1
	expect_stat "$TL_CLI_STATS" drop_spoofed_source 2
}
