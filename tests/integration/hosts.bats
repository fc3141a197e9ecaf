#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# hosts.bats: the experiments on "real hosts" through Ansible (--inventory), against namespace hosts with their own sshd (experiments/testbed/netns-hosts).
#
# About five minutes (6 min 11 s on 2 cores at load 9-11, 2026-12-06),
# most of it the throughput and transparency runs: preparing the hosts
# (three builds of tunlab, about a minute, the first time) and every step
# an Ansible call of one to five seconds. The hosts are namespaces here, but the
# harness only sees an inventory and a controller namespace
# (TL_CONTROLLER_NETNS); each host has a private /tmp, so a file the harness
# forgets to copy to or from a host is missing. Measurement harness: the
# normal build only, as experiments.bats.
#
#   TUNLAB=build/tunlab bats tests/integration/hosts.bats

load helpers

# The first Ansible run builds tunlab on three namespace hosts at once (its
# commands are bounded at 400 s): on two cores that outgrew the 240 s that
# tests/run gives every test (~4 min in CI, 2026-12-07). bats reads this
# after loading the file, per test.
BATS_TEST_TIMEOUT=480

HOSTS_TOOLS=(iperf3 jq ping ansible-playbook ansible-inventory /usr/sbin/sshd ssh-keygen unshare nsenter ethtool tcpdump python3)

# This bats skips from setup(), not setup_file(): setup_file only builds the
# hosts when every test could run.
setup_file() {
	local tool
	[[ $TUNLAB != */san/* && -x $TUNLAB && -z $(tl_probe_netns) && -z $(tl_probe_frontend tun) ]] || return 0
	for tool in "${HOSTS_TOOLS[@]}"; do
		command -v "$tool" >/dev/null || return 0
	done
	# Outside /tmp: each host's sshd sees a /tmp of its own.
	export NH_DIR=/run/tunlab-hosts-bats-$$ NH_ID=hb$$
	local prefix
	prefix=$("$TL_REPO/experiments/testbed/netns-hosts" up "$NH_DIR" "$NH_ID")
	export TL_CONTROLLER_NETNS=${prefix##* }
	export EXP_RESULTS=$BATS_FILE_TMPDIR/results
}

teardown_file() {
	[[ -z ${NH_DIR:-} ]] || "$TL_REPO/experiments/testbed/netns-hosts" down "$NH_DIR"
}

setup() {
	# The harness measures; the sanitizer build's daemons would only make
	# the same checks slower.
	[[ $TUNLAB != */san/* ]] || tl_skip_design "measurement harness: runs on the normal build only"
	tl_require_tunlab
	tl_require_net
	tl_require_frontend
	tl_require_tools "${HOSTS_TOOLS[@]}"
	[[ -s ${NH_DIR:-}/hosts.ini ]] || tl_fail "expected experiments/testbed/netns-hosts up to write hosts.ini"
}

# hosts_left_as_found: what the harness added to each host is gone again.
hosts_left_as_found() {
	local role ns sshd left
	for role in cli srv dst; do
		ns=tlh-$role-$NH_ID
		left=$(ip -n "$ns" -o addr show | awk '$2 != "lo" && $2 != "mgmt0" && $4 !~ /^fe80:/ { print $2, $4 }')
		[[ -z $left ]] || tl_fail "expected no address the harness added on $role, left: $left"
		left=$({ ip -n "$ns" -4 route show proto 76; ip -n "$ns" -6 route show proto 76; })
		[[ -z $left ]] || tl_fail "expected no harness route (proto 76) on $role, left: $left"
		left=$(ip netns exec "$ns" iptables-save | grep -e tl-cleartext-block || true)
		[[ -z $left ]] || tl_fail "expected no cleartext block rule on $role, left: $left"
		[[ $(ip netns exec "$ns" sysctl -n net.ipv4.ip_forward) == 0 ]] ||
			tl_fail "expected forwarding back to off on $role"
		left=$(ip netns pids "$ns" | xargs -r ps -o comm= -p | grep -vx sshd || true)
		[[ -z $left ]] || tl_fail "expected only sshd left running on $role, got: $left"
		sshd=$(cat "$NH_DIR/sshd-$role.pid")
		left=$(nsenter -t "$sshd" -m -- sh -c 'ls -d /tmp/tunlab.* 2>/dev/null' || true)
		[[ -z $left ]] || tl_fail "expected the run's directory removed on $role, left: $left"
	done
}

# refused NAME SED: an inventory edited by SED is refused before any host is touched.
refused() {
	local name=$1 edit=$2
	sed "$edit" "$NH_DIR/hosts.ini" >"$BATS_TEST_TMPDIR/$name.ini"
	run timeout 60 "$TL_REPO/experiments/throughput" --inventory "$BATS_TEST_TMPDIR/$name.ini" --quick \
		--systems plain --results "$BATS_TEST_TMPDIR/results"
	echo "$output" | tail -n 8
	((status == 2)) || tl_fail "expected the $name inventory refused (exit 2), got $status"
	[[ $output == *"refusing this inventory"* ]] || tl_fail "expected a refusal message for the $name inventory"
	[[ ! -e $BATS_TEST_TMPDIR/results/throughput.csv ]] || tl_fail "expected no data from a refused inventory"
}

@test "hosts: an inventory that could route traffic off the listed hosts is refused, saying why" {
	refused public 's|ul4=10.101.0.2/24|ul4=8.8.8.2/24|; s|ul4=10.101.0.1/24|ul4=8.8.8.1/24|'
	[[ $output == *"8.8.8.0/24 is outside the declared private prefixes"* ]] || tl_fail "expected the public network named"
	refused off-link 's|in4=10.102.0.2/24|in4=10.103.0.2/24|'
	[[ $output == *"not on one link prefix"* ]] || tl_fail "expected the off-link peer named"
	refused declared-public 's|^tl_private=.*|tl_private=0.0.0.0/0,::/0|'
	[[ $output == *"0.0.0.0/0 is not a private prefix"* ]] || tl_fail "expected the public declaration named"
	refused mgmt-on-data 's|ansible_host=10.199.3.2|ansible_host=10.102.0.9|'
	[[ $output == *"management address 10.102.0.9"* ]] || tl_fail "expected the management address named"
	refused no-dst '/^dst1 /d'
	hosts_left_as_found
}

@test "hosts: throughput --quick on tun,plain through Ansible: the local run's columns, host facts in the .meta, hosts as found" {
	local csv=$EXP_RESULTS/throughput.csv meta=$EXP_RESULTS/throughput.meta metrics role key
	run timeout 400 "$TL_REPO/experiments/throughput" --inventory "$NH_DIR/hosts.ini" --quick \
		--systems tun,plain --streams 1 --results "$EXP_RESULTS"
	echo "$output" | tail -n 25
	((status == 0)) || tl_fail "expected throughput --inventory to exit 0, got $status"
	[[ $(head -n 1 "$csv") == "system,parameter,metric,value,unit,repetition" ]] ||
		tl_fail "expected the local run's header, got: $(head -n 1 "$csv")"
	metrics=$(awk -F, '$1 == "tun" { print $3 }' "$csv" | sort | tr '\n' ' ')
	[[ $metrics == "bytes_received cpu_client cpu_server retransmits throughput " ]] ||
		tl_fail "expected the local run's metrics for tun, got: $metrics"
	awk -F, '$1 == "plain" && $3 == "throughput" && $4 > 0 { f = 1 } END { exit !f }' "$csv" ||
		tl_fail "expected a plain throughput > 0"
	awk -F, '$1 == "tun" && $3 == "throughput" && $4 > 0 { f = 1 } END { exit !f }' "$csv" ||
		tl_fail "expected a tun throughput > 0"
	! grep -q '^failed\.' "$meta" || tl_fail "expected no failed test: $(grep '^failed\.' "$meta")"
	grep -q '^backend: hosts' "$meta" || tl_fail "expected the back end in the .meta"
	for role in cli srv dst; do
		for key in kernel cpu cores tunlab; do
			grep -Eq "^host\.$role\.$key: .+" "$meta" || tl_fail "expected host.$role.$key in the .meta"
		done
	done
	grep -q '^host\.srv\.nic\.in0\.driver: veth$' "$meta" || tl_fail "expected srv's inner NIC driver (veth) in the .meta"
	grep -Eq '^host\.cli\.nic\.ul0\.offloads: .*tcp-segmentation-offload=(on|off)' "$meta" ||
		tl_fail "expected cli's offloads in the .meta"
	[[ -s $(ls "$EXP_RESULTS"/raw/throughput/tun-tcp-streams1-rep1.json) ]] || tl_fail "expected iperf3's raw JSON brought back"
	[[ -s $EXP_RESULTS/raw/throughput/tun-tcp-streams1-rep1.client.stats.jsonl ]] ||
		tl_fail "expected the client's stats brought back"
	hosts_left_as_found
}

@test "hosts: transparency --quick on tun,plain through Ansible: the local run's columns and verdicts, n/a where a probe cannot run, host facts" {
	local res=$BATS_TEST_TMPDIR/tx csv meta role key cells
	csv=$res/transparency.csv meta=$res/transparency.meta
	# Three probes (every step is an Ansible call of a second or more):
	# two judged from what a capture and a receiver on dst wrote, brought
	# back, and one that must say n/a on hosts rather than run.
	run timeout 400 "$TL_REPO/experiments/transparency" --inventory "$NH_DIR/hosts.ini" --quick \
		--systems tun,plain --probes tcp,src-addr,leak --results "$res"
	echo "$output" | tail -n 20
	((status == 0)) || tl_fail "expected transparency --inventory to exit 0, got $status"
	[[ $(head -n 1 "$csv") == "system,probe,result,reason,evidence" ]] ||
		tl_fail "expected the local run's header, got: $(head -n 1 "$csv")"
	cells=$(awk -F, 'NR > 1 { print $1 "/" $2 "/" $3 }' "$csv" | sort | tr '\n' ' ')
	[[ $cells == "plain/leak/n/a plain/src-addr/yes plain/tcp/yes tun/leak/n/a tun/src-addr/yes tun/tcp/yes " ]] ||
		tl_fail "expected tcp and src-addr yes and leak n/a on both, got: $(tail -n +2 "$csv")"
	grep -q '^tun,src-addr,yes,dst sees 10.8.0.2 ' "$csv" || tl_fail "expected dst to see tun's inner address"
	grep -q '^plain,src-addr,yes,dst sees 10.101.0.2 ' "$csv" || tl_fail "expected dst to see cli's underlay address on plain"
	grep -q '^tun,leak,n/a,not run on an inventory.s hosts: ' "$csv" || tl_fail "expected the leak cell to say why it did not run"
	grep -q 'tcpdump -i in0 ' "$res/raw/transparency/tun/tcp.txt" && grep -q 'data=tcp-tun' "$res/raw/transparency/tun/tcp.txt" ||
		tl_fail "expected dst's capture and receiver log brought back as evidence"
	grep -q '^backend: hosts' "$meta" || tl_fail "expected the back end in the .meta"
	for role in cli srv dst; do
		for key in kernel cpu tunlab; do
			grep -Eq "^host\.$role\.$key: .+" "$meta" || tl_fail "expected host.$role.$key in the .meta"
		done
	done
	grep -q '^host\.dst\.nic\.in0\.driver: veth$' "$meta" || tl_fail "expected dst's NIC driver in the .meta"
	hosts_left_as_found
}

# refused_system EXPERIMENT SYSTEMS ROW WHY: EXPERIMENT --systems SYSTEMS on
# the hosts exits 2 naming ROW and WHY, before any host is touched.
refused_system() {
	local exp=$1 systems=$2 row=$3 why=$4 res=$BATS_TEST_TMPDIR/$1-$3 line
	run timeout 60 "$TL_REPO/experiments/$exp" --inventory "$NH_DIR/hosts.ini" --quick \
		--systems "$systems" --results "$res"
	echo "$output" | tail -n 8
	((status == 2)) || tl_fail "expected $exp --systems $systems refused on hosts (exit 2), got $status"
	line=$(grep "^refusing system $row: it does not run on an inventory's hosts: " <<<"$output") ||
		tl_fail "expected $exp to refuse $row by name"
	[[ $line == *"$why"* ]] || tl_fail "expected $exp to say why it refuses $row ($why), got: $line"
	[[ ! -e $res/$exp.csv ]] || tl_fail "expected no data from a refused run"
}

@test "hosts: a system the hosts back end does not set up is refused by name and reason, in every experiment" {
	# experiment.sh's selection (throughput) and transparency's: one shared
	# check (systems.sh), and plain beside the refused row does not make the
	# run go on without it.
	refused_system throughput plain,openvpn-udp openvpn-udp "its configs name certificates"
	refused_system throughput tun,wireguard-go wireguard-go "its start runs wg with ip netns exec"
	refused_system throughput tls-relay tls-relay "its probe runs socat"
	refused_system throughput nfqueue nfqueue "not tried there yet"
	refused_system transparency plain,openvpn-tcp openvpn-tcp "its configs name certificates"
	# Without --systems ("all"), the same rows are left out, each named with
	# its reason, and only plain and tun remain.
	run bash -c '
		source "$1/experiments/lib/netns.sh"
		source "$1/experiments/lib/systems.sh"
		TL_BACKEND=hosts
		echo "run: $(sys_available "$(sys_select all)" 2>/dev/null | cut -d" " -f1 | tr "\n" " ")"
		sys_available "$(sys_select all)" 2>&1 >/dev/null
		sys_skipped "$(sys_select all)"
	' _ "$TL_REPO"
	echo "$output"
	tl_expect_contains "only the hosts rows run" "$output" "run: plain tun "$'\n'
	tl_expect_contains "the SKIP line" "$output" "SKIP wireguard-go: does not run on an inventory's hosts: its start runs wg"
	tl_expect_contains "the .meta line" "$output" "skipped.openvpn-udp: does not run on an inventory's hosts: its configs"
	tl_expect_contains "a row not tried there" "$output" "skipped.proxy: does not run on an inventory's hosts: not tried there yet"
	hosts_left_as_found
}

@test "hosts: an experiment that does not run on hosts yet refuses --inventory instead of using namespaces" {
	run timeout 60 "$TL_REPO/experiments/rtt" --inventory "$NH_DIR/hosts.ini" --quick \
		--results "$BATS_TEST_TMPDIR/results"
	((status != 0)) || tl_fail "expected rtt --inventory to fail"
	[[ $output == *"rtt: does not run on an inventory's hosts yet"* ]] || tl_fail "expected it to say so, got: $output"
	# A script outside experiment.sh, too (netns.sh's check).
	run timeout 60 "$TL_REPO/experiments/bench" --inventory "$NH_DIR/hosts.ini" --reps 1 --no-save
	((status == 2)) || tl_fail "expected bench --inventory refused (exit 2), got $status"
	[[ $output == *"bench: does not run on an inventory's hosts yet"* ]] || tl_fail "expected bench to say so, got: $output"
}
