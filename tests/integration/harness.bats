#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# harness.bats: the experiment harness itself: a clean topology life cycle, probes that say "no" when their path is broken on purpose, the transparency matrix's quick mode.
#
# A transparency cell is only worth something if its probe can fail: here
# each probe runs against the plain system (srv routes cli <-> dst, no
# tunnel), once as it is and once with exactly the property it checks
# broken by a netfilter rule, and must change its verdict. About a minute.
#
#   TUNLAB=build/tunlab bats tests/integration/harness.bats

load helpers

setup() {
	tl_require_net
	tl_require_tools tcpdump ping ss python3 iptables
	if [[ $BATS_TEST_DESCRIPTION == *quick* ]]; then
		tl_test_setup --no-topology
	else
		tl_test_setup
	fi
	# A packet crosses these namespaces in microseconds: 1 s is ample.
	export PROBE_WAIT=1
	# shellcheck source=../../experiments/lib/systems.sh
	source "$TL_REPO/experiments/lib/systems.sh"
	# shellcheck source=../../experiments/lib/probes.sh
	source "$TL_REPO/experiments/lib/probes.sh"
	sys_reset
	PROBE_SYS=plain PROBE_OUT=$TL_TMP/verdict PROBE_SNAP=$TL_TMP/snap
	PROBE_N=0
}

teardown() {
	tl_test_teardown
}

# probe ID: runs probe ID against whatever carries cli's traffic now;
# PROBE_RESULT and PROBE_REASON hold its verdict.
probe() {
	local id=$1 fn
	fn=$(probe_select "$id" | awk '{ print $2 }')
	PROBE_N=$((PROBE_N + 1))
	PROBE_ID=$id PROBE_EV=$TL_TMP/$id.$PROBE_N.txt PROBE_WORK=$TL_TMP/work-$id-$PROBE_N
	probe_run "$fn"
}

# expect_probe ID RESULT WHY: probe ID must say RESULT; on failure the
# evidence file is shown.
expect_probe() {
	local id=$1 want=$2 why=$3
	probe "$id"
	[[ $PROBE_RESULT == "$want" ]] && return 0
	cat "$PROBE_EV" >&2
	tl_fail "expected probe $id to say '$want' $why; it said '$PROBE_RESULT': $PROBE_REASON"
}

# in NS CMD...: a rule that breaks something, echoed as the suite runs.
in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

@test "harness: topology up, probes run, topology down: no namespace, process, root link or rule left" {
	local root_fw root_links pid start
	root_fw=$(iptables-save 2>/dev/null | grep -c '^-A' || true)
	root_links=$(ip -o link show | wc -l)
	expect_probe tcp yes "on the plain path"
	expect_probe flow-state yes "on the plain path (srv only forwards)"
	cp "$TL_TMP/pids" "$BATS_TEST_TMPDIR/pids"
	[[ $(wc -l <"$BATS_TEST_TMPDIR/pids") -ge 4 ]] || tl_fail "expected the probes to have started their helpers"
	tl_cleanup
	for ns in "$NS_CLI" "$NS_SRV" "$NS_DST"; do
		! tl_ns_exists "$ns" || tl_fail "expected namespace $ns deleted"
	done
	while read -r pid start; do
		[[ $(tl_proc_start "$pid" 2>/dev/null) != "$start" ]] || tl_fail "expected pid $pid (a probe's helper) gone"
	done <"$BATS_TEST_TMPDIR/pids"
	[[ $(iptables-save 2>/dev/null | grep -c '^-A' || true) == "$root_fw" ]] ||
		tl_fail "expected the root namespace's iptables rules untouched"
	[[ $(ip -o link show | wc -l) == "$root_links" ]] || tl_fail "expected no link added to the root namespace"
}

@test "harness: the ICMP probe says no when dst drops echo requests" {
	expect_probe icmp yes "on the plain path"
	in_ns "$NS_DST" iptables -I INPUT -p icmp --icmp-type echo-request -j DROP
	expect_probe icmp no "with dst dropping echo requests"
	tl_expect_contains "the reason" "$PROBE_REASON" "no reply came back"
}

@test "harness: the protocol-253 probe says no when dst drops protocol 253, though tcpdump sees it arrive" {
	expect_probe proto253 yes "on the plain path"
	in_ns "$NS_DST" iptables -I INPUT -p 253 -j DROP
	expect_probe proto253 no "with dst dropping protocol 253 in INPUT"
	tl_expect_contains "the reason" "$PROBE_REASON" "dst's stack delivered none"
	in_ns "$NS_SRV" iptables -I FORWARD -p 253 -j DROP
	expect_probe proto253 no "with srv dropping protocol 253 on the way"
	tl_expect_contains "the reason" "$PROBE_REASON" "no protocol-253 packet reached dst"
}

# Each row: probe, the namespace and rule that break what it checks, the
# verdict then expected. The rules stay until the row has run and are
# deleted after; conntrack-using rules come last (they switch on
# defragmentation in srv, which would hide the fragment rule).
@test "harness: every other probe changes its verdict when its property is broken on purpose" {
	local -a rows=(
		"tcp        dst  no      -A INPUT -p tcp --dport $PROBE_TCP_PORT -j DROP"
		"udp        dst  no      -A INPUT -p udp --dport $PROBE_UDP_PORT -j DROP"
		"ttl        srv  no      -t mangle -A FORWARD -j TTL --ttl-set 64"
		"dscp       srv  no      -t mangle -A FORWARD -j DSCP --set-dscp 0"
		"ecn        srv  no      -t mangle -A FORWARD -p tcp -j ECN --ecn-tcp-remove"
		"ecn-ce     srv  no      -t mangle -A POSTROUTING -o $TL_IN_IF -j TOS --set-tos 0x00/0x03"
		"frag       srv  no      -A FORWARD -f -j DROP"
		"pmtu       srv  no      -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP"
		"inbound    cli  no      -A INPUT -p tcp --dport $PROBE_IN_PORT -j DROP"
		"ipv6       dst  no      -6 -A INPUT -p icmpv6 --icmpv6-type echo-request -j DROP"
		"src-addr   srv  no      -t nat -A POSTROUTING -o $TL_IN_IF -j MASQUERADE"
		"flow-state srv  partial -A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT"
	)
	local row id where want ns tool rule_text
	local -a rule
	for row in "${rows[@]}"; do
		read -r id where want rule_text <<<"$row"
		read -r -a rule <<<"$rule_text"
		ns=$(case $where in cli) echo "$NS_CLI" ;; srv) echo "$NS_SRV" ;; dst) echo "$NS_DST" ;; esac)
		tool=iptables
		[[ ${rule[0]} == -6 ]] && { tool=ip6tables; rule=("${rule[@]:1}"); }
		# The quick-mode test below sees those probes say yes on plain.
		[[ ,$PROBE_QUICK, == *",$id,"* ]] ||
			expect_probe "$id" yes "on the plain path, before '$rule_text' in $where"
		in_ns "$ns" "$tool" -w 5 "${rule[@]}"
		expect_probe "$id" "$want" "with '$rule_text' in $where"
		in_ns "$ns" "$tool" -w 5 "${rule[@]/-A/-D}"
	done
}

@test "harness: the leak probe tells fail-closed from leaking" {
	expect_probe leak no "on the plain path (no tunnel: everything in clear)"
	# A stand-in tunnel process; cli's own firewall keeps dst's traffic in
	# while it runs and after it dies, as a fail-closed system would.
	tl_bg "$NS_CLI" "$TL_TMP/stand-in.log" sleep 60 >/dev/null
	SYS_PIDS="client=$TL_LAST_PID"
	in_ns "$NS_CLI" iptables -A OUTPUT -d "$TL_DST_IN4" -j DROP
	in_ns "$NS_CLI" ip6tables -A OUTPUT -d "$TL_DST_IN6" -j DROP
	expect_probe leak yes "with cli dropping everything to dst"
	tl_assert_not "the stand-in killed" tl_pid_alive "$TL_LAST_PID"
	# A client already dead before the kill proves nothing: not "yes".
	expect_probe leak no "with the client already dead before the kill"
	tl_expect_contains "the reason" "$PROBE_REASON" "already dead before the kill"
}

@test "harness: transparency --quick writes a CSV row per system and probe, evidence and tables" {
	tl_require_tunlab
	# Braces on purpose: tests/run repeats, on the sanitizer build, the suites
	# that name the bare variable; this one's other tests never start tunlab.
	[[ ${TUNLAB} != */san/* ]] || tl_skip_design "the matrix runs on the normal build only (tunnel.bats covers the sanitizer build)"
	local results=$BATS_TEST_TMPDIR/results
	run timeout 120 "$TL_REPO/experiments/transparency" --tunlab "${TUNLAB}" --quick --results "$results"
	echo "$output" | tail -n 20
	((status == 0)) || tl_fail "expected transparency --quick to exit 0, got $status"
	local csv=$results/transparency.csv
	[[ $(head -n 1 "$csv") == "system,probe,result,reason,evidence" ]] ||
		tl_fail "expected the CSV header, got: $(head -n 1 "$csv")"
	local sys id result reason evidence n=0
	local -a probes
	IFS=, read -r -a probes <<<"$PROBE_QUICK"
	for sys in plain tun; do
		for id in "${probes[@]}"; do
			grep -q "^$sys,$id," "$csv" || tl_fail "expected a row for ($sys, $id)"
		done
	done
	while IFS=, read -r sys id result reason evidence; do
		n=$((n + 1))
		[[ $result =~ ^(yes|no|partial|info)$ ]] || tl_fail "expected a verdict in row $n, got '$result': $reason"
		[[ -n $reason ]] || tl_fail "expected a reason in row $n ($sys, $id)"
		[[ -s $results/$evidence ]] || tl_fail "expected the evidence file $evidence"
		[[ $sys != plain || $result == yes ]] || tl_fail "expected plain to pass $id: $reason"
	done < <(tail -n +2 "$csv")
	((n == 2 * ${#probes[@]})) || tl_fail "expected $((2 * ${#probes[@]})) rows, got $n"
	grep -q '^date: ' "$results/transparency.meta" || tl_fail "expected a date in the metadata"
	grep -q '^commit: ' "$results/transparency.meta" || tl_fail "expected a commit in the metadata"
	grep -q '^| probe | plain | tun |$' "$results/transparency.md" || tl_fail "expected the Markdown table's header"
	grep -q '^\\toprule' "$results/transparency.tex" || tl_fail "expected a booktabs tabular"
	[[ $(grep -c ' & ' "$results/transparency.tex") == $((${#probes[@]} + 1)) ]] ||
		tl_fail "expected a LaTeX row per probe plus the header"
	run "$TL_REPO/experiments/transparency" --probes no-such-probe
	((status == 2)) || tl_fail "expected an unknown probe to be refused with status 2, got $status"
}
