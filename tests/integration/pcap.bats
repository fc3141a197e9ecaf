#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# pcap.bats: what only the loopback + libpcap frontend does: fail-closed after kill -9, --inject pcap, 64 KiB segments, IPv6.
#
# The shared suite (FRONTEND=pcap bats tests/integration/tunnel.bats)
# covers ping, TCP, UDP, iperf3, wrong CA, spoofed source, restart and
# cleanup. As there, srv refuses to forward cleartext between underlay and
# inner network, so whatever reaches dst from cli went through the tunnel.
#
#   TUNLAB=build/tunlab bats tests/integration/pcap.bats

load helpers

FRONTEND=pcap

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	tl_require_tools ping jq socat tcpdump
	tl_test_setup
	tl_block_cleartext
}

teardown() {
	tl_test_teardown
}

note() {
	echo "# $*" >&3
}

start_tunnel() {
	tl_start_tunlab_server pcap "$@"
	tl_start_tunlab_client pcap "$@"
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 ||
		tl_fail "expected a ping cli->dst through the tunnel within ${TL_TIMEOUT}s"
}

@test "kill -9 (fail-closed): nothing to dst leaves in clear; tunlab cleanup removes routes and rules" {
	start_tunnel
	run tl_leftovers "$NS_CLI"
	tl_expect_contains "the client's route to lo" "$output" "route: $TL_IN_NET4 dev lo"
	assert_fail_closed_after_kill 4 "1 route, 1 address, 1 chain, 1 jump rule"
}

@test "--inject pcap at both ends: ping and TCP go through, injected by pcap_inject" {
	start_tunnel --inject pcap
	tl_assert "5 pings through the tunnel" n_cli ping -n -q -c 5 -i 0.2 -W 2 "$TL_DST_IN4"
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 1048576
	tl_wait_stat_ge "$TL_CLI_STATS" fe_injected_packets 5
	tl_wait_stat_ge "$TL_SRV_STATS" fe_injected_packets 700
	tl_assert "no injection refused at the client" tl_json_test "$TL_CLI_STATS" '.fe_inject_errors == 0'
	tl_assert "no injection refused at the server" tl_json_test "$TL_SRV_STATS" '.fe_inject_errors == 0'
}

@test "--inject with an unknown method fails at once, naming it" {
	local rc=0
	TL_WAIT=none tl_start_tunlab_client pcap --inject carrier-pigeon
	tl_wait_exit "$TL_CLI_PID" 10 || rc=$?
	! tl_pid_alive "$TL_CLI_PID" || tl_fail "expected tunlab to exit at once on --inject carrier-pigeon"
	((rc != 0)) || tl_fail "expected a non-zero exit status on --inject carrier-pigeon"
	TL_CLI_PID=""
	run cat "$TL_CLI_LOG"
	tl_expect_contains "the client's error" "$output" "--inject 'carrier-pigeon'"
	run tl_leftovers "$NS_CLI"
	[[ -z $output ]] || tl_fail "expected nothing created before the error, found: $output"
}

@test "64 KiB segments from lo: 8 MiB each way arrive intact, captured whole and injected whole (--inject lo)" {
	start_tunnel
	assert_gso_blobs_both_ways
}

@test "the exit forwards what it injects through lo: TTL 1 dies there, a too-big DF packet gets frag-needed" {
	start_tunnel
	assert_exit_forwards_like_a_router
}

@test "--inject dev (frames on the egress device, lo for local and unresolved destinations): 8 MiB each way intact" {
	start_tunnel --inject dev
	assert_gso_blobs_both_ways
	# Now that srv knows dst's MAC, the frame skips srv's forwarding: TTL 1 reaches dst.
	tl_assert "ping -t 1 answered by dst: injected on the egress device, not forwarded" \
		n_cli timeout 10 ping -n -c 1 -t 1 -W 3 "$TL_DST_IN4"
}

@test "--inject raw: 8 MiB each way arrive intact, captured whole and segmented for the peer" {
	start_tunnel --inject raw
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 8388608
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 8388608
	sleep 0.5
	local side
	for side in "$TL_CLI_STATS" "$TL_SRV_STATS"; do
		tl_expect_gt "packets segmented in software for the peer" "$(tl_json_get "$side" tx_segmented)" 0
	done
}

@test "IPv6: the client's local route to lo and the server's capture on \"any\" carry ping and TCP" {
	# The client's only inner address is IPv6: IPv4 would leave with a spoofed source.
	tl_start_tunlab_server pcap
	TL_CLIENT_ADDR="$TL_TUN_CLI6/$TL_TUN_PLEN6" tl_start_tunlab_client pcap --route "$TL_IN_NET6"
	run n_cli ip -6 route show table local proto 77
	tl_expect_contains "cli's IPv6 route to lo" "$output" "local $TL_IN_NET6 dev lo"
	tl_wait_until "$TL_TIMEOUT" n_cli ping -6 -n -q -c 1 -W 1 "$TL_DST_IN6" ||
		tl_fail "expected ping -6 cli->dst through the tunnel"
	send_blob "$NS_CLI" "$NS_DST" "[$TL_DST_IN6]" 5005 1048576
	tl_bg "$NS_DST" "$TL_TMP/echo6.log" \
		socat -T 10 TCP6-LISTEN:5006,reuseaddr SYSTEM:'echo peer=$SOCAT_PEERADDR' >/dev/null
	tl_wait_listen "$NS_DST" tcp 5006
	run n_cli timeout 10 socat -T 5 - "TCP6:[$TL_DST_IN6]:5006" </dev/null
	# socat writes the address in full: fd08:0000:...:0002 is $TL_TUN_CLI6.
	[[ $output =~ peer=\[fd08:(0000:){6}0002\] ]] ||
		tl_fail "expected dst to see the client's inner source $TL_TUN_CLI6, got: $output"
}
