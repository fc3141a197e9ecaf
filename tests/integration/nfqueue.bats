#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# nfqueue.bats: what only the nfqueue frontend does: selectors, fail-closed after kill -9, several queues.
#
# The shared suite (FRONTEND=nfqueue bats tests/integration/tunnel.bats)
# covers ping, TCP, UDP, iperf3, wrong CA, spoofed source, restart and
# cleanup. As there, srv refuses to forward cleartext between underlay and
# inner network, so whatever reaches dst from cli went through the tunnel.
#
#   TUNLAB=build/tunlab bats tests/integration/nfqueue.bats

load helpers

FRONTEND=nfqueue

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	tl_require_tools ping jq socat tcpdump
	tl_require_frontend
	tl_test_setup
	tl_block_cleartext
}

teardown() {
	tl_test_teardown
}

stat_of() {
	tl_json_get "$1" "$2"
}

# The stats files are written every 200 ms: two intervals see every packet.
settle_stats() {
	sleep 0.5
}

@test "selector proto=tcp,dport=5201: TCP to that port goes through the tunnel, ping does not" {
	tl_require_tools iperf3
	tl_start_tunlab_server nfqueue
	tl_start_tunlab_client nfqueue --select proto=tcp,dport=5201
	run n_cli iptables-save -t raw
	tl_expect_contains "cli's capture rule" "$output" "-d $TL_IN_NET4 -p tcp -m tcp --dport 5201 -j NFQUEUE"

	tl_bg "$NS_DST" "$TL_TMP/iperf3-server.log" iperf3 -s -1 -p 5201 >/dev/null
	tl_wait_listen "$NS_DST" tcp 5201
	n_cli timeout 20 iperf3 -c "$TL_DST_IN4" -p 5201 -t 1 -J >"$TL_TMP/iperf3.json" ||
		tl_fail "expected iperf3 to TCP port 5201 to get through the tunnel"
	jq -e '.end.sum_received.bits_per_second > 0' "$TL_TMP/iperf3.json" >/dev/null ||
		tl_fail "expected bits received at dst on port 5201"
	tl_wait_stat_ge "$TL_SRV_STATS" rx_packets 100

	settle_stats
	local srv_rx cli_captured
	srv_rx=$(stat_of "$TL_SRV_STATS" rx_packets)
	cli_captured=$(stat_of "$TL_CLI_STATS" fe_captured_packets)
	tl_assert_not "ping to dst to take the normal path, where srv refuses cleartext" \
		n_cli ping -n -q -c 3 -i 0.2 -W 1 "$TL_DST_IN4"
	tl_assert_not "TCP to another port to take the normal path and fail too" \
		n_cli timeout 5 socat -u /dev/null "TCP4:$TL_DST_IN4:5202,connect-timeout=2"
	settle_stats
	[[ $(stat_of "$TL_SRV_STATS" rx_packets) == "$srv_rx" ]] ||
		tl_fail "expected the server's rx_packets to stay at $srv_rx for unselected traffic, got $(stat_of "$TL_SRV_STATS" rx_packets)"
	[[ $(stat_of "$TL_CLI_STATS" fe_captured_packets) == "$cli_captured" ]] ||
		tl_fail "expected the client to capture nothing unselected (was $cli_captured, now $(stat_of "$TL_CLI_STATS" fe_captured_packets))"
}

@test "kill -9 (fail-closed): nothing to dst leaves in clear; tunlab cleanup removes the rules" {
	start_tunnel_pinging
	assert_fail_closed_after_kill 6 "2 chains, 2 jump rules, 1 route, 1 address"
}

@test "--fail-open: after kill -9 the rules let traffic pass in clear" {
	tl_start_tunlab_server nfqueue
	tl_start_tunlab_client nfqueue --fail-open
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 || tl_fail "expected ping through the tunnel"
	run n_cli iptables-save -t raw
	tl_expect_contains "cli's capture rule" "$output" "--queue-bypass"
	kill -KILL "$TL_CLI_PID"
	tl_wait_exit "$TL_CLI_PID" 5 || true
	TL_CLI_PID=""
	start_capture bypass "host $TL_DST_IN4"
	send_probes
	tl_wait_exit "$TL_LAST_CAPTURE" 10 || true
	run packets_seen bypass
	tl_expect_contains "what leaks with --fail-open" "$output" "IP $TL_TUN_CLI4 > $TL_DST_IN4"
	n_cli "$TUNLAB" cleanup >/dev/null
}

@test "--queues 2: two queues bound, traffic balanced over them arrives" {
	tl_start_tunlab_server nfqueue --queues 2
	tl_start_tunlab_client nfqueue --queues 2
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 || tl_fail "expected ping through the tunnel"
	run n_cli iptables-save -t raw
	tl_expect_contains "cli's capture rule" "$output" "--queue-balance"
	run n_cli cat /proc/net/netfilter/nfnetlink_queue
	[[ ${#lines[@]} == 2 ]] || tl_fail "expected 2 queues bound in cli, got: $output"

	tl_bg "$NS_DST" "$TL_TMP/tcp-sink.log" socat -u TCP4-LISTEN:5003,reuseaddr,fork /dev/null >/dev/null
	tl_wait_listen "$NS_DST" tcp 5003
	local i
	for i in 1 2 3 4 5 6; do
		head -c 65536 /dev/zero | n_cli timeout 10 socat -u - "TCP4:$TL_DST_IN4:5003" ||
			tl_fail "expected TCP flow $i through the tunnel"
	done
	tl_assert "ping to keep working" tl_ping_dst 2
}

# ---- helpers for the tests above ----

start_tunnel_pinging() {
	tl_start_tunlab_server nfqueue
	tl_start_tunlab_client nfqueue
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 ||
		tl_fail "expected a ping cli->dst through the tunnel within ${TL_TIMEOUT}s"
}
