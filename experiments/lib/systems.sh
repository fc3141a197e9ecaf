# SPDX-License-Identifier: MIT
# systems.sh: the systems the performance experiments compare, one table row each (sourced).
# shellcheck shell=bash
#
# A system is whatever carries cli's traffic to dst. Its start function runs
# in a topology that tl_topology_up has just built, with nothing else
# running (argument: a scratch directory of its own); it returns 0 once
# traffic from cli to 10.102.0.2 goes through the
# system, and lists in SYS_STATS the tunlab --stats files it wants sampled
# ("role=FILE" words, e.g. "client=/tmp/x server=/tmp/y"). The harness stops
# the system by tl_kill_started and tl_topology_down, so a start function
# needs no stop function. Adding the nfqueue, pcap, proxy or OpenVPN rows is
# one line in the table and one start function below it.
#
# The "needs" column names what a row requires ("tunlab": an executable
# $TUNLAB); sys_check_needs says what is missing. Sourced after netns.sh.

# shellcheck disable=SC2034 # read by measure.sh
TL_SYSTEMS=(
	# id    start function   needs        label (rest of line)
	"plain  sys_plain_start  -            plain veth (srv forwards, no tunnel)"
	"tun    sys_tun_start    tunlab       tunlab tun"
)

SYS_STATS=""

# The reference path: cli's default route already points at srv, which
# forwards to dst. Nothing to start.
sys_plain_start() {
	SYS_STATS=""
}

# Starts the tunlab server and client with one frontend (netns.sh gives
# them --stats files, a line every TL_STATS_INTERVAL ms, and the client
# --route 10.102.0.0/24), and proves the tunnel is the only way through by
# blocking cleartext cli<->dst forwarding in srv first. The stats files are
# emptied so that a sample never comes from an earlier run.
sys_tunlab_start() {
	local frontend=$1
	rm -f -- "$TL_SRV_STATS" "$TL_CLI_STATS"
	SYS_STATS="client=$TL_CLI_STATS server=$TL_SRV_STATS"
	tl_block_cleartext || return 1
	tl_start_tunlab_server "$frontend" || return 1
	tl_start_tunlab_client "$frontend"
}

sys_tun_start() {
	sys_tunlab_start tun
}

# Prints "id start_fn needs label" for each row, selected by a comma list of
# ids ("all" or empty: every row). Fails on an unknown id.
sys_select() {
	local want=${1:-all} row id rid fn needs label found
	local -a ids
	IFS=, read -r -a ids <<<"$want"
	if [[ $want == all ]]; then
		printf '%s\n' "${TL_SYSTEMS[@]}"
		return 0
	fi
	for id in "${ids[@]}"; do
		found=0
		for row in "${TL_SYSTEMS[@]}"; do
			read -r rid fn needs label <<<"$row"
			if [[ $rid == "$id" ]]; then
				printf '%s %s %s %s\n' "$rid" "$fn" "$needs" "$label"
				found=1
			fi
		done
		if ((!found)); then
			echo "unknown system '$id' (known: $(sys_ids))" >&2
			return 1
		fi
	done
}

sys_ids() {
	local row id rest
	for row in "${TL_SYSTEMS[@]}"; do
		read -r id rest <<<"$row"
		printf '%s ' "$id"
	done
}

# Fails with a message when a selected row's requirement is missing.
sys_check_needs() {
	local selected=$1 id needs
	while read -r id _ needs _; do
		case $needs in
		- | "") ;;
		tunlab)
			[[ -x ${TUNLAB:-} ]] || {
				echo "system '$id' needs the tunlab binary: '${TUNLAB:-}' is not executable (--tunlab PATH; make)" >&2
				return 1
			}
			;;
		*) echo "system '$id': unknown requirement '$needs'" >&2; return 1 ;;
		esac
	done <<<"$selected"
}
