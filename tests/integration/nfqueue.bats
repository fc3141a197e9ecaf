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

@test "GSO packets stolen whole and injected whole through lo (--inject lo): 8 MiB each way intact" {
	start_tunnel_pinging
	assert_gso_blobs_both_ways
}

@test "the exit forwards what it injects through lo: TTL 1 dies there, a too-big DF packet gets frag-needed" {
	start_tunnel_pinging
	assert_exit_forwards_like_a_router
}

@test "--inject dev (frames on the egress device, lo for local and unresolved destinations): 8 MiB each way intact" {
	start_tunnel_pinging --inject dev
	assert_gso_blobs_both_ways
	# Now that srv knows dst's MAC, the frame skips srv's forwarding: TTL 1 reaches dst.
	tl_assert "ping -t 1 answered by dst: injected on the egress device, not forwarded" \
		n_cli timeout 10 ping -n -c 1 -t 1 -W 3 "$TL_DST_IN4"
}

@test "strict rp_filter: the default injects with raw sockets and carries; --inject lo refuses, naming it" {
	local ns k
	for ns in "$NS_SRV" "$NS_CLI"; do
		for k in all lo; do
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$k.rp_filter=1"
		done
	done
	start_tunnel_pinging
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 1048576
	sleep 0.5
	# The server injects with raw sockets, takes no offload: the client segments for it.
	tl_expect_gt "packets the client segmented for the server" "$(tl_json_get "$TL_CLI_STATS" tx_segmented)" 0
	tl_stop "$TL_CLI_PID" TERM 10 || true
	TL_CLI_PID=""
	TL_WAIT=none tl_start_tunlab_client nfqueue --inject lo
	tl_wait_exit "$TL_CLI_PID" 10 || true
	! tl_pid_alive "$TL_CLI_PID" || tl_fail "expected --inject lo to refuse strict rp_filter"
	TL_CLI_PID=""
	run cat "$TL_CLI_LOG"
	tl_expect_contains "the client's error" "$output" "rp_filter"
}

@test "--inject raw (one MTU packet per send): 8 MiB each way intact, segmented for the peer" {
	start_tunnel_pinging --inject raw
	send_blob "$NS_CLI" "$NS_DST" "$TL_DST_IN4" 5003 8388608
	send_blob "$NS_DST" "$NS_CLI" "$TL_TUN_CLI4" 5004 8388608
	sleep 0.5
	tl_expect_gt "packets segmented in software for the cli" "$(tl_json_get "$TL_SRV_STATS" tx_segmented)" 0
}

# Only that both queues are bound and traffic through them arrives: the
# kernel's --queue-balance hashes addresses and protocol, not ports, so
# flows between one host pair all land in one queue; whether traffic
# spreads is not what this test can claim.
@test "--queues 2: two queues bound with --queue-balance, traffic through them arrives" {
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
	# The queues' packet-id counters (8th column) prove packets were queued.
	run n_cli awk '{ n += $8 } END { print n + 0 }' /proc/net/netfilter/nfnetlink_queue
	((output > 0)) || tl_fail "expected packets queued in cli's queues, got id sum $output"
}

# ---- cleanup beside live instances (issue 13, finding 7) ----

# A dead nfqueue client's route to fd02::/64 and a live TUN client's route
# to the same prefix: both proto 77, neither with a source. Only the device
# (and metric) tells them apart; the next cleanup or nfqueue start must
# take the first and leave the second, or the live client's traffic to
# fd02::/64 leaves in clear.
@test "a dead nfqueue instance's cleanup leaves a live TUN instance's route alone (tunlab cleanup)" {
	dead_nfqueue_beside_live_tun
	run n_cli "$TUNLAB" cleanup
	[[ $status == 0 ]] || tl_fail "expected tunlab cleanup to exit 0, got $status: $output"
	assert_only_live_tun_left
}

@test "a dead nfqueue instance's cleanup leaves a live TUN instance's route alone (nfqueue start)" {
	dead_nfqueue_beside_live_tun
	# A new nfqueue client cleans up after the dead one as it opens. Its
	# own inner address is another: this test is about routes, not addresses.
	local tun_pid=$TL_CLI_PID
	TL_CLI_LOG=$TL_TMP/client-nfqueue2.log TL_CLI_STATS=$TL_TMP/client-nfqueue2.jsonl \
		TL_CLIENT_NAME=cli2 TL_CLIENT_ADDR=10.8.0.9/$TL_TUN_PLEN4 tl_start_tunlab_client nfqueue
	TL_CLI2_PID=$TL_CLI_PID
	TL_CLI_PID=$tun_pid
	assert_only_live_tun_left
}

# An instance in another pid namespace tags its objects with a pid that,
# seen from here, names nobody: kill(pid, 0) would call it dead. Its lock
# says it runs; cleanup must keep its rules, and its traffic in the tunnel.
@test "an nfqueue instance in another pid namespace is alive to tunlab cleanup" {
	tl_require_tools unshare
	unshare --pid --fork true 2>/dev/null || tl_skip_env "unshare --pid not permitted here"
	local inner=$(( $(cat /proc/sys/kernel/pid_max) - 100 ))
	while [[ -e /proc/$inner ]] && ((inner > 1000)); do ((inner--)); done
	[[ ! -e /proc/$inner ]] || tl_skip_env "no free pid to give the instance"
	cat >"$TL_TMP/pidns-tunlab" <<-EOF
		#!/bin/bash
		# tunlab as pid $inner of a new pid namespace (pid 1 there is this shell)
		exec unshare --pid --fork --kill-child=SIGKILL bash -c 'echo \$((\$1 - 1)) >/proc/sys/kernel/ns_last_pid; "\${@:2}" & wait \$!' _ $inner "$TUNLAB" "\$@"
	EOF
	chmod +x "$TL_TMP/pidns-tunlab"
	tl_start_tunlab_server tun
	TUNLAB=$TL_TMP/pidns-tunlab tl_start_tunlab_client nfqueue
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 || tl_fail "expected ping through the pid-namespace client's tunnel"
	run n_cli iptables-save -t raw
	tl_expect_contains "the client's chains, named by its pid there" "$output" "TUNLAB-$inner-OUT"
	[[ ! -e /proc/$inner ]] || tl_fail "expected pid $inner not to exist here"

	run n_cli "$TUNLAB" cleanup
	[[ $output == *"removed 0 leftover objects"* ]] || tl_fail "expected cleanup to keep the live instance's objects, got: $output"
	run n_cli iptables-save -t raw
	tl_expect_contains "the live instance's chains after cleanup" "$output" "TUNLAB-$inner-OUT"
	tl_assert "ping to keep going through the tunnel after cleanup" tl_ping_dst 2

	# Once it really dies (SIGKILL to the whole pid namespace), its lock is free.
	kill -KILL "$TL_CLI_PID"
	tl_wait_exit "$TL_CLI_PID" 5 || true
	TL_CLI_PID=""
	tl_wait_until 5 cleanup_removes_some || tl_fail "expected cleanup to remove the instance's objects once it died"
	run tl_leftovers "$NS_CLI"
	[[ -z $output ]] || tl_fail "expected no tunlab state in cli after cleanup, found: $output"
}

# ---- helpers for the tests above ----

cleanup_removes_some() {
	local out
	out=$(n_cli "$TUNLAB" cleanup) || return 1
	[[ $out =~ removed\ ([0-9]+)\ leftover ]] && ((BASH_REMATCH[1] > 0))
}

# The dead nfqueue client is cli2 with an IPv4 address only, routing
# fd02::/64 only (an IPv4 route of its would keep the TUN client's from
# being added); cli has no IPv6 path there while it starts, so its route is
# "dev lo" without a source. The live TUN client is cli, IPv4 and IPv6.
dead_nfqueue_beside_live_tun() {
	tl_start_tunlab_server tun --address "$TL_TUN_SRV6/$TL_TUN_PLEN6"
	n_cli ip -6 route del default
	DEAD_PID=$(tl_bg "$NS_CLI" "$TL_TMP/client-dead.log" "$TUNLAB" client --frontend nfqueue \
		--connect "$TL_SRV_UL4:$TL_PORT" --server-name server \
		--cert "$TL_PKI/cli2.crt" --key "$TL_PKI/cli2.key" --ca "$TL_PKI/ca.crt" \
		--address "$TL_TUN_CLI2_4/$TL_TUN_PLEN4" --route "$TL_IN_NET6")
	tl_wait_until "$TL_TIMEOUT" eval "[[ -n \$(n_cli ip -6 route show $TL_IN_NET6 proto 77) ]]" ||
		tl_fail "expected the nfqueue client's route to $TL_IN_NET6 within ${TL_TIMEOUT}s"
	run n_cli ip -6 route show "$TL_IN_NET6" proto 77
	tl_expect_contains "the nfqueue client's route" "$output" "dev lo"
	kill -KILL "$DEAD_PID"
	tl_wait_exit "$DEAD_PID" 5 || true
	# From here on, IPv6 that loses its tunnel route leaves in clear.
	n_cli ip -6 route add default via "$TL_SRV_UL6"
	tl_start_tunlab_client tun --address "$TL_TUN_CLI6/$TL_TUN_PLEN6" --route "$TL_IN_NET6"
	run n_cli ip -6 route show "$TL_IN_NET6" proto 77
	tl_expect_contains "the live TUN client's route" "$output" "dev tunlab"
}

assert_only_live_tun_left() {
	run n_cli iptables-save -t raw
	[[ $output != *"TUNLAB-$DEAD_PID-"* ]] || tl_fail "expected the dead nfqueue client's chains gone, found: $output"
	run n_cli ip -6 route show "$TL_IN_NET6" proto 77
	[[ $output == *"dev tunlab"* && $output != *"dev lo"* ]] ||
		tl_fail "expected the live TUN client's route to $TL_IN_NET6 and only it, found: '$output'"
	start_capture clear6 "ip6 and host $TL_DST_IN6"
	tl_wait_until "$TL_TIMEOUT" n_cli ping -6 -n -q -c 1 -W 1 "$TL_DST_IN6" ||
		tl_fail "expected ping -6 cli->dst answered through the live TUN client's tunnel"
	tl_wait_exit "$TL_LAST_CAPTURE" 10 || true
	[[ -z $(packets_seen clear6) ]] ||
		tl_fail "expected nothing to dst in clear on the underlay, saw: $(packets_seen clear6)"
}


start_tunnel_pinging() {
	tl_start_tunlab_server nfqueue "$@"
	tl_start_tunlab_client nfqueue "$@"
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 ||
		tl_fail "expected a ping cli->dst through the tunnel within ${TL_TIMEOUT}s"
}

# The srv rule that drops cleartext forwarded from the underlay: its packet count.
cleartext_blocked() {
	n_srv iptables -w 5 -nvxL FORWARD | awk -v c="$TL_BLOCK_COMMENT" \
		'$0 ~ c && $0 ~ /DROP/ { n += $1 } END { print n + 0 }'
}

@test "--policy: a protect entry tunnels, a bypass entry goes in clear, a discard entry is dropped" {
	tl_start_tunlab_server nfqueue
	cat >"$TL_TMP/policy" <<-POLICY
		bypass  dst=$TL_DST_IN4/32,proto=tcp,dport=5202
		discard dst=$TL_IN_NET4,proto=udp
		protect dst=$TL_IN_NET4
	POLICY
	TL_CLIENT_POLICY=$TL_TMP/policy tl_start_tunlab_client nfqueue
	run n_cli iptables-save -t raw
	tl_expect_contains "cli's bypass rule" "$output" "-d $TL_DST_IN4/32 -p tcp -m tcp --dport 5202 -j RETURN"
	tl_expect_contains "cli's discard rule" "$output" "-d $TL_IN_NET4 -p udp -j DROP"

	# protect: ping through the tunnel (srv refuses cleartext, so an answer proves it).
	n_cli ping -n -q -c 3 -i 0.2 -W 2 "$TL_DST_IN4" >/dev/null ||
		tl_fail "expected ping to dst to go through the tunnel"
	settle_stats
	local captured blocked
	captured=$(stat_of "$TL_CLI_STATS" fe_captured_packets)
	blocked=$(cleartext_blocked)

	# bypass: the SYN leaves in clear, and srv's cleartext block drops it.
	tl_assert_not "TCP to port 5202 to take the normal path, where srv refuses cleartext" \
		n_cli timeout 5 socat -u /dev/null "TCP4:$TL_DST_IN4:5202,connect-timeout=2"
	(($(cleartext_blocked) > blocked)) ||
		tl_fail "expected srv's cleartext block to count the bypassed SYN (was $blocked, now $(cleartext_blocked))"
	blocked=$(cleartext_blocked)

	# discard: UDP never leaves cli, in clear or tunnelled.
	n_cli timeout 5 socat -u - "UDP4-SENDTO:$TL_DST_IN4:5300" <<<"x" || true
	settle_stats
	[[ $(cleartext_blocked) == "$blocked" ]] ||
		tl_fail "expected the discarded datagram never to reach srv in clear"
	[[ $(stat_of "$TL_CLI_STATS" fe_captured_packets) == "$captured" ]] ||
		tl_fail "expected neither the bypassed nor the discarded packets to be captured (was $captured, now $(stat_of "$TL_CLI_STATS" fe_captured_packets))"
	run n_cli iptables -w 5 -t raw -nvxL "TUNLAB-$TL_CLI_PID-OUT"
	[[ $(awk '$3 == "DROP" && $4 == "17" { print $1 }' <<<"$output") -ge 1 ]] ||
		tl_fail "expected cli's discard rule to count the datagram: $output"
}

@test "tunlab policy load: an atomic swap under traffic; the unchanged entry's ping goes on; a bad file changes nothing" {
	tl_start_tunlab_server nfqueue
	printf 'protect dst=%s\n' "$TL_IN_NET4" >"$TL_TMP/policy"
	TL_CLIENT_POLICY=$TL_TMP/policy tl_start_tunlab_client nfqueue
	tl_bg "$NS_CLI" "$TL_TMP/ping.log" ping -n -c 40 -i 0.1 -W 2 "$TL_DST_IN4" >/dev/null
	local pinger=$TL_LAST_PID
	sleep 1
	printf 'discard dst=%s/32,proto=udp\nprotect dst=%s\n' "$TL_DST_IN4" "$TL_IN_NET4" >"$TL_TMP/policy2"
	run n_cli "$TUNLAB" policy load "$TL_TMP/policy2"
	[[ $status == 0 && $output == "ok: 2 entries, 1 unchanged" ]] ||
		tl_fail "expected the swap to succeed, got ($status): $output"
	printf 'protect dst=%s\nbypass dst=%s/32\n' "$TL_IN_NET4" "$TL_DST_IN4" >"$TL_TMP/bad"
	run n_cli "$TUNLAB" policy load "$TL_TMP/bad"
	[[ $status == 1 ]] || tl_fail "expected a bad file to be refused, got ($status): $output"
	tl_expect_contains "the refusal" "$output" "$TL_TMP/bad:2: never reached: line 1"
	tl_wait_exit "$pinger" 15 || true
	grep -q ' 40 received, 0% packet loss' "$TL_TMP/ping.log" ||
		tl_fail "expected all 40 pings answered across the swap: $(tail -n 3 "$TL_TMP/ping.log")"
	run n_cli "$TUNLAB" policy show
	[[ $output == "discard dst=$TL_DST_IN4/32,proto=udp"$'\n'"protect dst=$TL_IN_NET4" ]] ||
		tl_fail "expected the new policy, got: $output"
	run n_cli iptables-save -t raw
	tl_expect_contains "the new discard rule" "$output" "-d $TL_DST_IN4/32 -p udp -j DROP"
}
