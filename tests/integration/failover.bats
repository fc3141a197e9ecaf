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
