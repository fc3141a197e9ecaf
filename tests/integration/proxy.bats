#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# proxy.bats: the proxy frontend end to end: real applications, half-close, many connections, refusals, flow control, and its transparency loss.
#
# srv refuses to forward cleartext between underlay and inner network
# (tl_block_cleartext), so whatever dst answers went through the tunnel.
# The shared tests (tunnel.bats) run for the proxy too, with
# FRONTEND=proxy; these are the ones only a proxy needs.
#
#   TUNLAB=build/tunlab bats tests/integration/proxy.bats

load helpers

setup_file() {
	tl_suite_setup
}

setup() {
	tl_require_tunlab
	tl_require_tools socat jq curl python3
	tl_test_setup
	tl_block_cleartext
}

teardown() {
	tl_test_teardown
}

start_proxy() {
	tl_start_tunlab_server proxy
	tl_start_tunlab_client proxy
}

# An HTTP server in dst serving $TL_TMP/www on port 8080; its log names each client.
start_http() {
	mkdir -p "$TL_TMP/www"
	head -c 300000 /dev/urandom >"$TL_TMP/www/blob"
	tl_bg "$NS_DST" "$TL_TMP/http.log" python3 -m http.server 8080 --bind "$TL_DST_IN4" \
		--directory "$TL_TMP/www" >/dev/null
	tl_wait_listen "$NS_DST" tcp 8080
}

note() {
	echo "# $*" >&3
}

@test "curl fetches a file from a real HTTP server in dst through the proxy" {
	start_proxy
	start_http
	run n_cli timeout 20 curl -sS --max-time 15 -o "$TL_TMP/blob.got" -w '%{http_code}' \
		"http://$TL_DST_IN4:8080/blob"
	[[ $status == 0 && $output == 200 ]] || tl_fail "expected HTTP 200 through the proxy, got status $status: $output"
	tl_assert "the 300 kB file to arrive intact" cmp -s "$TL_TMP/www/blob" "$TL_TMP/blob.got"
	tl_wait_stat_ge "$TL_CLI_STATS" fe_streams_total 1
	tl_wait_stat_ge "$TL_CLI_STATS" fe_stream_bytes_in 300000
	tl_wait_stat_ge "$TL_SRV_STATS" fe_stream_bytes_out 300000
	tl_assert "the streams to be closed again on both ends" \
		tl_wait_until 5 tl_json_test "$TL_SRV_STATS" '.fe_streams_open == 0'
}

@test "half-close: shutdown(SHUT_WR) reaches dst and the reply still arrives" {
	start_proxy
	# wc answers only once it has read EOF: the answer proves the FIN crossed.
	tl_bg "$NS_DST" "$TL_TMP/wc.log" socat -T 10 TCP4-LISTEN:5010,reuseaddr \
		SYSTEM:'wc -c; echo after-eof' >/dev/null
	tl_wait_listen "$NS_DST" tcp 5010
	# socat shuts its write side at stdin's EOF and keeps reading for -t seconds.
	run n_cli timeout 15 socat -t 5 -T 10 - "TCP4:$TL_DST_IN4:5010" < <(printf 'twelve bytes')
	[[ $status == 0 ]] || tl_fail "expected the exchange to succeed: $output"
	tl_expect_contains "the reply after the half-close" "$output" "12"
	tl_expect_contains "the reply after the half-close" "$output" "after-eof"
}

@test "200 concurrent connections all get their own answer" {
	start_proxy
	# Each answer waits a second, so that all 200 streams are open at once.
	tl_bg "$NS_DST" "$TL_TMP/many.log" socat -t 5 TCP4-LISTEN:5011,reuseaddr,fork,backlog=512 \
		SYSTEM:'read line; sleep 1; echo "got $line"' >/dev/null
	tl_wait_listen "$NS_DST" tcp 5011
	local i
	local -a clients=()
	for i in $(seq 1 200); do
		(
			out=$(ip netns exec "$NS_CLI" timeout 30 socat -t 20 -T 25 - "TCP4:$TL_DST_IN4:5011" <<<"conn-$i" 2>&1)
			[[ $out == "got conn-$i" ]] && echo ok || echo "conn-$i: $out"
		) >"$TL_TMP/many.$i" &
		clients+=($!)
	done
	# Only these: a bare wait would wait for the daemons too.
	wait "${clients[@]}"
	local good
	good=$(cat "$TL_TMP"/many.* | grep -c '^ok$' || true)
	((good == 200)) || tl_fail "expected 200 right answers, got $good; first failures: $(grep -vh '^ok$' "$TL_TMP"/many.* | head -3)"
	tl_wait_stat_ge "$TL_SRV_STATS" fe_streams_total 200
}

# connect() from cli to HOST:PORT; prints "ok" or the errno's name, and how long it took.
connect_errno() {
	n_cli timeout 30 python3 -c '
import errno, socket, sys, time
t0 = time.monotonic()
s = socket.socket()
s.settimeout(25)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("ok", end=" ")
except OSError as e:
    print(errno.errorcode.get(e.errno, e), end=" ")
print(int((time.monotonic() - t0) * 1000))' "$1" "$2"
}

@test "a closed port at dst: the application's connect() is refused, as without a tunnel" {
	start_proxy
	run connect_errno "$TL_DST_IN4" 5999
	note "connect: $output (errno, ms)"
	[[ $output == "ECONNREFUSED "* ]] || tl_fail "expected connect() to fail with ECONNREFUSED, got: $output"
	((${output#* } < 5000)) || tl_fail "expected the refusal within 5 s, took ${output#* } ms"
	run n_cli timeout 20 curl -sS --max-time 15 "http://$TL_DST_IN4:5999/"
	# 7: curl's "Failed to connect" (its text varies with the version), not 56, a reset once connected.
	[[ $status == 7 ]] || tl_fail "expected curl to fail to connect (7), got $status: $output"
	tl_wait_stat_ge "$TL_SRV_STATS" fe_streams_refused 2
	tl_wait_stat_ge "$TL_CLI_STATS" fe_streams_refused 2
	tl_assert "no stream to be left open or pending" \
		tl_wait_until 5 tl_json_test "$TL_CLI_STATS" '.fe_streams_open == 0'
}

@test "an address behind the exit that nobody has: connect() fails with EHOSTUNREACH" {
	start_proxy
	# srv's neighbour resolution gives up after 3 probes a second apart.
	run connect_errno 10.102.0.99 80
	note "connect: $output (errno, ms)"
	[[ $output == "EHOSTUNREACH "* ]] || tl_fail "expected connect() to fail with EHOSTUNREACH, got: $output"
	tl_wait_stat_ge "$TL_CLI_STATS" fe_streams_unreachable 1
}

@test "a server that speaks first: its greeting waits for the held connection's accept" {
	start_proxy
	tl_bg "$NS_DST" "$TL_TMP/greeter.log" socat TCP-LISTEN:2525,bind="$TL_DST_IN4",reuseaddr,fork \
		SYSTEM:'echo 220 greetings from dst' >/dev/null
	tl_wait_listen "$NS_DST" tcp 2525
	run n_cli timeout 10 socat -T 5 - "TCP:$TL_DST_IN4:2525" </dev/null
	[[ $status == 0 && $output == "220 greetings from dst" ]] || tl_fail "expected the greeting through the proxy, got $status: $output"
}

# srv's ip6tables refuses cleartext too: the answer crossed the tunnel.
@test "UDP over IPv6: a request and its reply through the proxy, dst sees the exit's address" {
	tl_start_tunlab_server proxy
	tl_start_tunlab_client proxy --route "$TL_IN_NET6"
	tl_bg "$NS_DST" "$TL_TMP/udp6-echo.log" \
		socat -T 10 "UDP6-RECVFROM:5030,bind=[$TL_DST_IN6],fork" SYSTEM:'echo peer=$SOCAT_PEERADDR; cat' >/dev/null
	tl_wait_listen "$NS_DST" udp 5030
	run n_cli timeout 15 socat -t 3 -T 5 - "UDP6-SENDTO:[$TL_DST_IN6]:5030" <<<"hello over udp6"
	tl_expect_contains "the UDP6 reply" "$output" "hello over udp6"
	# socat writes the address in full: fd02:...:0001 is srv's inner address, the exit's.
	[[ $output =~ peer=\[fd02:(0000:){6}0001\] ]] ||
		tl_fail "expected dst to see the exit's $TL_SRV_IN6, got: $output"
	tl_wait_stat_ge "$TL_CLI_STATS" fe_udp_flows_total 1
	tl_wait_stat_ge "$TL_SRV_STATS" fe_dgrams_out 1
	run tl_leftovers "$NS_CLI"
	tl_expect_contains "cli's state while the proxy runs" "$output" "rule6: "
	tl_expect_contains "cli's state while the proxy runs" "$output" "route6: local default dev lo table 29814"

	# Without the tunnel (srv blocks cleartext), the same request gets no answer.
	tl_stop "$TL_CLI_PID"
	TL_CLI_PID=""
	run tl_leftovers "$NS_CLI"
	[[ -z $output ]] || tl_fail "expected the proxy to remove its IPv6 rules on exit, found: $output"
	run n_cli timeout 10 socat -t 3 -T 3 - "UDP6-SENDTO:[$TL_DST_IN6]:5030" <<<"in clear"
	[[ $output != *"in clear"* ]] || tl_fail "expected no reply without the tunnel, got: $output"
}

@test "transparency loss: dst sees the server's address, ping gets no answer and is counted" {
	tl_require_tools ping
	start_proxy
	start_http
	run n_cli timeout 20 curl -sS --max-time 15 -o /dev/null -w '%{http_code}' "http://$TL_DST_IN4:8080/"
	[[ $output == 200 ]] || tl_fail "expected HTTP 200, got $status: $output"
	run cat "$TL_TMP/http.log"
	tl_expect_contains "the HTTP server's log at dst" "$output" "$TL_SRV_IN4 - -"
	[[ $output != *"$TL_TUN_CLI4"* && $output != *"$TL_CLI_UL4"* ]] ||
		tl_fail "expected dst never to see the client's address, its log: $output"
	tl_assert_not "a ping through the proxy to get an answer" tl_ping_dst 2
	# The counter is an iptables rule's, read every 2 s.
	tl_wait_stat_ge "$TL_CLI_STATS" fe_dropped_uncarried 2
}

@test "flow control: a reader that stops neither stalls other streams nor grows memory" {
	start_proxy
	tl_bg "$NS_DST" "$TL_TMP/flood.log" socat -T 30 TCP4-LISTEN:5020,reuseaddr \
		SYSTEM:'head -c 200000000 /dev/zero' >/dev/null
	tl_bg "$NS_DST" "$TL_TMP/echo.log" socat -T 10 TCP4-LISTEN:5021,reuseaddr,fork EXEC:cat >/dev/null
	tl_wait_listen "$NS_DST" tcp 5020
	tl_wait_listen "$NS_DST" tcp 5021
	# A reader that reads nothing for 20 s: socat's stdout is a pipe nobody drains.
	tl_bg "$NS_CLI" "$TL_TMP/stalled.log" sh -c \
		"socat -T 30 -u TCP4:$TL_DST_IN4:5020 - | sleep 20" >/dev/null
	tl_wait_stat_ge "$TL_SRV_STATS" fe_stream_bytes_out 200000
	local rss0 rss1
	rss0=$(awk '/VmRSS/ {print $2}' "/proc/$TL_SRV_PID/status")
	sleep 2
	run n_cli timeout 5 socat -T 3 - "TCP4:$TL_DST_IN4:5021" <<<"still flowing"
	[[ $output == "still flowing" ]] || tl_fail "expected a second stream to work beside the stalled one, got: $output"
	rss1=$(awk '/VmRSS/ {print $2}' "/proc/$TL_SRV_PID/status")
	local moved
	moved=$(tl_json_get "$TL_SRV_STATS" fe_stream_bytes_out)
	# One stalled stream may hold its window and the socket buffers, not the 200 MB.
	((moved < 20000000)) || tl_fail "expected the stalled stream to stop near its window, $moved bytes moved"
	((rss1 - rss0 < 16384)) || tl_fail "expected the server's RSS to stay flat, grew by $((rss1 - rss0)) kB"
	note "stalled stream: $moved bytes moved; server RSS ${rss1} kB"
}

# hold_streams HOST PORT N: holds N echo streams, tries one more, then checks
# that the N still echo; prints "held=N extra=ok|ERRNO still=N".
hold_streams() {
	n_cli timeout 40 python3 -c '
import errno, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def echo(s, text):
    s.sendall(text)
    got = b""
    while len(got) < len(text):
        chunk = s.recv(64)
        if not chunk:
            break
        got += chunk
    return got == text
held = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    if echo(s, b"held %d\n" % i):
        held.append(s)
try:
    extra = socket.create_connection((host, port), timeout=10)
    extra.settimeout(5)
    result = "ok" if echo(extra, b"extra\n") else "no-echo"
except OSError as e:
    result = errno.errorcode.get(e.errno, str(e))
still = sum(echo(s, b"again\n") for s in held)
print("held=%d extra=%s still=%d" % (len(held), result, still))' "$@"
}

@test "the exit's stream budget (--max-streams): one more stream is refused (limit), the open ones keep working" {
	tl_start_tunlab_server proxy --max-streams 3
	tl_start_tunlab_client proxy
	tl_bg "$NS_DST" "$TL_TMP/echo.log" socat -T 30 TCP4-LISTEN:5030,reuseaddr,fork EXEC:cat >/dev/null
	tl_wait_listen "$NS_DST" tcp 5030
	run hold_streams "$TL_DST_IN4" 5030 3
	note "$output"
	[[ $output == "held=3 extra="* ]] || tl_fail "expected three streams held, got: $output"
	[[ $output != *"extra=ok"* ]] || tl_fail "expected the fourth stream refused, got: $output"
	[[ $output == *"still=3" ]] || tl_fail "expected the three held streams to keep working, got: $output"
	tl_wait_stat_ge "$TL_SRV_STATS" fe_exit_over_budget 1
	tl_wait_stat_ge "$TL_SRV_STATS" fe_streams_limited 1
	# Once they are closed, the budget is free again.
	tl_wait_until 10 tl_json_test "$TL_SRV_STATS" '.fe_streams_open == 0' ||
		tl_fail "expected the exit's streams closed"
	run n_cli timeout 10 socat -T 5 - "TCP4:$TL_DST_IN4:5030" <<<"after"
	[[ $output == after ]] || tl_fail "expected a new stream to work once the others closed, got: $output"
}

@test "a client at --max-streams-per-client is refused (limit) while the exit has room" {
	tl_start_tunlab_server proxy --max-streams-per-client 2
	tl_start_tunlab_client proxy
	tl_bg "$NS_DST" "$TL_TMP/echo.log" socat -T 30 TCP4-LISTEN:5031,reuseaddr,fork EXEC:cat >/dev/null
	tl_wait_listen "$NS_DST" tcp 5031
	run hold_streams "$TL_DST_IN4" 5031 2
	note "$output"
	[[ $output == "held=2 extra="* && $output != *"extra=ok"* && $output == *"still=2" ]] ||
		tl_fail "expected two streams held and working, the third refused, got: $output"
	tl_wait_stat_ge "$TL_SRV_STATS" fe_streams_limited 1
	tl_assert "the exit's budget not to be what refused it" \
		tl_json_test "$TL_SRV_STATS" '.fe_exit_over_budget == 0'
}

@test "a server whose frontend carries packets refuses streams cleanly" {
	[[ -c /dev/net/tun ]] || tl_skip_env "no /dev/net/tun for the packet server"
	tl_start_tunlab_server tun
	tl_start_tunlab_client proxy
	start_http
	run n_cli timeout 10 curl -sS --max-time 5 "http://$TL_DST_IN4:8080/"
	[[ $status == 56 || $status == 7 ]] || tl_fail "expected a reset from a server without streams, got $status: $output"
	tl_wait_stat_ge "$TL_CLI_STATS" fe_streams_refused 1
	tl_assert "the session to stay up" tl_json_test "$TL_CLI_STATS" '.connected == true'
}

@test "after kill -9, tunlab cleanup removes the client's chains, fwmark rules and tables (both families)" {
	tl_start_tunlab_server proxy
	tl_start_tunlab_client proxy --route "$TL_IN_NET6"
	run tl_leftovers "$NS_CLI"
	tl_expect_contains "cli's state while the proxy runs" "$output" "iptables: "
	tl_expect_contains "cli's state while the proxy runs" "$output" "ip6tables: "
	tl_expect_contains "cli's state while the proxy runs" "$output" "rule: "
	tl_expect_contains "cli's state while the proxy runs" "$output" "rule6: "
	kill -KILL "$TL_CLI_PID"
	tl_wait_exit "$TL_CLI_PID" 5 || true
	TL_CLI_PID=""
	# Fail-closed and prompt: the orphaned SYN queue is bypassed, the orphaned REDIRECT refuses.
	run connect_errno "$TL_DST_IN4" 8080
	[[ $output == "ECONNREFUSED "* ]] || tl_fail "expected a dead proxy's rules to refuse at once, got: $output"
	run n_cli "$TUNLAB" cleanup
	[[ $status == 0 ]] || tl_fail "expected tunlab cleanup to exit 0, got $status: $output"
	tl_expect_contains "cleanup's report" "$output" "removed"
	run tl_leftovers "$NS_CLI"
	[[ -z $output ]] || tl_fail "expected nothing of the dead proxy left in cli, found: $output"
}

# The proxy's UDP after kill -9: a datagram of a flow the proxy carried and
# one of a new flow must not leave cli in clear while the dead instance's
# rules stay. The control, after tunlab cleanup, shows the capture would
# have seen them.
@test "after kill -9 the proxy's UDP does not leak: nothing to dst in clear on the underlay (old and new flows)" {
	tl_start_tunlab_server proxy
	tl_start_tunlab_client proxy
	tl_bg "$NS_DST" "$TL_TMP/udp-echo.log" socat -T 10 "UDP4-RECVFROM:5031,bind=$TL_DST_IN4,fork" SYSTEM:cat >/dev/null
	tl_wait_listen "$NS_DST" udp 5031
	run n_cli timeout 10 socat -t 2 -T 3 - "UDP4-SENDTO:$TL_DST_IN4:5031,sourceport=40031" <<<"through"
	tl_expect_contains "the UDP reply through the proxy" "$output" "through"
	kill -KILL "$TL_CLI_PID"
	tl_wait_exit "$TL_CLI_PID" 5 || true # its status: 137
	tl_assert_not "the client gone after kill -9" tl_pid_alive "$TL_CLI_PID"
	TL_CLI_PID=""

	start_capture udpleak "udp and host $TL_DST_IN4"
	echo again | n_cli timeout 3 socat -u - "UDP4-SENDTO:$TL_DST_IN4:5031,sourceport=40031" 2>/dev/null || true
	echo new | n_cli timeout 3 socat -u - "UDP4-SENDTO:$TL_DST_IN4:5031,sourceport=40032" 2>/dev/null || true
	tl_wait_exit "$TL_LAST_CAPTURE" 10 || true
	[[ -z $(packets_seen udpleak) ]] ||
		tl_fail "expected no UDP to dst in clear after kill -9, saw: $(packets_seen udpleak)"

	run n_cli "$TUNLAB" cleanup
	[[ $status == 0 ]] || tl_fail "expected tunlab cleanup to exit 0, got $status: $output"
	start_capture udpcontrol "udp and host $TL_DST_IN4"
	echo control | n_cli timeout 3 socat -u - "UDP4-SENDTO:$TL_DST_IN4:5031,sourceport=40033" 2>/dev/null || true
	tl_wait_exit "$TL_LAST_CAPTURE" 10 || true
	[[ -n $(packets_seen udpcontrol) ]] ||
		tl_fail "control: expected the datagram in clear on the underlay once the rules are gone"
}
