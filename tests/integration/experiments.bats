#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# experiments.bats: each performance experiment in --quick mode on plain and tun: tidy CSV, metadata, raw output, plots.
#
# About two minutes in all (129 s on 2 cores at load 10-14, 2026-12-06). The numbers are not judged (other tests may run
# beside these on the same cores); their form is: the CSV header, six
# fields a row, every value a number >= 0, the experiment's main metric
# > 0 for each system it applies to, no failed test in the metadata, no
# namespace left behind.
#
#   TUNLAB=build/tunlab bats tests/integration/experiments.bats

load helpers

setup_file() {
	export EXP_RESULTS="$BATS_FILE_TMPDIR/results"
	mkdir -p "$EXP_RESULTS/plots"
	cp "$TL_REPO"/results/plots/*.gp "$TL_REPO"/results/plots/*.gpi "$EXP_RESULTS/plots/"
}

setup() {
	# Set first: teardown runs after a skip too, and must only look for
	# this test's namespaces, never another run's.
	export TL_NS_PREFIX="tlexp$$-$BATS_TEST_NUMBER"
	# The harness measures; the sanitizer build's daemons would only make
	# the same checks slower.
	[[ $TUNLAB != */san/* ]] || tl_skip_design "measurement harness: runs on the normal build only"
	tl_require_tunlab
	tl_require_net
	tl_require_frontend
	tl_require_tools iperf3 jq ping stdbuf
	# The experiments name their namespaces PREFIX-cli-PID...: the prefix
	# set above tells this test's leftovers from other runs' namespaces.
}

teardown() {
	local left
	left=$(ip netns list | awk -v p="$TL_NS_PREFIX-" 'index($1, p) == 1 { print $1 }')
	[[ -z $left ]] || tl_fail "expected the experiment to delete its namespaces, left: $left"
}

# run_experiment NAME [flags...]: --quick on plain and tun into EXP_RESULTS.
run_experiment() {
	local name=$1
	shift
	run timeout 150 "$TL_REPO/experiments/$name" --tunlab "$TUNLAB" --quick \
		--systems plain,tun --results "$EXP_RESULTS" "$@"
	echo "$output" | tail -n 25
	((status == 0)) || tl_fail "expected experiments/$name --quick to exit 0, got $status"
}

# check_data NAME METRIC SYSTEM...: the files and their form; METRIC > 0 for each SYSTEM.
check_data() {
	local name=$1 metric=$2 csv meta system bad
	shift 2
	csv=$EXP_RESULTS/$name.csv meta=$EXP_RESULTS/$name.meta
	[[ -s $csv ]] || tl_fail "expected $csv"
	[[ $(head -n 1 "$csv") == "system,parameter,metric,value,unit,repetition" ]] ||
		tl_fail "expected the tidy header in $csv, got: $(head -n 1 "$csv")"
	# A margin may be negative (acquire's beyond_setup_rtt_ms: first datagram
	# minus set-up and one RTT, whose goal is <= 0); every other value not.
	bad=$(awk -F, -v signed=" beyond_setup_rtt_ms " 'NR > 1 && (NF != 6 || $6 !~ /^[0-9]+$/ ||
		$4 !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ || ($4 ~ /^-/ && index(signed, " " $3 " ") == 0))' "$csv" | head -n 3)
	[[ -z $bad ]] || tl_fail "expected 6 fields and a number in every row of $csv (>= 0 but for a margin), got: $bad"
	for system in "$@"; do
		awk -F, -v s="$system" -v m="$metric" '$1 == s && $3 == m && $4 > 0 { found = 1 } END { exit !found }' "$csv" ||
			tl_fail "expected a $metric > 0 for $system in $csv"
	done
	grep -q '^repetitions: 1$' "$meta" || tl_fail "expected 'repetitions: 1' in $meta"
	grep -q '^commit: ' "$meta" || tl_fail "expected the commit in $meta"
	! grep -q '^failed\.' "$meta" || tl_fail "expected no failed test, $meta says: $(grep '^failed\.' "$meta")"
	[[ -n $(ls -A "$EXP_RESULTS/raw/$name" 2>/dev/null) ]] || tl_fail "expected raw output in raw/$name/"
}

# check_sched NAME PARAM SYSTEM: the scheduler rows (meas_sched_rows) of
# SYSTEM's phase PARAM: the machine's idle share a percentage, and both
# tunnel ends measured, each waiting for a CPU a share of the time in [0, 100].
check_sched() {
	local csv=$EXP_RESULTS/$1.csv
	awk -F, -v s="$3" -v p="$2" '$1 == s && $2 == p && $3 == "machine_idle" && $4 >= 0 && $4 <= 100 { f = 1 } END { exit !f }' "$csv" ||
		tl_fail "expected a machine_idle share in [0, 100] for $3 ($2) in $csv"
	awk -F, -v s="$3" -v p="$2" '$1 == s && $2 == p && $3 ~ /^(client|server)_wait_share$/ && $4 >= 0 && $4 <= 100 { n++ }
		END { exit n != 2 }' "$csv" || tl_fail "expected client and server wait shares in [0, 100] for $3 ($2) in $csv: $(grep "^$3,$2,.*wait" "$csv")"
}

@test "experiments: throughput --quick: 1 and 4 streams, CPU per GB for tun" {
	run_experiment throughput
	check_data throughput throughput plain tun
	grep -q '^tun,streams=4,throughput,' "$EXP_RESULTS/throughput.csv" || tl_fail "expected a streams=4 row for tun"
	check_data throughput cpu_client tun
	check_data throughput cpu_server tun
}

@test "experiments: pktrate --quick: a rate found at < 1% loss" {
	run_experiment pktrate
	check_data pktrate max_pps plain tun
	check_data pktrate delivered_pps plain tun
}

@test "experiments: the default selection leaves out EXP_DEFAULT_EXCLUDE, says so, and --systems brings it back" {
	run bash -c '
		cd "$1"
		source experiments/lib/netns.sh
		source experiments/lib/systems.sh
		source experiments/lib/measure.sh
		EXP_NAME=selection EXP_DEFAULT_EXCLUDE=pcap-inject
		source experiments/lib/experiment.sh
		EXP_SYSTEMS=all
		echo "default: $(exp_default_selection "$(sys_select all)" | cut -d" " -f1 | tr "\n" " ")"
		exp_default_selection "$(sys_select all)" --why
		EXP_SYSTEMS=pcap,pcap-inject
		echo "named: $(exp_default_selection "$(sys_select pcap,pcap-inject)" | cut -d" " -f1 | tr "\n" " ")"
	' _ "$TL_REPO"
	echo "$output"
	((status == 0)) || tl_fail "expected the selection to work, exit $status"
	local default named
	default=$(grep '^default: ' <<<"$output")
	named=$(grep '^named: ' <<<"$output")
	tl_expect_contains "the default selection" "$default" " pcap "
	[[ $default != *pcap-inject* ]] || tl_fail "expected pcap-inject left out by default, got: $default"
	grep -q '^excluded.pcap-inject: not in the default run' <<<"$output" ||
		tl_fail "expected an excluded.pcap-inject line for the metadata"
	tl_expect_eq "the named selection" "$named" "named: pcap pcap-inject "
}

@test "experiments: pktrate --reps 2: both repetitions on one start, the second refining the first" {
	run timeout 150 "$TL_REPO/experiments/pktrate" --tunlab "$TUNLAB" --reps 2 --seconds 1 \
		--steps 2 --systems tun --results "$EXP_RESULTS/twice"
	echo "$output" | tail -n 12
	((status == 0)) || tl_fail "expected experiments/pktrate --reps 2 to exit 0, got $status"
	local csv=$EXP_RESULTS/twice/pktrate.csv starts first_best second_first
	grep -q '^repetitions per system start: 5$' "$EXP_RESULTS/twice/pktrate.meta" ||
		tl_fail "expected 'repetitions per system start: 5' in the metadata"
	# One test (one start) measured both repetitions.
	starts=$(grep -c '^\[pktrate\] tun rep 1-2/2, test 1/1 ' <<<"$output" || true)
	tl_expect_eq "tests (system starts) for tun's two repetitions" "$starts" 1
	first_best=$(awk -F, '$1 == "tun" && $3 == "max_pps" && $6 == 1 { print $4 }' "$csv")
	second_first=$(awk -F, '$1 == "tun" && $3 == "sent_pps" && $6 == 2 { sub(/offered_pps=/, "", $2); print $2; exit }' "$csv")
	[[ -n $first_best && $first_best -gt 0 ]] || tl_fail "expected a max_pps > 0 for repetition 1, got '$first_best'"
	tl_expect_eq "repetition 2's first offered rate (repetition 1's result)" "$second_first" "$first_best"
	[[ $(awk -F, '$1 == "tun" && $3 == "max_pps" && $6 == 2' "$csv" | wc -l) == 1 ]] ||
		tl_fail "expected one max_pps row for repetition 2"
}

@test "experiments: rtt --quick: ping samples and tcp_rr transactions" {
	run_experiment rtt
	check_data rtt rtt plain tun
	check_data rtt rr_rate plain tun
	check_data rtt rr_p99_us plain tun
	check_sched rtt size=1 tun
	awk -F, '$1 == "tun" && $3 ~ /^(client|server)_runs_per_event$/ && $4 > 0 { n++ } END { exit n != 2 }' \
		"$EXP_RESULTS/rtt.csv" || tl_fail "expected tun's ends scheduled in > 0 times per transaction: $(grep '^tun,.*_per_event' "$EXP_RESULTS/rtt.csv")"
}

@test "experiments: rrul --quick: RTT idle and under load" {
	run_experiment rrul
	check_data rrul rtt plain tun
	grep -q '^tun,load,rtt,' "$EXP_RESULTS/rrul.csv" || tl_fail "expected RTT samples under load for tun"
	check_sched rrul load tun
	check_sched rrul idle tun
}

@test "experiments: setup --quick: start to first echo (plain does not apply)" {
	run_experiment setup
	check_data setup setup_ms tun
	grep -q '^not-applicable.plain: ' "$EXP_RESULTS/setup.meta" || tl_fail "expected plain marked not applicable"
}

@test "experiments: acquire --quick: a burst from a lazy tun's cold start arrives whole, the connect without a SYN retransmitted" {
	tl_require_tools python3
	run_experiment acquire
	check_data acquire first_ms tun
	local row
	for row in "tun,burst,received,100," "tun,burst,connect_ok,1," "tun,burst,syn_retrans,0,"; do
		grep -q "^$row" "$EXP_RESULTS/acquire.csv" || tl_fail "expected a row $row... in acquire.csv: $(grep '^tun,' "$EXP_RESULTS/acquire.csv")"
	done
	grep -q '^not-applicable.plain: ' "$EXP_RESULTS/acquire.meta" || tl_fail "expected plain marked not applicable"
	# The set-up the burst triggered and the goal's margin: first - (set-up + 1 RTT).
	local est beyond
	est=$(awk -F, '$1 == "tun" && $3 == "established_ms" { print $4 }' "$EXP_RESULTS/acquire.csv")
	beyond=$(awk -F, '$1 == "tun" && $3 == "beyond_setup_rtt_ms" { print $4 }' "$EXP_RESULTS/acquire.csv")
	[[ -n $est && -n $beyond ]] || tl_fail "expected established_ms and beyond_setup_rtt_ms rows for tun: $(grep '^tun,' "$EXP_RESULTS/acquire.csv")"
	awk -v e="$est" 'BEGIN { exit !(e > 0 && e < 8000) }' || tl_fail "expected the set-up within the receiver's 8 s bound, got $est ms"
}

@test "experiments: crossing --quick: bursts and policy loads racing a lazy tun's set-up: no duplicate session, nothing in clear" {
	tl_require_tools python3 tcpdump
	run_experiment crossing
	check_data crossing rounds tun
	grep -q '^tun,race,dup_sessions,0,' "$EXP_RESULTS/crossing.csv" || tl_fail "expected 0 duplicate sessions: $(grep '^tun,' "$EXP_RESULTS/crossing.csv")"
	grep -q '^tun,race,cleartext,0,' "$EXP_RESULTS/crossing.csv" || tl_fail "expected 0 packets in clear: $(grep '^tun,' "$EXP_RESULTS/crossing.csv")"
	grep -q '^tun,race,reload_refused,0,' "$EXP_RESULTS/crossing.csv" || tl_fail "expected every policy load taken"
	# The control: without the client the same burst is seen in clear, so the 0 above means something.
	grep -q '^tun,control,control_cleartext,20,' "$EXP_RESULTS/crossing.csv" ||
		tl_fail "expected the control burst (20) seen in clear: $(grep '^tun,control' "$EXP_RESULTS/crossing.csv")"
	# A reload under a running iperf3: both loads taken, a figure for the lowest interval.
	grep -q '^tun,reload,reload_flow_loads,2,' "$EXP_RESULTS/crossing.csv" ||
		tl_fail "expected both loads under iperf3 taken: $(grep '^tun,reload' "$EXP_RESULTS/crossing.csv")"
	grep -q '^tun,reload,reload_flow_min,[0-9.]*,' "$EXP_RESULTS/crossing.csv" ||
		tl_fail "expected the lowest interval's ratio: $(grep '^tun,reload' "$EXP_RESULTS/crossing.csv")"
	grep -q '^tun,reload,reload_flow_ok,[01],' "$EXP_RESULTS/crossing.csv" || tl_fail "expected a reload_flow_ok row"
}

@test "experiments: flows --quick: throughput against parallel flows" {
	run_experiment flows
	check_data flows throughput plain tun
	grep -q '^tun,streams=64,throughput,' "$EXP_RESULTS/flows.csv" || tl_fail "expected a 64-flow row for tun"
}

@test "experiments: prefixes --quick: setup time and kernel objects with 100 prefixes" {
	run_experiment prefixes
	check_data prefixes setup_ms tun
	local routes
	routes=$(awk -F, '$1 == "tun" && $2 == "prefixes=100" && $3 == "routes" { print $4 }' "$EXP_RESULTS/prefixes.csv")
	tl_expect_ge "routes tun added in cli for 100 prefixes" "$routes" 100
}

@test "experiments: policyscale --quick: 100 prefixes as policy entries: the client runs them, routes in cli, RTT through the table" {
	run_experiment policyscale
	check_data policyscale rtt_us tun
	local routes entries
	routes=$(awk -F, '$1 == "tun" && $2 == "prefixes=100" && $3 == "routes" { print $4 }' "$EXP_RESULTS/policyscale.csv")
	tl_expect_ge "routes tun added in cli for 100 entries" "$routes" 100
	# The 100 prefixes, the inner network of each family: read back from the client.
	entries=$(awk -F, '$1 == "tun" && $2 == "prefixes=100" && $3 == "entries" { print $4 }' "$EXP_RESULTS/policyscale.csv")
	tl_expect_eq "protect entries the tun client reports" "$entries" 102
	grep -q '^not-applicable.plain: ' "$EXP_RESULTS/policyscale.meta" || tl_fail "expected plain marked not applicable"
}

@test "experiments: profile --quick: both tunnel ends of tun profiled, named kernel paths found" {
	local probe=$BATS_TEST_TMPDIR/perf.probe
	command -v perf >/dev/null || tl_skip_env "perf not installed (Debian: linux-perf; experiments/lib/deps.sh)"
	perf record -e cpu-clock -a -o "$probe" -- true >/dev/null 2>&1 ||
		tl_skip_env "perf record -e cpu-clock -a does not work on this kernel"
	run_experiment profile
	check_data profile machine_share tun
	local role
	for role in client server; do
		# Both ends write and read the TLS stream: a profile that did not
		# see that did not sample the right process.
		awk -F, -v r="role=$role" '$1 == "tun" && $2 == r && $3 == "path:tcp_sendmsg" && $4 > 0 { f = 1 } END { exit !f }' \
			"$EXP_RESULTS/profile.csv" || tl_fail "expected tcp_sendmsg in the $role's profile"
		awk -F, -v r="role=$role" '$1 == "tun" && $2 == r && $3 ~ /^dso:/ && $4 > 0 { f = 1 } END { exit !f }' \
			"$EXP_RESULTS/profile.csv" || tl_fail "expected a dso share in the $role's profile"
	done
	grep -q '^not-applicable.plain: ' "$EXP_RESULTS/profile.meta" || tl_fail "expected plain marked not applicable"
}

@test "experiments: plots.sh renders a PNG per experiment from the data above" {
	command -v gnuplot >/dev/null || tl_skip_env "gnuplot not installed"
	run "$TL_REPO/experiments/lib/plots.sh" --results "$EXP_RESULTS"
	echo "$output"
	((status == 0)) || tl_fail "expected plots.sh to exit 0, got $status"
	local pair n=0
	# plot:experiment; run alone (bats --filter), only what has data is drawn
	for pair in throughput:throughput cpu:throughput pktrate:pktrate rtt_cdf:rtt rr:rtt rrul:rrul \
		setup:setup flows:flows prefixes:prefixes acquire:acquire policyscale:policyscale; do
		[[ -s $EXP_RESULTS/${pair#*:}.csv ]] || continue
		[[ -s $EXP_RESULTS/plots/${pair%:*}.png ]] || tl_fail "expected plots/${pair%:*}.png"
		n=$((n + 1))
	done
	((n > 0)) || tl_skip_design "no experiment data: the tests above were filtered out"
}
