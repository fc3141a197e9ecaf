# SPDX-License-Identifier: MIT
# prefixes.sh: N non-aggregatable remote prefixes and a timed start with them, for experiments/prefixes and experiments/policyscale (sourced).
# shellcheck shell=bash
#
# The k-th prefix (k from 0) is every other /24 from 10.200.0.0 up
# (10.200.0.0/24, 10.200.2.0/24, ...: no two merge into a shorter prefix).
# srv routes PF_NET to dst, and dst holds an address in the last prefix;
# pf_start times a system's start to the first echo answered from there,
# so all N are in place, and counts what it added in cli. Sourced after
# netns.sh, systems.sh and measure.sh.

PF_NET=10.200.0.0/13            # srv's one route to dst covers every prefix

# The counts of a run (PF_COUNTS, PF_QUICK_COUNTS under --quick: the script's).
pf_counts() {
	if ((EXP_QUICK)); then echo "$PF_QUICK_COUNTS"; else echo "$PF_COUNTS"; fi
}

pf_prefix() {
	echo "10.$((200 + $1 / 128)).$((2 * ($1 % 128))).0/24"
}

# The address in the last of N prefixes that dst answers from.
pf_last_host() {
	local p
	p=$(pf_prefix $(($1 - 1)))
	echo "${p%.0/24}.1"
}

# pf_start ID FN REP WORK N RAW [TIMER]: fresh topology, the N prefixes in
# SYS_EXTRA_ROUTES, the start timed (MEAS_SETUP_MS) by TIMER (default
# meas_start_timed: echoes, the pinger's output in RAW); PF_ADDED gets
# "routes rules links" the start added in cli, PF_HOST the last prefix's
# address. The system stays up.
pf_start() {
	local id=$1 fn=$2 work=$4 n=$5 raw=$6 timer=${7:-meas_start_timed} k rc=0 before after
	local -a b a
	sys_reset
	tl_topology_up >"$work/topology.log" 2>&1 || meas_die "topology did not come up"
	PF_HOST=$(pf_last_host "$n")
	tl_cmd ip -n "$NS_SRV" route add "$PF_NET" via "$MEAS_DST"
	tl_cmd ip -n "$NS_DST" addr add "$PF_HOST/32" dev lo
	SYS_EXTRA_ROUTES=()
	for ((k = 0; k < n; k++)); do
		SYS_EXTRA_ROUTES+=("$(pf_prefix "$k")")
	done
	before=$(meas_kernel_objects "$NS_CLI")
	"$timer" "$id" "$fn" "$work/n$n" "$PF_HOST" "$raw" || rc=$?
	((SYS_ROUTES_DONE)) || exp_cannot "its start function takes no extra prefixes (SYS_EXTRA_ROUTES)"
	((rc != 2)) || exp_cannot "no echo answered from $PF_HOST within ${MEAS_SETUP_BOUND} s (carries no ICMP?)"
	((rc == 0)) || meas_die "$id: timing the start with $n prefixes failed"
	after=$(meas_kernel_objects "$NS_CLI")
	read -r -a b <<<"$before"
	read -r -a a <<<"$after"
	PF_ADDED="$((a[0] - b[0])) $((a[1] - b[1])) $((a[2] - b[2]))"
}

# pf_rows ID N REP: setup_ms and the objects of the last pf_start as rows "prefixes=N".
pf_rows() {
	local id=$1 n=$2 rep=$3 added
	read -r -a added <<<"$PF_ADDED"
	exp_row "$id" "prefixes=$n" setup_ms "$MEAS_SETUP_MS" ms "$rep"
	exp_row "$id" "prefixes=$n" routes "${added[0]}" count "$rep"
	exp_row "$id" "prefixes=$n" rules "${added[1]}" count "$rep"
	exp_row "$id" "prefixes=$n" links "${added[2]}" count "$rep"
	exp_row "$id" "prefixes=$n" objects $((added[0] + added[1] + added[2])) count "$rep"
	meas_progress "$id rep $rep, $n prefixes: first echo from the last after $MEAS_SETUP_MS ms; +${added[0]} routes, +${added[1]} rules, +${added[2]} links in cli"
}
