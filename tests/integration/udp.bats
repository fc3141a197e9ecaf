#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# udp.bats: the UDP data channel (issue 15) end to end in the cli/srv/dst namespaces.
#
# Every packet frontend carries ping, TCP, UDP and IPv6 over --transport udp
# (TUN gets the TCP segments of a receive batch merged into GSO packets);
# auto falls back to TLS when srv drops UDP to its port and returns when it
# stops; replayed, forged and unknown-session datagrams are dropped and
# counted; keys change under traffic without a lost packet; a client whose
# source port changes (SNAT in cli) is followed without a new handshake; a
# client whose UDP socket is full (tbf on its uplink) pauses instead of dropping;
# under a bulk upload what a turn does not seal waits in the client's flow
# queue, srv opens the echoes beside it ahead of the bulk (udp_rx_express),
# and srv's receive buffer is one peer's 512 KiB.
# A DF packet above the inner MTU gets ICMP "fragmentation needed" /
# "packet too big" from either end, and its sender learns the path MTU.
# srv refuses to forward cleartext (tl_block_cleartext), as in tunnel.bats.
#
#   TUNLAB=build/tunlab bats tests/integration/udp.bats

load helpers

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	tl_require_tools ping jq socat python3
	tl_test_setup
	tl_block_cleartext
}

teardown() {
	tl_test_teardown
}

# start_udp FRONTEND [client flags...]: server (with SRV_FLAGS) and client, data over UDP.
start_udp() {
	local frontend=$1
	shift
	# shellcheck disable=SC2086 # SRV_FLAGS holds several words on purpose
	tl_start_tunlab_server "$frontend" --address "$TL_TUN_SRV6/$TL_TUN_PLEN6" ${SRV_FLAGS:-}
	tl_start_tunlab_client "$frontend" --address "$TL_TUN_CLI6/$TL_TUN_PLEN6" --route "$TL_IN_NET6" "$@"
	wait_transport udp
}

# wait_transport tls|udp: both ends say data goes that way.
wait_transport() {
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_CLI_STATS" ".transport == \"$1\"" ||
		tl_fail "expected the client's transport to become $1, last: $(tl_json_get "$TL_CLI_STATS" transport 2>&1)"
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_SRV_STATS" ".transport == \"$1\"" ||
		tl_fail "expected the server's transport to become $1, last: $(tl_json_get "$TL_SRV_STATS" transport 2>&1)"
}

stat() {
	tl_json_get "$1" "$2"
}

# The data went over UDP: datagrams both ways, few TLS records (HELLO, setup, keepalives).
assert_data_over_udp() {
	local side
	for side in "$TL_CLI_STATS" "$TL_SRV_STATS"; do
		tl_wait_stat_ge "$side" udp_rx_datagrams "$1"
		tl_wait_stat_ge "$side" udp_tx_datagrams "$1"
		tl_assert "no UDP datagram dropped in $side" \
			tl_json_test "$side" '.udp_drop_auth == 0 and .udp_drop_replay == 0 and .udp_drop_unknown_session == 0'
	done
	local records
	records=$(stat "$TL_CLI_STATS" tls_records_written)
	tl_expect_gt "datagrams, against TLS records the client wrote ($records)" \
		"$(stat "$TL_CLI_STATS" udp_tx_datagrams)" "$((records * 10))"
}

# A plain inner packet above the inner MTU (1500 bytes: TUN's MTU) and a
# small one right behind it, 50 times: the big one's datagram goes alone
# (fragmented), for a second datagram joining it would make a GSO send
# with a segment above the path MTU, which the kernel refuses whole. The
# big one without DF (IP_PMTUDISC_DONT): with DF it would get "too big"
# instead, which the too-big tests cover.
big_then_small_datagrams() {
	local before
	before=$(stat "$TL_SRV_STATS" rx_packets)
	tl_assert "50 pairs of UDP datagrams sent" n_cli python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER (10, linux/in.h), IP_PMTUDISC_DONT: no DF
for _ in range(50):
    s.sendto(b"b" * 1472, (sys.argv[1], 9))
    s.sendto(b"s" * 100, (sys.argv[1], 9))' "$TL_DST_IN4"
	tl_wait_stat_ge "$TL_SRV_STATS" rx_packets "$((before + 100))"
	tl_assert "no datagram the client's socket refused" tl_json_test "$TL_CLI_STATS" '.drop_tx_full == 0'
}

# The counters that say where a datagram was lost, at each end (its last stats line).
udp_drop_counts() {
	local side line
	local keys='["udp_aqm_drops","udp_rx_wait_max_us","udp_drop_auth","udp_drop_replay","udp_drop_malformed",
		"drop_tx_full","drop_queue_full","fq_drops","fe_capture_drops","fe_inject_errors"]'
	for side in client:"$TL_CLI_STATS" server:"$TL_SRV_STATS"; do
		line=$(tl_json_last "${side#*:}" 2>/dev/null) || true
		[[ -n $line ]] || line='{}'
		printf '%s %s; ' "${side%%:*}" \
			"$(jq -r --argjson k "$keys" '. as $s | $k | map("\(.)=\($s[.] // "?")") | join(" ")' <<<"$line")"
	done
}

# ping, TCP 1 MiB intact each way, UDP echo and ping -6 through a frontend over UDP.
frontend_over_udp() {
	local frontend=$1
	FRONTEND=$frontend tl_require_frontend
	start_udp "$frontend" --transport udp
	run n_cli ping -n -c 5 -i 0.2 -W 2 "$TL_DST_IN4"
	tl_expect_contains "ping's summary" "$output" "5 received"

	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 1048576
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 1048576
	if [[ $frontend == tun ]]; then
		# Each end received 1 MiB in bursts of in-order segments: merged before the TUN write (base/gro.h).
		tl_wait_stat_ge "$TL_SRV_STATS" udp_rx_coalesced 1
		tl_wait_stat_ge "$TL_CLI_STATS" udp_rx_coalesced 1
	fi

	tl_bg "$NS_DST" "$TL_TMP/udp-echo.log" \
		socat -T 10 UDP4-RECVFROM:5002 SYSTEM:'echo peer=$SOCAT_PEERADDR; cat' >/dev/null
	tl_wait_listen "$NS_DST" udp 5002
	run n_cli timeout 15 socat -t 3 -T 5 - "UDP4-SENDTO:$TL_DST_IN4:5002" <<<"hello over udp"
	[[ $output == *"peer=$TL_TUN_CLI4"* ]] || echo "# one datagram each way, unanswered; drops at each end: $(udp_drop_counts)" >&3
	tl_expect_contains "the UDP reply" "$output" "peer=$TL_TUN_CLI4"
	tl_expect_contains "the UDP reply" "$output" "hello over udp"

	big_then_small_datagrams

	tl_wait_until "$TL_TIMEOUT" n_cli ping -6 -n -q -c 1 -W 1 "$TL_DST_IN6" ||
		tl_fail "expected ping -6 cli->dst answered through the tunnel"
	assert_data_over_udp 300
	local missing side
	for side in "$TL_CLI_STATS" "$TL_SRV_STATS"; do
		missing=$(tl_stats_missing_keys "$side")
		[[ -z $missing ]] || tl_fail "expected every documented stats key in $side; missing: $missing"
	done
}

@test "tun over udp: ping, TCP 1 MiB intact both ways (segments merged for TUN), UDP, ping -6; data in datagrams, not TLS records" {
	frontend_over_udp tun
}

@test "nfqueue over udp: ping, TCP 1 MiB intact both ways, UDP, ping -6" {
	frontend_over_udp nfqueue
}

@test "pcap over udp: ping, TCP 1 MiB intact both ways, UDP, ping -6" {
	frontend_over_udp pcap
}

# too_big NS DEST FAMILY: a DF ping of 1500 bytes from NS to DEST is answered
# with the tunnel's inner MTU (1440: outer IPv4), the sender's kernel then
# refuses 1441 itself (it learnt the path MTU), and 1440 goes through.
too_big() {
	local ns=$1 dest=$2 family=$3 hdr=28 flag=-4
	[[ $family == 6 ]] && hdr=48 flag=-6
	run tl_ns "$ns" ping "$flag" -n -M do -s $((1500 - hdr)) -c 1 -W 2 "$dest"
	if [[ $family == 4 ]]; then
		tl_expect_contains "a DF ping of 1500 bytes ($ns to $dest)" "$output" "Frag needed and DF set (mtu = 1440)"
	else
		tl_expect_contains "a ping -6 of 1500 bytes ($ns to $dest)" "$output" "Packet too big: mtu=1440"
	fi
	run tl_ns "$ns" ping "$flag" -n -M do -s $((1441 - hdr)) -c 1 -W 2 "$dest"
	# "mtu=1440" (IPv4), "mtu: 1440" (IPv6)
	[[ $output == *"message too long, mtu"?*1440* ]] ||
		tl_fail "expected a ping of 1441 bytes after the error ($ns to $dest) refused by the sender's kernel (mtu 1440), got: $output"
	run tl_ns "$ns" ping "$flag" -n -M do -s $((1440 - hdr)) -c 2 -i 0.2 -W 2 "$dest"
	tl_expect_contains "a ping of the inner MTU ($ns to $dest)" "$output" "2 received"
}

@test "too big over udp: DF/IPv6 above the inner MTU gets frag-needed / packet-too-big both ways; TCP goes" {
	start_udp tun --transport udp
	too_big "$NS_CLI" "$TL_DST_IN4" 4
	too_big "$NS_CLI" "$TL_DST_IN6" 6
	too_big "$NS_DST" "$TL_TUN_CLI4" 4
	too_big "$NS_DST" "$TL_TUN_CLI6" 6
	tl_wait_stat_ge "$TL_CLI_STATS" icmp_too_big 2
	tl_wait_stat_ge "$TL_SRV_STATS" icmp_too_big 2
	# Without DF the sender allows fragments: the outer datagram is fragmented.
	run n_cli ping -n -M dont -s 1472 -c 2 -i 0.2 -W 2 "$TL_DST_IN4"
	tl_expect_contains "a ping of 1500 bytes without DF" "$output" "2 received"
	# TCP's full-size segments learn the inner MTU the same way (no offload: plain 1500-byte packets).
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 1048576
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 1048576
}

@test "too big over udp, tun --no-offload: plain full-size TCP segments learn the inner MTU" {
	start_udp tun --transport udp --no-offload
	# TCP first: its own full-size segments meet the inner MTU, not a ping's cached one.
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 1048576
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 1048576
	tl_wait_stat_ge "$TL_CLI_STATS" icmp_too_big 1
	too_big "$NS_CLI" "$TL_DST_IN6" 6
}

@test "too big over udp, nfqueue: the ICMP reaches the sender through the inject path" {
	FRONTEND=nfqueue tl_require_frontend
	start_udp nfqueue --transport udp
	too_big "$NS_CLI" "$TL_DST_IN4" 4
	too_big "$NS_CLI" "$TL_DST_IN6" 6
}

@test "auto: UDP when it works, TLS while srv drops UDP to its port, UDP again after" {
	tl_require_tools iptables
	SRV_FLAGS="--keepalive 0.5" start_udp tun --transport auto --keepalive 0.5
	tl_ping_dst 3 || tl_fail "expected ping over UDP"
	tl_cmd n_srv iptables -w 5 -I INPUT -p udp --dport "$TL_PORT" -j DROP
	wait_transport tls
	tl_ping_dst 3 || tl_fail "expected ping over the TLS fallback"
	local tls_before
	tls_before=$(stat "$TL_CLI_STATS" tls_records_written)
	tl_expect_ge "fallbacks" "$(stat "$TL_CLI_STATS" udp_fallbacks)" 1
	tl_cmd n_srv iptables -w 5 -D INPUT -p udp --dport "$TL_PORT" -j DROP
	wait_transport udp
	tl_ping_dst 3 || tl_fail "expected ping over UDP again"
	tl_expect_gt "TLS records written during the fallback" "$tls_before" 2
	tl_assert "one TLS session throughout" tl_json_test "$TL_CLI_STATS" '.reconnects == 0'
}

@test "the default transport: auto for a packet frontend (data over UDP here), tls for the proxy, which refuses udp" {
	TL_TRANSPORT=default start_udp tun
	run n_cli ping -n -c 5 -i 0.2 -W 2 "$TL_DST_IN4"
	tl_expect_contains "ping's summary" "$output" "5 received"
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 1048576
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 1048576
	assert_data_over_udp 300
	tl_pki
	run tl_ns "$NS_CLI" timeout 20 "$TUNLAB" client --frontend proxy --connect "$TL_SRV_UL4:$TL_PORT" \
		--server-name server --cert "$TL_PKI/cli.crt" --key "$TL_PKI/cli.key" --ca "$TL_PKI/ca.crt" \
		--route "$TL_IN_NET4" --transport udp
	((status != 0 && status != 124)) || tl_fail "expected the proxy client to refuse --transport udp at start, status $status: $output"
	tl_expect_contains "the reason" "$output" "the proxy frontend carries streams"
}

@test "replayed, forged and unknown-session datagrams are dropped and counted; the tunnel goes on" {
	tl_require_tools python3
	start_udp tun --transport udp
	n_cli ping -n -q -c 100 -i 0.05 "$TL_DST_IN4" >/dev/null 2>&1 &
	local pinger=$!
	run n_cli timeout 20 python3 "$BATS_TEST_DIRNAME/udpforge.py" "$TL_UL_IF" "$TL_SRV_UL4" "$TL_PORT"
	wait "$pinger" || true
	tl_expect_contains "udpforge" "$output" "replayed forged unknown"
	tl_wait_stat_ge "$TL_SRV_STATS" udp_drop_replay 1
	tl_wait_stat_ge "$TL_SRV_STATS" udp_drop_auth 1
	tl_wait_stat_ge "$TL_SRV_STATS" udp_drop_unknown_session 1
	tl_assert "no roam to the forger's port" tl_json_test "$TL_SRV_STATS" '.udp_roams == 0'
	run n_cli ping -n -c 5 -i 0.2 -W 2 "$TL_DST_IN4"
	tl_expect_contains "ping's summary after the attack" "$output" "5 received"
}

@test "re-key under traffic: many key epochs, not a packet lost, small datagrams kept in order" {
	tl_start_tunlab_server tun --rekey-packets 16
	tl_start_tunlab_client tun --transport udp --rekey-packets 16
	wait_transport udp
	run n_cli ping -n -q -c 300 -i 0.005 -W 2 "$TL_DST_IN4"
	tl_expect_contains "ping's summary" "$output" "300 received"
	tl_wait_stat_ge "$TL_CLI_STATS" udp_rekeys 30
	tl_wait_stat_ge "$TL_SRV_STATS" udp_rekeys 30
	tl_assert "no datagram refused" \
		tl_json_test "$TL_SRV_STATS" '.udp_drop_auth == 0 and .udp_drop_replay == 0'
	tl_assert "no datagram refused" \
		tl_json_test "$TL_CLI_STATS" '.udp_drop_auth == 0 and .udp_drop_replay == 0'
	# Key epochs shorter than the read-ahead ring: small datagrams may not overtake (udp.c, UDP_RX_EXPRESS_EPOCH_MIN).
	tl_assert "srv kept arrival order (no express lane)" tl_json_test "$TL_SRV_STATS" '.udp_rx_express == 0'
	tl_assert "cli kept arrival order (no express lane)" tl_json_test "$TL_CLI_STATS" '.udp_rx_express == 0'
}

@test "roaming: the client's source port changes (SNAT in cli); the server follows, no new handshake" {
	tl_require_tools iptables conntrack
	SRV_FLAGS="--keepalive 0.5" start_udp tun --transport udp --keepalive 0.5
	tl_ping_dst 3 || tl_fail "expected ping over UDP"
	tl_cmd n_cli iptables -w 5 -t nat -I POSTROUTING -p udp --dport "$TL_PORT" \
		-j SNAT --to-source "$TL_CLI_UL4:40999"
	n_cli conntrack -D -p udp >/dev/null 2>&1 || true
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 || tl_fail "expected ping after the port changed"
	tl_wait_stat_ge "$TL_SRV_STATS" udp_roams 1
	run n_cli ping -n -c 10 -i 0.1 -W 2 "$TL_DST_IN4"
	tl_expect_contains "ping's summary after roaming" "$output" "10 received"
	tl_assert "one handshake at the server" \
		tl_json_test "$TL_SRV_STATS" '.handshakes_full + .handshakes_resumed == 1'
	tl_assert "still over UDP" tl_json_test "$TL_CLI_STATS" '.transport == "udp"'
	tl_cmd n_cli iptables -w 5 -t nat -D POSTROUTING -p udp --dport "$TL_PORT" \
		-j SNAT --to-source "$TL_CLI_UL4:40999"
}

@test "backpressure: a client whose UDP socket is full pauses its frontend instead of dropping" {
	tl_require_tools iperf3 tc
	start_udp tun --transport udp
	# A 100 Mbit/s uplink with a deep queue and 300 Mbit/s of UDP into it: the socket fills.
	tl_cmd n_cli tc qdisc add dev "$TL_UL_IF" root tbf rate 100mbit burst 64k limit 64mb
	tl_bg "$NS_DST" "$TL_TMP/iperf3-server.log" iperf3 -s -1 -p 5201 >/dev/null
	tl_wait_listen "$NS_DST" tcp 5201
	n_cli timeout 30 iperf3 -c "$TL_DST_IN4" -p 5201 -u -b 300M -l 1400 -t 1 -J >"$TL_TMP/iperf3.json" ||
		tl_fail "expected iperf3 to finish: $(jq -r '.error // empty' "$TL_TMP/iperf3.json" 2>/dev/null)"
	tl_wait_stat_ge "$TL_CLI_STATS" udp_tx_blocked 1
	tl_assert "no datagram dropped for a full socket" tl_json_test "$TL_CLI_STATS" '.drop_tx_full == 0'
	tl_cmd n_cli tc qdisc del dev "$TL_UL_IF" root
}

# The receive buffer of srv's UDP socket on the tunnel's port, as ss reports it (rb, bytes).
srv_udp_rcvbuf() {
	n_srv ss -uanmH sport = ":$TL_PORT" | grep -o 'rb[0-9]*' | head -n 1 | tr -d rb
}

@test "under a bulk upload the client's flow queue holds what is not sealed yet, srv opens the echoes ahead of the bulk; its receive buffer is one peer's 512 KiB" {
	tl_require_tools iperf3 ss
	start_udp tun --transport udp
	local rb
	rb=$(srv_udp_rcvbuf)
	# 512 KiB asked for; the kernel reports it doubled for its bookkeeping.
	[[ $rb =~ ^[0-9]+$ ]] && ((rb >= 512 * 1024 && rb <= 2048 * 1024)) ||
		tl_fail "expected srv's UDP receive buffer within 512 KiB - 2 MiB (512 KiB asked), got '$rb'"
	tl_bg "$NS_DST" "$TL_TMP/iperf3-server.log" iperf3 -s -1 -p 5201 >/dev/null
	tl_wait_listen "$NS_DST" tcp 5201
	n_cli timeout 30 iperf3 -c "$TL_DST_IN4" -p 5201 -t 2 -J >"$TL_TMP/iperf3.json" &
	local upload=$!
	sleep 0.5
	run n_cli ping -n -c 10 -i 0.05 -W 2 "$TL_DST_IN4"
	wait "$upload" || tl_fail "expected iperf3 to finish: $(jq -r '.error // empty' "$TL_TMP/iperf3.json" 2>/dev/null)"
	# The short receive buffer's tail drop may take an echo too (README: the UDP path's queue under load).
	local received
	received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$output")
	tl_expect_gt "echoes answered of 10 beside the upload (a drop or two is the tail drop's)" "${received:-0}" 5
	# The frontend's GSO packets arrive faster than a turn seals them: the rest waited in the flow queue.
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_CLI_STATS" '.fq_sojourn_max_us > 0' ||
		tl_fail "expected packets to have waited in the client's flow queue, fq_sojourn_max_us $(stat "$TL_CLI_STATS" fq_sojourn_max_us)"
	tl_assert "the upload went by UDP" tl_json_test "$TL_CLI_STATS" '.udp_tx_bytes > 10000000'
	# Each answered echo's request was a small datagram: srv opened it when it was read, ahead of the upload's bulk.
	tl_wait_stat_ge "$TL_SRV_STATS" udp_rx_express "$received"
}
