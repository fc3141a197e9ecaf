#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# results.bats: the published numbers against their data: goal verdicts, the README's generated tables, provenance, version and install.
#
# Reads results/ and the build only: no root, no namespace.
#
#   TUNLAB=build/tunlab bats tests/integration/results.bats

load helpers

# goals_run DIR: goals.py's TSV of DIR's CSVs in $output (and the log).
goals_run() {
	run "$TL_REPO/experiments/lib/goals.py" --results "$1"
	echo "$output"
}

# goal_is NAME VERDICT KIND: the line of goals_run's output for NAME
# ends in that verdict and kind.
goal_is() {
	grep -q "^$1"$'\t'".*"$'\t'"$2"$'\t'"$3\$" <<<"$output" || tl_fail "expected $1 $2 ($3)"
}

@test "results: goals.py self-test (verdict logic, seeded bootstrap)" {
	tl_require_tools python3
	run "$TL_REPO/experiments/lib/goals.py" --self-test
	echo "$output"
	((status == 0)) || tl_fail "expected the goals self-test to pass"
}

@test "results: a goal is met only when the interval's lower end clears it" {
	tl_require_tools python3
	local r=$BATS_TEST_TMPDIR/results
	mkdir -p "$r"
	# proxy/relay: the medians' ratio is above 1, one pair below 1.
	{
		echo "system,parameter,metric,value,unit,repetition"
		printf 'proxy,streams=1,throughput,%s,Gbit/s,%d\n' 4.25 1 3.20 2 3.92 3 3.24 4 4.12 5
		printf 'tls-relay,streams=1,throughput,%s,Gbit/s,%d\n' 3.61 1 3.61 2 3.13 3 3.03 4 3.74 5
		printf 'tun,streams=1,throughput,%s,Gbit/s,%d\n' 7 1 7.1 2 7.2 3 7.3 4 7.4 5
	} >"$r/throughput.csv"
	goals_run "$r"
	goal_is GoalProxyRelay level ratio
	goal_is GoalTunRelay met ratio
	goal_is GoalTunOpenvpn 'no data' ratio
	# Shifted clear of 1, the same noise is met.
	sed -i 's/^proxy,streams=1,throughput,\([0-9.]*\)/proxy,streams=1,throughput,1\1/' "$r/throughput.csv"
	goals_run "$r"
	goal_is GoalProxyRelay met ratio
}

# A difference goal (RTT under load - idle, one system, paired by
# repetition; ping's one row per echo reduced to each repetition's median).
@test "results: a difference goal is met, level or not met by its interval" {
	tl_require_tools python3
	local r=$BATS_TEST_TMPDIR/results rep s
	mkdir -p "$r"
	{
		echo "system,parameter,metric,value,unit,repetition"
		for rep in 1 2 3 4 5; do
			printf 'SYS,idle,rtt,%s,ms,%d\n' 0.2 "$rep" 0.3 "$rep" 0.4 "$rep"
		done
		# tun: 0.5 ms above idle; nfqueue: 0.7-1.3 ms above; pcap: 3 ms above.
		printf 'tun,load,rtt,%s,ms,%d\n' 0.7 1 0.8 1 0.9 1 0.8 2 0.8 3 0.8 4 0.75 5
		printf 'nfqueue,load,rtt,%s,ms,%d\n' 1.0 1 1.6 2 1.1 3 1.5 4 1.2 5
		printf 'pcap,load,rtt,%s,ms,%d\n' 3.3 1 3.2 2 3.4 3 3.3 4 3.1 5
	} >"$r/rrul.in"
	{
		head -1 "$r/rrul.in"
		for s in tun nfqueue pcap; do sed -n "s/^SYS,/$s,/p" "$r/rrul.in"; done
		grep -v '^SYS,\|^system,' "$r/rrul.in"
	} >"$r/rrul.csv"
	goals_run "$r"
	grep -q $'^GoalRrulTun\t.*\t5\t0.50\t.*\tmet\tdifference$' <<<"$output" || tl_fail "expected tun's +0.5 ms met"
	goal_is GoalRrulNfqueue level difference
	goal_is GoalRrulPcap 'not met' difference
	goal_is GoalUdpRtt 'no data' ratio
}

# A count goal holds in every repetition or not at all: one failing run,
# or a run with rows but without the metric, decides it; there is no level.
@test "results: a count goal is met only when every repetition satisfies it" {
	tl_require_tools python3
	local r=$BATS_TEST_TMPDIR/results rep
	mkdir -p "$r"
	{
		echo "system,parameter,metric,value,unit,repetition"
		for rep in 1 2 3 4 5; do
			printf 'tun,race,%s,0,count,%d\n' dup_sessions "$rep" cleartext "$rep"
			printf 'nfqueue,race,dup_sessions,%d,sessions,%d\n' $((rep == 4)) "$rep"
			printf 'pcap,race,rounds,1000,rounds,%d\n' "$rep"
			((rep == 3)) || printf 'pcap,race,cleartext,0,packets,%d\n' "$rep"
		done
	} >"$r/crossing.csv"
	{
		echo "system,parameter,metric,value,unit,repetition"
		printf 'tun,burst,received,100,datagrams,%d\n' 1 2
		printf 'nfqueue,burst,received,%d,datagrams,%d\n' 100 1 100 2 100 3
		printf 'pcap,burst,received,%d,datagrams,%d\n' 99 1 100 2
	} >"$r/acquire.csv"
	goals_run "$r"
	grep -q $'^GoalCrossingDupTun\t.*\t5\t0\.00\t.*\tmet\tevery$' <<<"$output" || tl_fail "expected tun's 0 duplicates met"
	goal_is GoalCrossingClearTun met every
	grep -q $'^GoalCrossingDupNfqueue\t.*\t5\t1\.00\t.*\tnot met\tevery$' <<<"$output" ||
		tl_fail "expected one duplicate in five runs not met"
	goal_is GoalCrossingClearPcap 'not met' every # a run without its row
	goal_is GoalCrossingDupPcap 'no data' every
	goal_is GoalAcquireTun 'too few runs' every
	grep -q $'^GoalAcquireNfqueue\t.*\t3\t100\.0\t.*\tmet\tevery$' <<<"$output" || tl_fail "expected 3 of 3 full bursts met"
	grep -q $'^GoalAcquirePcap\t.*\t2\t99\.0\t.*\tnot met\tevery$' <<<"$output" ||
		tl_fail "expected one short burst not met, even in 2 runs"
	goal_is GoalCrossingClearNfqueue 'no data' every
	! grep -q $'\tlevel\tevery$' <<<"$output" || tl_fail "a count goal is never level"
}

@test "results: the README's generated tables match results/ (make plots writes them)" {
	tl_require_tools python3
	run "$TL_REPO/experiments/lib/readme-tables.sh" --check
	echo "$output"
	((status == 0)) || tl_fail "README.md's tables differ from results/: run make plots"
}

# An independent reading: every cell of the README's transparency table is
# the CSV's result for that system and probe (labels from the .meta).
@test "results: every README transparency cell is the CSV's result" {
	tl_require_tools python3
	[[ -s $TL_REPO/results/transparency.csv ]] || tl_skip_design "no results/transparency.csv committed"
	run python3 - "$TL_REPO" <<-'EOF'
		import csv, sys
		root = sys.argv[1]
		label = {}
		for line in open(root + "/results/transparency.meta"):
		    if line.startswith("probe."):
		        k, v = line.rstrip("\n").split(": ", 1)
		        label[v] = k[len("probe."):]
		res = {(r["system"], r["probe"]): r["result"]
		       for r in csv.DictReader(open(root + "/results/transparency.csv"))}
		lines = open(root + "/README.md").read().split("\n")
		start = next(i for i, l in enumerate(lines) if l.startswith("<!-- BEGIN generated transparency"))
		rows = []
		for l in lines[start + 1:]:
		    if not l.startswith("|"):
		        break
		    rows.append([c.strip() for c in l.strip("|").split("|")])
		systems, checked, bad = rows[0][1:], 0, 0
		for row in rows[2:]:
		    probe = label[row[0]]
		    for s, cell in zip(systems, row[1:]):
		        want = res.get((s, probe))
		        if want in ("yes", "no", "partial"):
		            checked += 1
		            if cell != want:
		                bad += 1
		                print("mismatch: %s %s: README %s, CSV %s" % (s, probe, cell, want))
		print("checked %d cells" % checked)
		sys.exit(1 if bad or checked < 100 else 0)
	EOF
	echo "$output"
	((status == 0)) || tl_fail "expected the README table to match transparency.csv cell by cell"
}

@test "results: provenance --check refuses a mix of commits and runs, and a run without every set" {
	local r=$BATS_TEST_TMPDIR/results exp
	mkdir -p "$r"
	for exp in $("$TL_REPO/experiments/run-all" --list-sets | sed 's/.*): //'); do
		[[ $exp != demo ]] || continue
		printf 'x\n' >"$r/$exp.csv"
		printf 'commit: 1111111\nrun: reference 1\n' >"$r/$exp.meta"
	done
	printf 'x\n' >"$r/a.csv"
	printf 'x\n' >"$r/b.csv"
	printf 'commit: 1111111\nrun: reference 1\n' >"$r/a.meta"
	printf 'commit: 1111111\nrun: reference 1\n' >"$r/b.meta"
	run "$TL_REPO/experiments/lib/provenance.sh" --results "$r" --check
	((status == 0)) || tl_fail "expected one reference run to pass: $output"
	mv "$r/nat.csv" "$r/nat.csv.away"
	run "$TL_REPO/experiments/lib/provenance.sh" --results "$r" --check
	((status == 1)) || tl_fail "expected a run without the nat set to fail"
	[[ $output == *"without a dataset"*nat* ]] || tl_fail "expected the missing dataset named: $output"
	mv "$r/nat.csv.away" "$r/nat.csv"
	printf 'commit: 2222222\nrun: reference 1\n' >"$r/b.meta"
	run "$TL_REPO/experiments/lib/provenance.sh" --results "$r" --check
	((status == 1)) || tl_fail "expected two commits to fail"
	printf 'commit: 1111111-dirty\nrun: reference 1\n' >"$r/b.meta"
	run "$TL_REPO/experiments/lib/provenance.sh" --results "$r" --check
	((status == 1)) || tl_fail "expected a dirty commit to fail"
	printf 'commit: 1111111\nrun: quick 2 (--quick: not a reference run)\n' >"$r/b.meta"
	run "$TL_REPO/experiments/lib/provenance.sh" --results "$r" --check
	((status == 1)) || tl_fail "expected a quick run to fail"
}

@test "results: the paper marks a mix of commits on its first page (macros)" {
	tl_require_tools python3
	local r=$BATS_TEST_TMPDIR/results out=$BATS_TEST_TMPDIR/gen
	mkdir -p "$r"
	printf 'system,parameter,metric,value,unit,repetition\ntun,streams=1,throughput,5,Gbit/s,1\n' >"$r/throughput.csv"
	cp -- "$r/throughput.csv" "$r/rtt.csv"
	printf 'commit: 1111111\nrun: reference 1\n' >"$r/throughput.meta"
	printf 'commit: 2222222\nrun: reference 2\n' >"$r/rtt.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	((status == 0)) || tl_fail "gen-macros failed: $output"
	grep -q '^\\newcommand\\ProvenanceProblem{the datasets come from 2 different commits' "$out/numbers.tex" ||
		tl_fail "expected \\ProvenanceProblem to name the mix"
	grep -q '^\\newcommand\\RunCommit{mixed' "$out/numbers.tex" || tl_fail "expected \\RunCommit to say mixed"
	printf 'commit: 1111111\nrun: reference 1\n' >"$r/rtt.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	grep -q '^\\newcommand\\ProvenanceProblem{}' "$out/numbers.tex" || tl_fail "expected no problem for one run"
}

@test "results: tunlab --version names the commit it was built from" {
	tl_require_tunlab
	tl_require_tools git
	run "$TUNLAB" --version
	echo "$output"
	local head
	head=$(git -C "$TL_REPO" rev-parse --short HEAD)
	[[ $output == "tunlab $head" || $output == "tunlab $head-dirty" ]] ||
		tl_fail "expected 'tunlab $head[-dirty]', got '$output'"
}

@test "results: make install into a DESTDIR installs tunlab and tunlab-mkpki there only" {
	tl_require_tunlab
	tl_require_tools make
	local dest=$BATS_TEST_TMPDIR/dest
	# TUNLAB named: make installs the binary under test, never rebuilds it.
	run make -C "$TL_REPO" install DESTDIR="$dest" PREFIX=/usr TUNLAB="$(realpath "$TUNLAB")"
	echo "$output"
	((status == 0)) || tl_fail "make install failed"
	[[ -x $dest/usr/bin/tunlab && -x $dest/usr/bin/tunlab-mkpki ]] || tl_fail "expected both in DESTDIR/usr/bin"
	run "$dest/usr/bin/tunlab" --version
	[[ $output == tunlab\ * ]] || tl_fail "expected the installed tunlab to run: $output"
	[[ $(find "$dest" -type f | wc -l) -eq 2 ]] || tl_fail "expected exactly two files: $(find "$dest" -type f)"
}

# experiment.sh's retry: a test that fails once and then succeeds leaves a
# "retry." line with its reason in the .meta; no row of the failed try.
@test "results: a retried test is recorded in the .meta with its reason" {
	tl_require_tools jq
	run bash -c '
		set -euo pipefail
		source "$1/experiments/lib/netns.sh"
		MEAS_TAG=t
		source "$1/experiments/lib/measure.sh"
		source "$1/experiments/lib/experiment.sh"
		TL_TMP=$2 EXP_NAME=fake EXP_STAGE=$2/stage EXP_CSV=$2/stage/fake.csv
		mkdir -p "$EXP_STAGE"
		echo "$MEAS_CSV_HEADER" >"$EXP_CSV"
		meas_system_down() { :; }
		exp_one() {
			exp_row "$1" p m 1 u "$3"
			[[ -e $TL_TMP/tried ]] || { touch "$TL_TMP/tried"; echo "iperf3: connection refused" >&2; exit 7; }
		}
		exp_test sys fn 1
		cat "$EXP_STAGE/fake.meta"
		echo "rows: $(($(wc -l <"$EXP_CSV") - 1))"
	' _ "$TL_REPO" "$BATS_TEST_TMPDIR"
	echo "$output"
	((status == 0)) || tl_fail "expected the harness stub to run"
	tl_expect_contains "the retry line" "$output" "retry.sys.rep1.try1: exit 7: iperf3: connection refused"
	tl_expect_contains "one row, from the second try" "$output" "rows: 1"
	[[ $output != *failed.sys* ]] || tl_fail "expected no failed. line: the second try passed"
}

@test "results: run-all names its experiment sets with their times and refuses an unknown set" {
	run "$TL_REPO/experiments/run-all" --list-sets
	echo "$output"
	((status == 0)) || tl_fail "--list-sets failed"
	[[ $output == *"default"*"about "*" min"*"throughput"* ]] || tl_fail "expected the default set with its time and experiments"
	run "$TL_REPO/experiments/run-all" --set no-such-set
	echo "$output"
	((status != 0)) || tl_fail "expected an unknown set to be refused"
	[[ $output == *"no experiment set 'no-such-set'"* ]] || tl_fail "expected the refusal to name the set"
}

# 2a4e766 sized a packet session's receive buffer once, at the handshake;
# the paper says so beside the loss figures of a dataset from such code.
@test "results: the paper knows whether the loss dataset's code re-checks the receive-buffer bound" {
	local r=$BATS_TEST_TMPDIR/results out=$BATS_TEST_TMPDIR/gen
	git -C "$TL_REPO" cat-file -e 2a4e766:tunnel/session.c 2>/dev/null ||
		tl_skip_env "commit 2a4e766 is not in this clone (shallow?)"
	mkdir -p "$r"
	printf 'commit: 2a4e766\n' >"$r/loss.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	((status == 0)) || tl_fail "gen-macros failed: $output"
	grep -q '^\\newcommand\\LossRcvbufRechecked{no}' "$out/numbers.tex" || tl_fail "expected no for 2a4e766"
	printf 'commit: %s\n' "$(git -C "$TL_REPO" rev-parse --short HEAD)" >"$r/loss.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	grep -q '^\\newcommand\\LossRcvbufRechecked{yes}' "$out/numbers.tex" || tl_fail "expected yes for HEAD"
	printf 'commit: 0000000\n' >"$r/loss.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	grep -q '^\\newcommand\\LossRcvbufRechecked{n/a}' "$out/numbers.tex" || tl_fail "expected n/a for an unknown commit"
}

# A loss dataset measured with one start for several points carries the
# TCP tunnels' order effect; the paper says so unless its .meta records a
# start per point.
@test "results: the paper knows whether the loss dataset started each system afresh for every point" {
	local r=$BATS_TEST_TMPDIR/results out=$BATS_TEST_TMPDIR/gen
	mkdir -p "$r"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	((status == 0)) || tl_fail "gen-macros failed: $output"
	grep -q '^\\newcommand\\LossFreshStarts{n/a}' "$out/numbers.tex" || tl_fail "expected n/a without loss.meta"
	printf 'commit: 2a4e766\nrepetitions per system start: 5\n' >"$r/loss.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	grep -q '^\\newcommand\\LossFreshStarts{no}' "$out/numbers.tex" || tl_fail "expected no for the old procedure"
	printf 'commit: 2a4e766\nsystem starts: one per point\n' >"$r/loss.meta"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	grep -q '^\\newcommand\\LossFreshStarts{yes}' "$out/numbers.tex" || tl_fail "expected yes for a start per point"
}

# The later sets' tables and macros (issues 14 and 15): a cell is the
# median of its CSV rows; without the CSV the table says so, and the
# paper's list of sets is run-all's.
@test "results: the paper's loss, nat, acquire, crossing and policyscale tables and macros come from their CSVs" {
	tl_require_tools python3
	local r=$BATS_TEST_TMPDIR/results out=$BATS_TEST_TMPDIR/gen
	mkdir -p "$r"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	((status == 0)) || tl_fail "gen-macros failed on an empty results/: $output"
	grep -q 'Not measured in this run' "$out/loss.tex" || tl_fail "expected loss.tex to say not measured"
	grep -q '^\\newcommand\\TunUdpLossOneDelayMbps{n/a}' "$out/numbers.tex" || tl_fail "expected n/a without data"
	{
		echo "system,parameter,metric,value,unit,repetition"
		printf 'tun-udp,loss=1:rtt=20,goodput,%s,Mbit/s,%d\n' 90 1 110 2 100 3
		printf 'plain,loss=1:rtt=20,goodput,%s,Mbit/s,%d\n' 200 1 200 2 200 3
	} >"$r/loss.csv"
	{
		echo "system,parameter,metric,value,unit,repetition"
		printf 'tun,race,%s,%s,x,1\n' rounds 1000 dup_sessions 0 cleartext 3 reload_refused 0
		echo 'tun,control,control_cleartext,20,packets,1'
	} >"$r/crossing.csv"
	{
		echo "system,parameter,metric,value,unit,repetition"
		printf 'nfqueue,prefixes=1000,objects,%s,count,%d\n' 3017 1 3019 2 3015 3
	} >"$r/policyscale.csv"
	run "$TL_REPO/paper/gen-macros.sh" --results "$r" --out "$out"
	((status == 0)) || tl_fail "gen-macros failed: $output"
	grep -q '^\\newcommand\\TunUdpLossOneDelayMbps{100}' "$out/numbers.tex" || tl_fail "expected the median, 100"
	grep -q '^\\newcommand\\TunUdpOverPlainLossOneDelay{0.5}' "$out/numbers.tex" || tl_fail "expected the ratio 0.5"
	grep -q '^\\newcommand\\TunCrClear{3}' "$out/numbers.tex" || tl_fail "expected the cleartext count, 3"
	grep -qE '^tun-udp & -- & -- & -- & -- & -- & 100 & 3' "$out/loss.tex" || tl_fail "expected tun-udp's row: $(cat "$out/loss.tex")"
	grep -qE '^tun & 1000 & 0 & 3 & 0 & 20 & 1' "$out/crossing.tex" || tl_fail "expected tun's row: $(cat "$out/crossing.tex")"
	grep -q '^\\newcommand\\NfqueuePsThousandObjects{3017}' "$out/numbers.tex" || tl_fail "expected the median, 3017"
	grep -qE '^nfqueue & -- & -- & -- & 3017 & -- & -- & -- & 3 ' "$out/policyscale.tex" || tl_fail "expected nfqueue's row: $(cat "$out/policyscale.tex")"
	grep -q 'Not measured in this run' "$out/nat.tex" || tl_fail "expected nat.tex to say not measured"
	local set
	for set in $("$TL_REPO/experiments/run-all" --list-sets | awk '{ print $1 }'); do
		grep -q "texttt{$set}" "$out/sets.tex" || tl_fail "expected set $set in sets.tex: $(cat "$out/sets.tex")"
	done
}

@test "results: the default set keeps to 30 minutes with headroom, every repeated measurement in it with five repetitions" {
	local line min names name reps
	line=$("$TL_REPO/experiments/run-all" --list-sets | grep '^default ')
	echo "$line"
	min=$(sed -n 's/^default *about \([0-9]*\) min.*/\1/p' <<<"$line")
	tl_expect_ge "the default set's budget in minutes" "$min" 1
	((min <= 28)) || tl_fail "expected the default set's budgets to add up to 28 min at most (their sum is rounded up; 30 with headroom), got $min"
	names=${line#*): }
	for name in $names; do
		# demo walks through once; transparency's cells are verdicts, not samples.
		[[ $name != demo && $name != transparency ]] || continue
		reps=$("$TL_REPO/experiments/$name" -h | sed -n 's/.*(default \([0-9]*\) x .*/\1/p')
		echo "$name: $reps repetitions"
		[[ -n $reps ]] || tl_fail "expected experiments/$name -h to name its default repetitions"
		((reps >= 5)) || tl_fail "expected five repetitions or more in $name (default set), got $reps"
	done
}
