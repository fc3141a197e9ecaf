#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# lab.bats: docs/lab.md pasted whole, every ```sh block in order (tests/run-lab), so that the lab cannot silently break.
#
# About two minutes: the lab's own measurements are --quick runs. The
# figures are not judged, only that every block runs under `set -euo
# pipefail` (a ping through a tunnel whose cleartext path is blocked is
# the lab's own proof that the tunnel works) and that nothing is left
# behind. Normal build only, as the other measuring suites: the lab runs
# experiments/throughput and experiments/transparency.
#
#   TUNLAB=build/tunlab bats tests/integration/lab.bats

load helpers

setup() {
	# Set first: teardown runs after a skip too.
	export TL_NS_PREFIX="tllab$$-$BATS_TEST_NUMBER"
	LAB1_BEFORE=$(lab1_namespaces)
}

teardown() {
	local left new
	left=$(ip netns list | awk -v p="$TL_NS_PREFIX-" 'index($1, p) == 1 { print $1 }')
	new=$(comm -13 <(echo "$LAB1_BEFORE") <(lab1_namespaces))
	[[ -z $left$new ]] || tl_fail "expected the lab to delete its namespaces, left: $left $new"
}

# Exercise 1 names its namespace lab1-PID (as a student's shell would).
lab1_namespaces() {
	ip netns list 2>/dev/null | awk '$1 ~ /^lab1-/ { print $1 }' | sort
}

# A lab in a file of its own, for the runner's own checks.
write_doc() {
	LAB_DOC=$BATS_TEST_TMPDIR/lab.md
	printf '%s\n' "$@" >"$LAB_DOC"
}

@test "docs/lab.md: every sh block runs in order under set -euo pipefail" {
	[[ $TUNLAB != */san/* ]] || tl_skip_design "the lab measures (exercises 6, 7 and 10): runs on the normal build only"
	tl_require_tunlab
	tl_require_net
	tl_require_frontend
	tl_require_tools iperf3 jq socat tcpdump nstat stdbuf python3
	run timeout --kill-after=10 480 env TMPDIR="$BATS_TEST_TMPDIR" "$TL_REPO/tests/run-lab"
	echo "$output" | tail -n 40
	((status == 0)) ||
		tl_fail "expected every block of docs/lab.md to run, got status $status (the last '=== docs/lab.md:N' line names the block)"
}

@test "run-lab: a failing block stops the run, names its line, and leaves no namespace" {
	tl_require_net
	# The block replaces the runner's trap and fails before it is re-armed:
	# the runner must still remove the namespace.
	write_doc '```sh' 'echo first' '```' '' '```sh no-test' 'false' '```' '' \
		'```sh' 'ip netns add "lab1-$$"' 'trap "echo the lab trap ran" EXIT' 'false' 'echo never' '```'
	run "$TL_REPO/tests/run-lab" --doc "$LAB_DOC"
	((status != 0)) || tl_fail "expected a failing block to fail the run: $output"
	tl_expect_contains "the output" "$output" "first"
	tl_expect_contains "the failing block's line" "$output" "lab.md:9"
	tl_expect_contains "the block's own trap" "$output" "the lab trap ran"
	[[ $output != *never* ]] || tl_fail "expected the run to stop at the failing command: $output"
	tl_expect_contains "the sweep" "$output" "run-lab: removing namespace lab1-"
	[[ -z $(comm -13 <(echo "$LAB1_BEFORE") <(lab1_namespaces)) ]] ||
		tl_fail "expected the runner to remove the namespace the failed block made"
}

@test "run-lab: an unknown fence is an error, not a block skipped in silence" {
	write_doc '```sh' 'true' '```' '```shell' 'echo hidden' '```'
	run "$TL_REPO/tests/run-lab" --doc "$LAB_DOC" --print
	((status != 0)) || tl_fail "expected an unknown fence to fail: $output"
	tl_expect_contains "the message" "$output" 'unknown fence "```shell"'
}
