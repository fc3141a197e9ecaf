#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# lazy.bats: tunnels set up on the first packet (--lazy), closed when idle
# (--idle-timeout), the queue meanwhile, and the server's answer for a peer
# that is not connected (issue 14).
#
# As in tunnel.bats, srv refuses to forward cleartext between underlay and
# inner network, so whatever reaches dst from cli went through the tunnel;
# a capture on srv's underlay end sees what left cli in clear before that.
#
#   TUNLAB=build/tunlab bats tests/integration/lazy.bats

load helpers

BURST=$TL_REPO/experiments/lib/burst.py

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	tl_require_tools ping jq tcpdump python3
	tl_test_setup
	tl_block_cleartext
}

teardown() {
	tl_test_teardown
}

# start_receiver COUNT SECONDS [--tcp 5301]: burst.py recv in dst on UDP
# 5300, its output in $TL_TMP/recv.out, PID in RECV_PID.
start_receiver() {
	tl_bg "$NS_DST" "$TL_TMP/recv.out" python3 "$BURST" recv "$TL_DST_IN4" 5300 --count "$1" \
		--seconds "$2" "${@:3}" >/dev/null
	RECV_PID=$TL_LAST_PID
	tl_wait_until 5 grep -q '^ready=1' "$TL_TMP/recv.out" || tl_fail "expected the receiver in dst to start"
}

# received KEY: a field of the receiver's result line, once it has exited.
received() {
	tl_wait_exit "$RECV_PID" 12 || tl_fail "expected the receiver in dst to exit within its bound"
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$TL_TMP/recv.out" | tail -n 1
}

# A lazy client is up (policy installed) and has not connected.
wait_lazy_idle() {
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_CLI_STATS" '.connected == false and .on_demand_connects == 0' ||
		tl_fail "expected the lazy client to write stats without connecting"
}

# lazy_start_leaks_nothing FRONTEND: the body of the per-frontend tests.
lazy_start_leaks_nothing() {
	local fe=$1
	FRONTEND=$fe tl_require_frontend
	tl_start_tunlab_server "$fe"
	TL_WAIT=none tl_start_tunlab_client "$fe" --lazy
	wait_lazy_idle
	sleep 0.3
	tl_expect_eq "server sessions before any packet" "$(tl_json_get "$TL_SRV_STATS" sessions_total)" 0

	start_capture leak "host $TL_DST_IN4"
	start_receiver 20 8 --tcp 5301
	n_cli python3 "$BURST" send "$TL_DST_IN4" 5300 --count 20 --tcp 5301 >"$TL_TMP/send.out" ||
		tl_fail "expected the sender in cli to run"
	tl_expect_eq "datagrams of 20 at dst" "$(received received)" 20
	tl_expect_eq "datagrams in order at dst" "$(received in_order)" 1
	tl_expect_eq "TCP connects accepted at dst" "$(received accepted)" 1
	grep -q 'connect_ok=1' "$TL_TMP/send.out" || tl_fail "expected the TCP connect to succeed: $(cat "$TL_TMP/send.out")"
	kill "$TL_LAST_CAPTURE" 2>/dev/null || true
	tl_wait_exit "$TL_LAST_CAPTURE" 5 || true
	[[ -z $(packets_seen leak) ]] ||
		tl_fail "expected nothing to dst in clear on the underlay while the tunnel came up, saw: $(packets_seen leak)"
	tl_wait_stat_ge "$TL_CLI_STATS" on_demand_connects 1
	tl_expect_eq "connections started by packets" "$(tl_json_get "$TL_CLI_STATS" on_demand_connects)" 1
	tl_expect_eq "datagrams dropped from the queue" "$(tl_json_get "$TL_CLI_STATS" drop_queue_full)" 0
}

@test "lazy tun: no connection at start; a burst arrives whole and in order, nothing in clear on the underlay" {
	lazy_start_leaks_nothing tun
}

@test "lazy nfqueue: no connection at start; a burst arrives whole and in order, nothing in clear on the underlay" {
	lazy_start_leaks_nothing nfqueue
}

@test "lazy pcap: no connection at start; a burst arrives whole and in order, nothing in clear on the underlay" {
	lazy_start_leaks_nothing pcap
}

@test "lazy: --idle-timeout closes an idle tunnel, the next packet sets it up again" {
	tl_start_tunlab_server tun
	TL_WAIT=none tl_start_tunlab_client tun --lazy --idle-timeout 0.6
	wait_lazy_idle
	tl_ping_dst 1 || tl_ping_dst 1 || tl_fail "expected a ping to set the tunnel up and get through"
	tl_wait_stat_ge "$TL_CLI_STATS" idle_closes 1
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_SRV_STATS" '.sessions_active == 0' ||
		tl_fail "expected the server to see the idle client go"
	run n_cli "$TUNLAB" show
	tl_expect_contains "tunlab show once idle" "$output" "state: idle"
	tl_ping_dst 1 || tl_fail "expected the next ping to set the tunnel up again"
	tl_wait_stat_ge "$TL_CLI_STATS" on_demand_connects 2
	# The server writes its stats on its own clock: wait for the second session there too.
	tl_wait_stat_ge "$TL_SRV_STATS" sessions_total 2
}

@test "lazy: tunlab down closes the tunnel now as --idle-timeout would, the next packet sets it up again" {
	tl_start_tunlab_server tun
	# No --idle-timeout: whatever closes this tunnel is the down.
	TL_WAIT=none tl_start_tunlab_client tun --lazy
	wait_lazy_idle
	run n_cli "$TUNLAB" down
	[[ $status == 0 && $output == "ok: not connected" ]] ||
		tl_fail "expected 'ok: not connected' before any packet, got ($status): $output"
	tl_ping_dst 1 || tl_ping_dst 1 || tl_fail "expected a ping to set the tunnel up and get through"
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_CLI_STATS" '.connected == true' ||
		tl_fail "expected the lazy client connected after the ping"
	run n_cli "$TUNLAB" down
	[[ $status == 0 && $output == ok ]] || tl_fail "expected 'ok' from tunlab down, got ($status): $output"
	# Closed by the time it answers: show asks the daemon, not the stats file's next line.
	run n_cli "$TUNLAB" show --json
	jq -e '.[0].state == "idle" and .[0].stats.connected == false and .[0].stats.idle_closes == 1' \
		<<<"$output" >/dev/null || tl_fail "expected idle, not connected, idle_closes 1 after the down: $output"
	grep -q "closed on request: closing the tunnel to $TL_SRV_UL4:$TL_PORT" "$TL_CLI_LOG" ||
		tl_fail "expected the client to log the close: $(tail -n 3 "$TL_CLI_LOG")"
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$TL_SRV_STATS" '.sessions_active == 0' ||
		tl_fail "expected the server to see the client go"
	tl_ping_dst 1 || tl_fail "expected the next ping to set the tunnel up again"
	tl_wait_stat_ge "$TL_CLI_STATS" on_demand_connects 2
	tl_wait_stat_ge "$TL_SRV_STATS" sessions_total 2
	tl_expect_eq "idle closes" "$(tl_json_get "$TL_CLI_STATS" idle_closes)" 1
}

@test "lazy: tunlab down is refused on a server and on a client without --lazy, and changes nothing" {
	tl_start_tunlab_server tun
	tl_start_tunlab_client tun
	run n_srv "$TUNLAB" down
	[[ $status == 1 ]] || tl_fail "expected the server to refuse tunlab down, got ($status): $output"
	tl_expect_contains "the server's refusal" "$output" "error: a server has no on-demand tunnel"
	run n_cli "$TUNLAB" down
	[[ $status == 1 ]] || tl_fail "expected a client without --lazy to refuse tunlab down, got ($status): $output"
	tl_expect_contains "the client's refusal" "$output" "error: this client runs without --lazy"
	tl_ping_dst 1 || tl_fail "expected the tunnel to carry pings after the refusals"
	run n_cli "$TUNLAB" show --json
	jq -e '.[0].state == "connected" and .[0].stats.idle_closes == 0 and .[0].stats.reconnects == 0' \
		<<<"$output" >/dev/null || tl_fail "expected the client's one session untouched: $output"
	run n_srv "$TUNLAB" show --json
	jq -e '.[0].stats.sessions_total == 1 and .[0].stats.sessions_active == 1' <<<"$output" >/dev/null ||
		tl_fail "expected the server's one session untouched: $output"
	# --pid picks one instance; a pid that is none of them is an error, not an empty list.
	run n_cli "$TUNLAB" show --json --pid "$TL_CLI_PID"
	jq -e 'length == 1 and .[0].state == "connected"' <<<"$output" >/dev/null ||
		tl_fail "expected show --pid $TL_CLI_PID to show that one client: $output"
	run n_cli "$TUNLAB" show --pid 4194301
	[[ $status == 1 && $output == *"no tunlab instance with pid 4194301"* ]] ||
		tl_fail "expected show --pid of no instance to fail naming the pid, got ($status): $output"
}

@test "lazy: packets past the 128 the queue holds are dropped and counted, the rest delivered" {
	# The server starts late: every datagram waits in the queue meanwhile.
	TL_WAIT=none tl_start_tunlab_client tun --lazy
	wait_lazy_idle
	start_receiver 128 10
	n_cli python3 "$BURST" send "$TL_DST_IN4" 5300 --count 200 >/dev/null
	tl_wait_stat_ge "$TL_CLI_STATS" drop_queue_full 72
	tl_expect_eq "packets held" "$(tl_json_get "$TL_CLI_STATS" queue_packets)" 128
	tl_start_tunlab_server tun
	tl_expect_eq "datagrams at dst" "$(received received)" 128
	tl_expect_eq "in order" "$(received in_order)" 1
	tl_expect_eq "dropped" "$(tl_json_get "$TL_CLI_STATS" drop_queue_full)" 72
}

@test "server: a packet for a peer that is not connected gets ICMP administratively prohibited, rate-limited and counted" {
	tl_start_tunlab_server tun
	# No client: cli's prefixes are routed to the server's frontend, their peer is down.
	run n_dst ping -n -c 1 -W 2 "$TL_TUN_CLI4"
	tl_expect_contains "ping from dst to the absent client" "$output" "Packet filtered"
	run n_dst ping -6 -n -c 1 -W 2 "$TL_TUN_CLI6"
	tl_expect_contains "ping -6 from dst to the absent client" "$output" "Administratively prohibited"
	tl_wait_stat_ge "$TL_SRV_STATS" icmp_prohibited 2
	# A flood is answered up to the bucket, the rest counted; every packet is a counted drop.
	n_dst python3 "$BURST" send "$TL_TUN_CLI4" 5300 --count 200 >/dev/null
	tl_wait_stat_ge "$TL_SRV_STATS" drop_peer_down 202
	tl_wait_stat_ge "$TL_SRV_STATS" icmp_rate_limited 1
	local answered
	answered=$(tl_json_get "$TL_SRV_STATS" icmp_prohibited)
	((answered < 150)) || tl_fail "expected the rate limit to hold answers to a 200-packet flood well below 200, got $answered"
}

@test "policy: tunlab show --json counts hits per entry; SIGHUP reloads --policy under a ping that goes on, a bad file keeps the old one" {
	FRONTEND=nfqueue tl_require_frontend
	printf 'protect dst=%s\n' "$TL_IN_NET4" >"$TL_TMP/policy"
	tl_start_tunlab_server nfqueue
	TL_CLIENT_POLICY=$TL_TMP/policy tl_start_tunlab_client nfqueue
	tl_ping_dst 3 || tl_fail "expected pings through the tunnel"
	run n_cli "$TUNLAB" show --json
	jq -e '.[0].policy[0].hits >= 3 and .[0].policy[0].action == "protect"' <<<"$output" >/dev/null ||
		tl_fail "expected the protect entry's hits >= 3 in show --json: $output"

	tl_bg "$NS_CLI" "$TL_TMP/ping.log" ping -n -c 30 -i 0.1 -W 2 "$TL_DST_IN4" >/dev/null
	local pinger=$TL_LAST_PID
	sleep 0.5
	printf 'discard dst=%s/32,proto=udp\nprotect dst=%s\n' "$TL_DST_IN4" "$TL_IN_NET4" >"$TL_TMP/policy"
	kill -HUP "$TL_CLI_PID"
	tl_wait_until 5 grep -q "policy $TL_TMP/policy loaded: 2 entries, 1 unchanged" "$TL_CLI_LOG" ||
		tl_fail "expected the client to log the reload"
	printf 'protect dst=%s\nbypass dst=%s/32\n' "$TL_IN_NET4" "$TL_DST_IN4" >"$TL_TMP/policy"
	kill -HUP "$TL_CLI_PID"
	tl_wait_until 5 grep -q "SIGHUP: --policy: $TL_TMP/policy:2: never reached: line 1 .*; the previous policy stays in force" "$TL_CLI_LOG" ||
		tl_fail "expected the client to refuse the bad file and say so"
	tl_wait_exit "$pinger" 15 || true
	grep -q ' 30 received, 0% packet loss' "$TL_TMP/ping.log" ||
		tl_fail "expected every ping answered across the reloads: $(tail -n 3 "$TL_TMP/ping.log")"
	run n_cli "$TUNLAB" policy show
	[[ $output == "discard dst=$TL_DST_IN4/32,proto=udp"$'\n'"protect dst=$TL_IN_NET4" ]] ||
		tl_fail "expected the first reload's policy still in force, got: $output"
	run n_cli "$TUNLAB" show --json
	jq -e '.[0].policy[1].hits >= 30' <<<"$output" >/dev/null ||
		tl_fail "expected the unchanged entry's hits carried over and counting (>= 30): $output"
	run n_cli "$TUNLAB" show
	tl_expect_contains "tunlab show's policy lines" "$output" "protect dst=$TL_IN_NET4: "
}

@test "policy: tun swaps a policy with the same protect prefixes, refuses other prefixes or a new discard entry and names the frontend" {
	printf 'protect dst=%s\n' "$TL_IN_NET4" >"$TL_TMP/policy"
	tl_start_tunlab_server tun
	TL_CLIENT_POLICY=$TL_TMP/policy tl_start_tunlab_client tun
	printf '# the same, commented\nprotect dst=%s\n' "$TL_IN_NET4" >"$TL_TMP/same"
	run n_cli "$TUNLAB" policy load "$TL_TMP/same"
	[[ $status == 0 ]] || tl_fail "expected tun to take a policy with the same routes, got ($status): $output"
	printf 'protect dst=%s\nprotect dst=10.103.0.0/24\n' "$TL_IN_NET4" >"$TL_TMP/other"
	run n_cli "$TUNLAB" policy load "$TL_TMP/other"
	[[ $status == 1 ]] || tl_fail "expected other prefixes refused, got ($status): $output"
	tl_expect_contains "the refusal" "$output" "restart to change them"
	printf 'protect dst=%s,proto=tcp\n' "$TL_IN_NET4" >"$TL_TMP/sel"
	run n_cli "$TUNLAB" policy load "$TL_TMP/sel"
	tl_expect_contains "the refusal of a selector" "$output" "the tun frontend"
	# Its discard routes are made at start: a new one would be taken and never compiled.
	printf 'discard dst=%s/32\nprotect dst=%s\n' "$TL_DST_IN4" "$TL_IN_NET4" >"$TL_TMP/discard"
	run n_cli "$TUNLAB" policy load "$TL_TMP/discard"
	[[ $status == 1 ]] || tl_fail "expected a new discard entry refused, got ($status): $output"
	tl_expect_contains "the refusal of a discard entry" "$output" "bypass and discard entries differ"
	tl_ping_dst 1 || tl_fail "expected the tunnel to carry pings after the refusals"
}
