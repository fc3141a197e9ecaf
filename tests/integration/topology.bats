#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# topology.bats: tests of experiments/lib/netns.sh and mkpki themselves; no tunlab needed.
#
# Each check here is shown to be able to fail: the cleartext block must make a
# ping fail, tl_leftovers must report planted state, the kill helpers must
# spare a process we did not start.

load helpers

setup_file() {
	tl_suite_setup
}

setup() {
	case $BATS_TEST_DESCRIPTION in
	lib:* | mkpki:*) tl_test_setup --no-topology ;;
	*) tl_test_setup ;;
	esac
}

teardown() {
	tl_test_teardown
}

@test "topology: three namespaces, cli reaches dst through srv in clear (v4 and v6)" {
	for ns in "$NS_CLI" "$NS_SRV" "$NS_DST"; do
		tl_assert "namespace $ns to exist" tl_ns_exists "$ns"
	done
	tl_assert "cli to ping dst (IPv4) with no block in place" tl_ping_dst 1
	tl_assert "cli to ping dst (IPv6) with no block in place" \
		n_cli ping -6 -n -q -c 1 -W 1 "$TL_DST_IN6"
	run n_dst ip -o -4 addr show dev "$TL_IN_IF"
	tl_expect_contains "dst's inner address" "$output" "$TL_DST_IN4/24"
	run n_srv sysctl -n net.ipv4.ip_forward
	[[ $output == 1 ]] || tl_fail "expected ip_forward=1 in srv, got '$output'"
	run n_cli sysctl -n net.ipv4.ip_forward
	[[ $output == 0 ]] || tl_fail "expected ip_forward=0 in cli, got '$output'"
}

@test "topology: cli's default route points at srv (where a dead tunnel leaks)" {
	# route get computes a route; it sends nothing.
	run n_cli ip route get 192.0.2.1
	tl_expect_contains "cli's route to an outside address" "$output" "via $TL_SRV_UL4 dev $TL_UL_IF"
	run n_dst ip route get 192.0.2.1
	tl_expect_contains "dst's route to an outside address" "$output" "via $TL_SRV_IN4 dev $TL_IN_IF"
}

@test "topology: tl_block_cleartext makes a cleartext ping cli->dst fail" {
	tl_block_cleartext
	tl_assert_not "the cleartext IPv4 ping cli->dst to be dropped by srv" tl_ping_dst 1
	tl_assert_not "the cleartext IPv6 ping cli->dst to be dropped by srv" \
		n_cli ping -6 -n -q -c 1 -W 1 "$TL_DST_IN6"
	# srv itself still reaches both sides: only forwarding is blocked.
	tl_assert "srv to ping dst" n_srv ping -n -q -c 1 -W 1 "$TL_DST_IN4"
	tl_assert "cli to ping srv" n_cli ping -n -q -c 1 -W 1 "$TL_SRV_UL4"
	tl_unblock_cleartext
	tl_assert "the ping cli->dst to pass again after tl_unblock_cleartext" tl_ping_dst 1
}

@test "topology: tl_leftovers is empty on a clean topology and reports planted tunlab state" {
	[[ -z $(tl_leftovers "$NS_CLI") ]] || tl_fail "expected no leftovers in a fresh cli: $(tl_leftovers "$NS_CLI")"
	tl_block_cleartext
	[[ -z $(tl_leftovers "$NS_SRV") ]] || tl_fail "expected the cleartext block not to count as a leftover"
	# Plant what a crashed tunlab could leave: a device, a proto-77 route, a rule.
	n_cli ip link add tunlab999 type veth peer name tlpeer999
	n_cli ip link set tunlab999 up
	n_cli ip route add 10.250.0.0/24 dev tunlab999 proto 77
	n_cli iptables -w 5 -A OUTPUT -d 10.250.0.0/24 -m comment --comment tunlab-test -j ACCEPT
	run tl_leftovers "$NS_CLI"
	tl_expect_contains "leftovers" "$output" "link: "
	tl_expect_contains "leftovers" "$output" "route: 10.250.0.0/24 dev tunlab999"
	tl_expect_contains "leftovers" "$output" "iptables: "
	n_cli iptables -w 5 -D OUTPUT -d 10.250.0.0/24 -m comment --comment tunlab-test -j ACCEPT
	n_cli ip link del tunlab999
	[[ -z $(tl_leftovers "$NS_CLI") ]] || tl_fail "expected no leftovers after removing the planted state"
}

@test "topology: tl_topology_down is idempotent and leaves no namespace or root iptables rule" {
	local before
	before=$(iptables-save 2>/dev/null | grep -v '^#' | grep -c "$TL_BLOCK_COMMENT" || true)
	tl_block_cleartext
	tl_topology_down
	tl_topology_down
	for ns in "$NS_CLI" "$NS_SRV" "$NS_DST"; do
		! tl_ns_exists "$ns" || tl_fail "expected $ns deleted"
	done
	run ip netns list
	[[ $output != *"-$TL_ID"* ]] || tl_fail "expected no namespace of run $TL_ID in: $output"
	local after
	after=$(iptables-save 2>/dev/null | grep -v '^#' | grep -c "$TL_BLOCK_COMMENT" || true)
	[[ $before == "$after" ]] || tl_fail "expected the root namespace's iptables untouched ($before vs $after rules)"
	run ip -o link show
	[[ $output != *"$TL_UL_IF@"* && $output != *"$TL_IN_IF@"* ]] || tl_fail "expected no veth end in the root namespace"
}

@test "topology: tl_wait_listen sees TCP and UDP listeners and gives up on a closed port" {
	tl_require_tools socat
	tl_bg "$NS_DST" "$TL_TMP/tcp.log" socat TCP4-LISTEN:5001,reuseaddr SYSTEM:'echo peer=$SOCAT_PEERADDR; cat' >/dev/null
	tl_bg "$NS_DST" "$TL_TMP/udp.log" socat UDP4-RECVFROM:5002 SYSTEM:'cat' >/dev/null
	tl_wait_listen "$NS_DST" tcp 5001 5
	tl_wait_listen "$NS_DST" udp 5002 5
	run tl_wait_listen "$NS_DST" tcp 5999 1
	[[ $status != 0 ]] || tl_fail "expected tl_wait_listen to fail on a port nobody listens on"
	tl_expect_contains "the failure message" "$output" "expected a tcp listener on port 5999"
	run n_srv socat -t 2 -T 5 - TCP4:"$TL_DST_IN4:5001" <<<"hello"
	tl_expect_contains "the echo from dst" "$output" "peer=$TL_SRV_IN4"
	tl_expect_contains "the echo from dst" "$output" "hello"
}

@test "lib: tl_kill_started kills only what we started, SIGKILL after a bounded wait" {
	# Not ours: started directly, must survive.
	sleep 60 </dev/null >/dev/null 2>&1 3>&- &
	local foreign=$!
	# Ours (one started from a $(...) subshell), and one that ignores SIGTERM.
	local ours stubborn
	ours=$(tl_bg - "$TL_TMP/s1.log" sleep 60)
	tl_bg - "$TL_TMP/s2.log" bash -c 'trap "" TERM; exec sleep 60' >/dev/null
	stubborn=$TL_LAST_PID
	tl_assert "pid $ours recorded as ours" tl_pid_ours "$ours"
	tl_assert_not "a process we did not start to count as ours" tl_pid_ours "$foreign"
	TL_KILL_TIMEOUT=1
	local t0=$(tl_now_ms)
	tl_kill_started
	local took=$(($(tl_now_ms) - t0))
	tl_assert_not "pid $ours killed" tl_pid_alive "$ours"
	tl_assert_not "pid $stubborn (ignores SIGTERM) killed" tl_pid_alive "$stubborn"
	tl_assert "the process we did not start to survive" tl_pid_alive "$foreign"
	((took < 5000)) || tl_fail "expected tl_kill_started bounded to a few seconds, took ${took} ms"
	kill "$foreign"
	wait "$foreign" 2>/dev/null || true
}

@test "lib: tl_wait_until is bounded and tl_stop returns the exit status" {
	local t0=$(tl_now_ms)
	run tl_wait_until 1 false
	[[ $status != 0 ]] || tl_fail "expected tl_wait_until 1 false to fail"
	local took=$(($(tl_now_ms) - t0))
	((took >= 900 && took < 3000)) || tl_fail "expected about 1 s, took $took ms"
	tl_assert "tl_wait_until to succeed at once on true" tl_wait_until 1 true
	tl_bg - "$TL_TMP/s.log" sleep 60 >/dev/null
	local pid=$TL_LAST_PID
	tl_stop "$pid" TERM 5 || true
	[[ $TL_STOP_STATUS == 143 ]] || tl_fail "expected status 143 (SIGTERM) from sleep, got $TL_STOP_STATUS"
}

@test "lib: the teardown's sanitizer check finds a report in a daemon log" {
	local -a errs=()
	echo "1795000000.000 tunlab server[1] info: listening" >"$TL_TMP/server.log"
	tl_teardown_san_check errs
	((${#errs[@]} == 0)) || tl_fail "expected a clean log to pass: ${errs[*]}"
	printf '%s\n' "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1" \
		"    #0 0x1 in frame_parse tunnel/frame.c:42" >"$TL_TMP/client.log"
	tl_teardown_san_check errs
	((${#errs[@]} == 1)) || tl_fail "expected one sanitizer finding, got ${#errs[@]}"
	tl_expect_contains "the finding" "${errs[0]}" "frame_parse"
	rm -f "$TL_TMP/client.log"
}

@test "lib: tl_json_get reads the last complete line" {
	local f=$TL_TMP/stats.jsonl
	printf '%s\n' '{"event":"interval","connected":false,"tx_packets":1}' \
		'{"event":"interval","connected":true,"tx_packets":7}' >"$f"
	printf '%s' '{"event":"interval","connected":fa' >>"$f" # a writer half-way through
	run tl_json_get "$f" tx_packets
	[[ $status == 0 && $output == 7 ]] || tl_fail "expected tx_packets 7, got status $status '$output'"
	run tl_json_get "$f" connected
	[[ $output == true ]] || tl_fail "expected connected true, got '$output'"
	run tl_json_get "$f" no_such_key
	[[ $status != 0 ]] || tl_fail "expected a missing key to fail"
	tl_assert "jq test on the last line" tl_json_test "$f" '.tx_packets >= 7'
	tl_assert_not "a false jq test to fail" tl_json_test "$f" '.tx_packets > 7'
	run tl_json_get "$TL_TMP/missing.jsonl" tx_packets
	[[ $status != 0 ]] || tl_fail "expected a missing file to fail"
}

@test "mkpki: CA, server and client certs verify; idempotent; another CA's cert does not verify" {
	local d=$TL_TMP/pki
	run "$TL_MKPKI" "$d" alice
	[[ $status == 0 ]] || tl_fail "mkpki failed: $output"
	tl_expect_contains "mkpki's report" "$output" "alice.crt"
	for f in ca server alice; do
		[[ -s $d/$f.crt && -s $d/$f.key ]] || tl_fail "expected $d/$f.crt and .key"
		[[ $(stat -c %a "$d/$f.key") == 600 ]] || tl_fail "expected $f.key mode 600"
	done
	run openssl verify -CAfile "$d/ca.crt" -purpose sslserver "$d/server.crt"
	[[ $status == 0 ]] || tl_fail "expected server.crt valid for serverAuth: $output"
	run openssl verify -CAfile "$d/ca.crt" -purpose sslclient "$d/alice.crt"
	[[ $status == 0 ]] || tl_fail "expected alice.crt valid for clientAuth: $output"
	run openssl verify -CAfile "$d/ca.crt" -purpose sslserver "$d/alice.crt"
	[[ $status != 0 ]] || tl_fail "expected a client cert to be refused as a server cert"
	run openssl x509 -in "$d/server.crt" -noout -ext subjectAltName
	tl_expect_contains "server SAN" "$output" "DNS:server"
	tl_expect_contains "server SAN" "$output" "IP Address:10.101.0.1"
	local sum1 sum2
	sum1=$(cat "$d"/* | sha256sum)
	run "$TL_MKPKI" "$d" alice
	[[ $status == 0 && -z $output ]] || tl_fail "expected a second run to make nothing, got: $output"
	sum2=$(cat "$d"/* | sha256sum)
	[[ $sum1 == "$sum2" ]] || tl_fail "expected a second run to change no file"
	run openssl verify -CAfile "$TL_BAD_PKI/ca.crt" "$d/alice.crt"
	[[ $status != 0 ]] || tl_fail "expected a cert of one CA not to verify against another CA"
}

@test "mkpki: --revoke and --crl make a CRL that refuses only the revoked; --multi-cn has two CNs" {
	local d=$TL_TMP/pki
	run "$TL_MKPKI" "$d" alice
	[[ ! -e $d/crl.pem ]] || tl_fail "expected no CRL unless asked for"
	run "$TL_MKPKI" "$d" --crl
	[[ $status == 0 && -s $d/crl.pem ]] || tl_fail "expected --crl to write crl.pem: $output"
	run openssl verify -crl_check -CAfile "$d/ca.crt" -CRLfile "$d/crl.pem" "$d/alice.crt"
	[[ $status == 0 ]] || tl_fail "expected alice to pass an empty CRL: $output"
	run "$TL_MKPKI" "$d" --revoke bob --multi-cn twocn
	[[ $status == 0 ]] || tl_fail "mkpki --revoke failed: $output"
	tl_expect_contains "mkpki's report" "$output" "revoked $d/bob.crt"
	run openssl verify -crl_check -CAfile "$d/ca.crt" -CRLfile "$d/crl.pem" "$d/bob.crt"
	[[ $status != 0 && $output == *"certificate revoked"* ]] || tl_fail "expected bob revoked: $output"
	run openssl verify -crl_check -CAfile "$d/ca.crt" -CRLfile "$d/crl.pem" "$d/alice.crt"
	[[ $status == 0 ]] || tl_fail "expected alice still valid: $output"
	run "$TL_MKPKI" "$d" --revoke bob
	[[ $status == 0 && $output != *revoked* ]] || tl_fail "expected a second --revoke to revoke nothing again: $output"
	run openssl x509 -in "$d/twocn.crt" -noout -subject
	tl_expect_contains "twocn's subject" "$output" "CN = twocn, CN = twocn-2"
}
