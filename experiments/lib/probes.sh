# SPDX-License-Identifier: MIT
# probes.sh: the transparency probes, one function per matrix row, each judged from what arrives where it should (sourced).
# shellcheck shell=bash
#
# A probe runs in a topology where one system of systems.sh carries cli's
# traffic (srv blocks cleartext forwarding for every tunnel row, so what
# reaches dst went through the system). It sends something from cli (or
# from dst, for the inbound probe), captures at the receiving end with
# tcpdump (bounded by -c and timeout), lets a socket there say what the
# stack delivered, and ends with one call of
#
#   probe_verdict yes|no|partial|info "short reason"
#
# The sender's exit code is never the verdict: a cell says yes only when
# the receiving side shows the thing arrived (and, for round trips, that
# the answer came back). The evidence goes to one text file per probe,
# $PROBE_EV: each capture and socket log as a "## section".
#
# The runner (experiments/transparency) sets, per probe:
#   PROBE_SYS   the system's id          PROBE_ID   the probe's id
#   PROBE_EV    the evidence file        PROBE_OUT  where the verdict goes
#   PROBE_WORK  a scratch directory      PROBE_SNAP the kernel-object snapshots
# and the system's SYS_* variables (systems.sh): SYS_TARGET for a relay that
# the application must connect to instead of dst, SYS_PIDS/TL_CLI_PID for
# the client-side process the leak probe kills.
#
# Probes do not rely on `set -e`: each checks what it needs and writes a
# verdict; the runner calls each one in a subshell and reports "error" when
# none was written. Sourced after netns.sh and systems.sh.
#
# Roles, not namespaces: a probe runs things on cli, srv and dst only
# through netns.sh's tl_ns and tl_bg, and reads what a receiver or a
# capture wrote only after probe_sync (tl_fetch): in the namespaces those
# are ip netns exec and a no-op; with --inventory (hosts.sh) an Ansible
# call on the role's host and a copy of the files back into PROBE_WORK.
# The probes of PROBE_NOT_ON_HOSTS would change a host setting the
# harness cannot undo for sure, or read namespace-only state: on hosts
# their cell says so ("n/a") instead of running them.

PROBE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROBE_SOCK=$PROBE_LIB_DIR/probesock.py
# Debian's interpreter starts in a third of the time of a version-manager shim.
PROBE_PYTHON=${PROBE_PYTHON:-$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || echo python3)}

PROBE_TCP_PORT=${MEAS_PORT:-5201}  # the relay forwards this port only: every TCP probe to dst uses it
PROBE_UDP_PORT=5202
PROBE_IN_PORT=5203                 # listener in cli for the connection dst opens
PROBE_TTL=33                       # an unusual value, so the one dst sees is clearly derived from it
PROBE_TOS=0xb8                     # DSCP 46 (EF), ECN bits 0
PROBE_PROTO=253                    # RFC 3692 experimental: no stack has a handler, so only a raw socket takes it
PROBE_FRAG_SIZE=4000               # UDP payload: three fragments at MTU 1500
PROBE_PMTU_LINK=1280               # the bottleneck put on srv-dst for the PMTU probe
PROBE_PMTU_SIZE=1300               # ping payload: 1328-byte packets fit every tunnel's MTU, not the bottleneck
PROBE_FLOWS=100
PROBE_WAIT=${PROBE_WAIT:-2}        # seconds to wait for something to arrive before calling it lost
PROBE_DST_IF=${TL_DST_IN_IF:-$TL_IN_IF} # dst's interface toward srv (an inventory may name it otherwise)
PROBE_RX_SECONDS=10                # how long a receiver listens (it is stopped once the probe is done)
PROBE_BG_TIMEOUT=30                # the bound on a receiver's or a capture's life
if [[ $TL_BACKEND == hosts ]]; then
	# The copy prepare.yml unpacked on each host, run by Debian's python3.
	PROBE_SOCK=$TL_HOSTS_DIR/src/experiments/lib/probesock.py PROBE_PYTHON=/usr/bin/python3
	# Every step is an Ansible call of one to three seconds: a receiver
	# must outlive the ten or so between its start and the sender's.
	PROBE_RX_SECONDS=60 PROBE_BG_TIMEOUT=90
fi

# shellcheck disable=SC2034 # read by probe_run
declare -gA PROBE_NOT_ON_HOSTS=(
	[ecn]="it sets net.ipv4.tcp_ecn on cli's host for the probe"
	[ecn-ce]="it needs a netfilter marking rule on srv's host that the harness does not track"
	[pmtu]="it lowers the MTU of srv's and dst's NICs"
	[flow-state]="it counts srv's sockets and conntrack entries with namespace-only commands"
	[kernel-objects]="its snapshots list a namespace's objects (a host has many of its own)"
	[leak]="it kills the client with kill -9 on this machine and reads /proc here"
)

# shellcheck disable=SC2034 # TL_PROBES and PROBE_QUICK are read by the runner and the tests
# id              function                 label (rest of line)
TL_PROBES=(
	"tcp            probe_tcp                TCP"
	"udp            probe_udp                UDP"
	"icmp           probe_icmp               ICMP echo"
	"proto253       probe_proto253           IP protocol 253"
	"src-addr       probe_src_addr           source address at dst"
	"ttl            probe_ttl                TTL"
	"dscp           probe_dscp               DSCP"
	"ecn            probe_ecn                ECN (ECT marks at dst)"
	"ecn-ce         probe_ecn_ce             ECN CE mark from the underlay"
	"frag           probe_frag               4000 B UDP datagram, DF off, arrives whole"
	"pmtu           probe_pmtu               PMTU: frag-needed back to ping -M do"
	"inbound        probe_inbound            connection from dst to cli"
	"ipv6           probe_ipv6               IPv6"
	"flow-state     probe_flow_state         no per-flow state at exit"
	"kernel-objects probe_kernel_objects     kernel objects added"
	"leak           probe_leak               fail-closed on kill -9"
)

# The probes `--quick` runs: one of each kind of judgement, a few seconds each.
PROBE_QUICK="tcp,udp,icmp,proto253,src-addr,ttl"

# ---- the probe table -----------------------------------------------------------

probe_ids() {
	local row id rest
	for row in "${TL_PROBES[@]}"; do
		read -r id rest <<<"$row"
		printf '%s ' "$id"
	done
}

# probe_select LIST: prints "id function label" rows for a comma list of ids
# ("all" or empty: every row), in the table's order, so that the leak probe,
# which kills the system, always runs last. Fails on an unknown id.
probe_select() {
	local want=${1:-all} row id fn label known
	local -a ids
	IFS=, read -r -a ids <<<"$want"
	if [[ $want != all ]]; then
		for id in "${ids[@]}"; do
			known=0
			for row in "${TL_PROBES[@]}"; do
				[[ ${row%% *} == "$id" ]] && known=1
			done
			((known)) || { echo "unknown probe '$id' (known: $(probe_ids))" >&2; return 1; }
		done
	fi
	for row in "${TL_PROBES[@]}"; do
		read -r id fn label <<<"$row"
		if [[ $want == all || ,$want, == *",$id,"* ]]; then
			printf '%s %s %s\n' "$id" "$fn" "$label"
		fi
	done
}

# Metadata lines naming each selected probe: "probe.ttl: TTL".
probe_meta_labels() {
	local id label
	while read -r id _ label; do
		[[ -z $id ]] || echo "probe.$id: $label"
	done <<<"$1"
}

# Versions of the tools the probes use, as metadata lines.
probe_meta_tools() {
	echo "tcpdump: $(tcpdump --version 2>&1 | head -n 1)"
	echo "python3: $("$PROBE_PYTHON" --version 2>&1)"
	echo "ping: $(ping -V 2>&1 | head -n 1)"
	echo "iptables: $(iptables --version 2>&1 | head -n 1)"
	echo "iproute2: $(ip -V 2>&1 | head -n 1)"
	if command -v conntrack >/dev/null; then
		echo "conntrack: $(conntrack --version 2>&1 | head -n 1)"
	else
		echo "conntrack: not installed (flow-state counts /proc/net/nf_conntrack only)"
	fi
}

# ---- running one probe ----------------------------------------------------------

# probe_run FN: runs probe FN with the PROBE_* context set, in a subshell so
# that a probe that breaks costs one "error" cell; stops the helpers it left
# running (the system's own processes were started before it). The verdict
# lands in PROBE_RESULT and PROBE_REASON, and at the end of the evidence.
probe_run() {
	local fn=$1 mark rmark=0
	mkdir -p "$PROBE_WORK"
	rm -f -- "$PROBE_OUT"
	[[ -s $PROBE_EV ]] || echo "# transparency probe $PROBE_ID on system $PROBE_SYS ($(date -u +%Y-%m-%dT%H:%M:%SZ))" >"$PROBE_EV"
	mark=$(wc -l <"$TL_TMP/pids")
	[[ ! -f $TL_TMP/remote-pids ]] || rmark=$(wc -l <"$TL_TMP/remote-pids")
	if [[ $TL_BACKEND == hosts && -n ${PROBE_NOT_ON_HOSTS[$PROBE_ID]:-} ]]; then
		probe_verdict n/a "not run on an inventory's hosts: ${PROBE_NOT_ON_HOSTS[$PROBE_ID]}"
	else
		("$fn" >"$PROBE_WORK/stdout.log" 2>&1 </dev/null) || true
	fi
	probe_reap_since "$mark" "$rmark"
	if [[ -s $PROBE_OUT ]]; then
		IFS=$'\t' read -r PROBE_RESULT PROBE_REASON <"$PROBE_OUT"
	else
		PROBE_RESULT=error
		PROBE_REASON="the probe ended without a verdict: $(tail -n 1 "$PROBE_WORK/stdout.log" 2>/dev/null | tr -d ',"')"
		probe_section "probe output" "$PROBE_WORK/stdout.log"
	fi
	echo "## verdict: $PROBE_RESULT: $PROBE_REASON" >>"$PROBE_EV"
}

# probe_reap_since MARK [RMARK]: stops the processes recorded after line
# MARK of netns.sh's pid file (and after line RMARK of hosts.sh's, those
# not stopped yet).
probe_reap_since() {
	local pid
	for pid in $(tl_started_pids "$1"); do
		tl_stop "$pid" TERM 2 >/dev/null 2>&1 || true
	done
	[[ $TL_BACKEND != hosts ]] && return 0
	for pid in $(tl_hosts_unstopped "${2:-0}"); do
		tl_stop "$pid" TERM 2 >/dev/null 2>&1 || true
	done
	return 0
}

# probe_sync: what the receivers and captures of this probe wrote on the
# hosts, copied back into PROBE_WORK (tl_fetch; nothing to do in the
# namespaces, where they write here).
probe_sync() {
	[[ $TL_BACKEND != hosts ]] || tl_hosts_fetch_under "$PROBE_WORK"
}

# probe_wait_text PID LOG TEXT: until LOG, which PID writes, holds TEXT
# (5 s); on a host the polling runs there, in the call that started PID
# when its caller set TL_HOSTS_READY (hosts.sh), else in one call more.
probe_wait_text() {
	if [[ $1 == *:* ]]; then
		[[ $1 == "${TL_HOSTS_READY_PID:-}" ]] && return 0
		tl_hosts_wait_text "$1" "$2" "$3" 5 >/dev/null 2>&1
	else
		tl_wait_until 5 probe_log_has "$1" "$2" "$3"
	fi
}

# ---- verdicts and evidence ---------------------------------------------------------

# probe_verdict RESULT REASON: the cell. The reason is one line with neither
# commas nor double quotes, so the CSV needs no quoting.
probe_verdict() {
	local result=$1 reason=$2
	reason=${reason//$'\n'/ }
	reason=${reason//,/;}
	reason=${reason//\"/\'}
	printf '%s\t%s\n' "$result" "$reason" >"$PROBE_OUT"
}

# probe_section TITLE [FILE]: appends "## TITLE" and FILE (or stdin) to the evidence.
probe_section() {
	local title=$1
	{
		echo "## $title"
		if (($# > 1)); then
			cat -- "$2" 2>/dev/null || echo "(no output)"
		else
			cat
		fi
		echo
	} >>"$PROBE_EV"
}

# Packets in a tcpdump text log (a packet's first line starts with its time).
probe_packets() {
	grep -cE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+ ' "$1" 2>/dev/null || true
}

# ---- helpers that run things ------------------------------------------------------

# probe_sock NS NAME SUBCOMMAND ARGS...: probesock.py in NS in the foreground,
# output to PROBE_WORK/NAME.log (and stdout), bounded by `timeout`.
probe_sock() {
	local ns=$1 name=$2
	shift 2
	tl_ns "$ns" timeout 20 "$PROBE_PYTHON" "$PROBE_SOCK" "$@" 2>&1 | tee -a "$PROBE_WORK/$name.log"
}

# probe_sock_bg NS NAME SUBCOMMAND ARGS...: a receiver in the background
# (PID in PROBE_LAST_PID); returns once it says it is ready.
probe_sock_bg() {
	local ns=$1 name=$2 log=$PROBE_WORK/$2.log TL_HOSTS_READY="ready=1"
	shift 2
	tl_bg "$ns" "$log" timeout "$PROBE_BG_TIMEOUT" "$PROBE_PYTHON" "$PROBE_SOCK" "$@" >/dev/null || return 1
	PROBE_LAST_PID=$TL_LAST_PID
	probe_wait_text "$PROBE_LAST_PID" "$log" "ready=1" ||
		{ echo "probesock $* did not get ready in $ns" >>"$log"; return 1; }
}

probe_log_has() {
	grep -qF -- "$3" "$2" 2>/dev/null && return 0
	tl_pid_alive "$1" || return 255
	return 1
}

# probe_capture NS IF NAME COUNT FILTER: tcpdump -n -v in NS on IF, at most
# COUNT packets and 30 s, into PROBE_WORK/NAME.cap (PID in PROBE_LAST_PID);
# returns once tcpdump listens.
probe_capture() {
	local ns=$1 dev=$2 name=$3 count=$4 filter=$5 log=$PROBE_WORK/$3.cap TL_HOSTS_READY="listening on"
	echo "# tcpdump -i $dev -n -v -c $count '$filter'" >"$log.cmd"
	tl_bg "$ns" "$log" timeout "$PROBE_BG_TIMEOUT" tcpdump -i "$dev" -n -v -l --immediate-mode -c "$count" "$filter" >/dev/null ||
		return 1
	PROBE_LAST_PID=$TL_LAST_PID
	probe_wait_text "$PROBE_LAST_PID" "$log" "listening on" ||
		{ echo "tcpdump did not start in $ns" >>"$log"; return 1; }
}

# probe_capture_done NAME PID TITLE: stops the capture once its output has
# stopped growing, and files it as evidence.
probe_capture_done() {
	local name=$1 pid=$2 title=$3 log=$PROBE_WORK/$1.cap
	probe_settle "$log"
	tl_stop "$pid" TERM 2 >/dev/null 2>&1 || true
	probe_sync
	cat -- "$log.cmd" "$log" 2>/dev/null | probe_section "$title"
}

# probe_settle FILE: returns once FILE has not grown for 0.2 s (at most 1 s):
# the packets a sender has just put on the wire are printed by then. On
# hosts the stop that follows is itself a call of over a second.
probe_settle() {
	local size last=-1 i
	[[ $TL_BACKEND != hosts ]] || return 0
	for ((i = 0; i < 10; i++)); do
		size=$(stat -c %s -- "$1" 2>/dev/null || echo 0)
		((size == last)) && return 0
		last=$size
		sleep 0.1
	done
}

# probe_stop PID: ends a helper we started (it may have exited already).
probe_stop() {
	[[ -n ${1:-} ]] || return 0
	tl_stop "$1" TERM 2 >/dev/null 2>&1 || true
}

# probe_wait SECONDS CMD...: polls CMD, on the files of PROBE_WORK as they
# are now (probe_sync), until true or SECONDS pass.
probe_wait() {
	local timeout=$1
	shift
	tl_wait_until "$timeout" probe_synced "$@" 2>/dev/null
}

probe_synced() {
	probe_sync
	"$@"
}

# probe_arrived RXLOG PATTERN: the receiver logged PATTERN; gives up at once
# (status 255 for tl_wait_until) when the sender's connect failed.
probe_arrived() {
	probe_file_has "$1" "$2" && return 0
	probe_file_has "$PROBE_WORK/tx.log" "connect=failed" && return 255
	return 1
}

probe_file_has() {
	grep -qE -- "$2" "$1" 2>/dev/null
}

# probe_kv FILE KEY: the value of the first "KEY=value" word in FILE.
probe_kv() {
	grep -oE "(^| )$2=[^ ]*" "$1" 2>/dev/null | head -n 1 | sed -E "s/^ ?$2=//"
}

# The address and port an application in cli connects to for dst's TCP port.
probe_tcp_target() {
	echo "${SYS_TARGET:-$TL_DST_IN4:$PROBE_TCP_PORT}"
}

# What an address is, in this topology's terms.
probe_addr_kind() {
	case $1 in
	"$TL_TUN_CLI4" | "$TL_TUN_CLI6") echo "cli's inner address" ;;
	"$TL_CLI_UL4" | "$TL_CLI_UL6") echo "cli's underlay address" ;;
	"$TL_SRV_IN4" | "$TL_SRV_IN6") echo "the exit's own address" ;;
	"$TL_SRV_UL4" | "$TL_TUN_SRV4") echo "an address of srv" ;;
	127.* | ::1) echo "a loopback address" ;;
	*) echo "an address of neither end" ;;
	esac
}

# ---- TCP, UDP, ICMP, another protocol --------------------------------------------------

# A line over TCP from cli to dst's port, and dst's answer back. Through a
# relay the application must connect to the relay's port in cli: partial.
probe_tcp() {
	local target cap rx
	target=$(probe_tcp_target)
	probe_sock_bg "$NS_DST" rx tcp-listen "$TL_DST_IN4" "$PROBE_TCP_PORT" --seconds "$PROBE_RX_SECONDS" --max 1 || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 20 "tcp port $PROBE_TCP_PORT" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx tcp-send "${target%:*}" "${target##*:}" --data "tcp-$PROBE_SYS" \
		--timeout "$PROBE_WAIT" >/dev/null
	probe_wait "$PROBE_WAIT" probe_arrived "$PROBE_WORK/rx.log" "data=tcp-$PROBE_SYS"
	probe_capture_done dst "$cap" "capture at dst"
	probe_stop "$rx"
	probe_section "sender in cli: tcp-send $target" "$PROBE_WORK/tx.log"
	probe_section "receiver in dst: tcp-listen $TL_DST_IN4:$PROBE_TCP_PORT" "$PROBE_WORK/rx.log"
	probe_judge_exchange "TCP" "$PROBE_WORK/rx.log" "data=tcp-$PROBE_SYS" "$PROBE_WORK/tx.log" "reply=ok" \
		"$PROBE_WORK/dst.cap" "$target"
}

# probe_judge_exchange WHAT RXLOG RXPAT TXLOG TXPAT CAP [TARGET]: yes when the
# receiver in dst got it and the answer came back to cli.
probe_judge_exchange() {
	local what=$1 rxlog=$2 rxpat=$3 txlog=$4 txpat=$5 cap=$6 target=${7:-}
	local seen
	seen=$(probe_packets "$cap")
	if ! probe_file_has "$rxlog" "$rxpat"; then
		probe_verdict no "nothing reached dst's socket ($seen packets at dst's interface)"
	elif ! probe_file_has "$txlog" "$txpat"; then
		probe_verdict partial "one way only: dst's socket got it; its answer never reached cli"
	elif [[ -n ${SYS_TARGET:-} && $target == "$SYS_TARGET" ]]; then
		probe_verdict partial "only through the relay's port $SYS_TARGET in cli: the application must be pointed at it; one destination per port"
	else
		probe_verdict yes "$what both ways: dst's socket got the data and its answer reached cli"
	fi
}

# One UDP datagram to dst, and dst's answer back.
probe_udp() {
	local cap rx
	probe_sock_bg "$NS_DST" rx udp-listen "$TL_DST_IN4" "$PROBE_UDP_PORT" --seconds "$PROBE_RX_SECONDS" || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 10 "udp port $PROBE_UDP_PORT" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx udp-send "$TL_DST_IN4" "$PROBE_UDP_PORT" --size 64 --wait "$PROBE_WAIT" >/dev/null
	probe_wait 1 probe_file_has "$PROBE_WORK/rx.log" "peer="
	probe_capture_done dst "$cap" "capture at dst"
	probe_stop "$rx"
	probe_section "sender in cli: udp-send $TL_DST_IN4:$PROBE_UDP_PORT, 64 bytes" "$PROBE_WORK/tx.log"
	probe_section "receiver in dst: udp-listen $TL_DST_IN4:$PROBE_UDP_PORT" "$PROBE_WORK/rx.log"
	probe_judge_exchange "UDP" "$PROBE_WORK/rx.log" "bytes=64" "$PROBE_WORK/tx.log" "reply=ok" \
		"$PROBE_WORK/dst.cap"
}

# Echo requests must reach dst's interface and the replies cli's ping.
probe_icmp() {
	local cap requests sent received
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 12 "icmp" || return 1
	cap=$PROBE_LAST_PID
	tl_ns "$NS_CLI" timeout 6 ping -n -c 3 -i 0.2 -W 1 -w 2 "$TL_DST_IN4" >"$PROBE_WORK/ping.log" 2>&1
	probe_capture_done dst "$cap" "capture at dst"
	probe_section "sender in cli: ping -c 3 $TL_DST_IN4" "$PROBE_WORK/ping.log"
	requests=$(grep -c 'ICMP echo request' "$PROBE_WORK/dst.cap" 2>/dev/null)
	read -r sent received < <(probe_ping_counts "$PROBE_WORK/ping.log")
	if ((requests == 0)); then
		probe_verdict no "none of $sent echo requests reached dst"
	elif ((received == 0)); then
		probe_verdict no "$requests of $sent echo requests reached dst; no reply came back to cli"
	elif ((requests < sent || received < sent)); then
		probe_verdict partial "$requests of $sent echo requests reached dst; $received replies came back"
	else
		probe_verdict yes "$sent echo requests reached dst; $received replies came back to cli"
	fi
}

# "SENT RECEIVED" from ping's summary line (ping -w keeps sending while
# nothing answers, so the count sent is read, not assumed).
probe_ping_counts() {
	local line
	line=$(grep -m 1 'packets transmitted' "$1" 2>/dev/null)
	[[ $line =~ ([0-9]+)\ packets\ transmitted,\ ([0-9]+)\ received ]] &&
		{ echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; return 0; }
	echo "0 0"
}

# An IP protocol no stack handles: a raw socket in dst must receive it,
# which it does only after dst's netfilter INPUT let it in.
probe_proto253() {
	local cap rx seen src
	probe_sock_bg "$NS_DST" rx raw-listen --proto "$PROBE_PROTO" --seconds "$PROBE_RX_SECONDS" || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 10 "ip proto $PROBE_PROTO" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx raw-send "$TL_DST_IN4" --proto "$PROBE_PROTO" --size 64 >/dev/null
	probe_wait "$PROBE_WAIT" probe_file_has "$PROBE_WORK/rx.log" "proto=$PROBE_PROTO"
	probe_capture_done dst "$cap" "capture at dst"
	probe_stop "$rx"
	probe_section "sender in cli: raw-send $TL_DST_IN4 protocol $PROBE_PROTO, 64 bytes" "$PROBE_WORK/tx.log"
	probe_section "receiver in dst: raw socket, protocol $PROBE_PROTO" "$PROBE_WORK/rx.log"
	seen=$(probe_packets "$PROBE_WORK/dst.cap")
	src=$(probe_kv "$PROBE_WORK/rx.log" src)
	if [[ -n $src ]]; then
		probe_verdict yes "dst's raw socket got the protocol-$PROBE_PROTO datagram (from $src)"
	elif ((seen > 0)); then
		probe_verdict no "$seen packets of protocol $PROBE_PROTO at dst's interface; dst's stack delivered none"
	else
		probe_verdict no "no protocol-$PROBE_PROTO packet reached dst"
	fi
}

# ---- addresses and header fields -----------------------------------------------------

# The source address of a TCP connection, as dst's socket sees it, against
# the one the sending socket in cli had.
probe_src_addr() {
	local target cap rx sender seen
	target=$(probe_tcp_target)
	probe_sock_bg "$NS_DST" rx tcp-listen "$TL_DST_IN4" "$PROBE_TCP_PORT" --seconds "$PROBE_RX_SECONDS" --max 1 || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 2 "tcp dst port $PROBE_TCP_PORT and tcp[tcpflags] & tcp-syn != 0" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx tcp-send "${target%:*}" "${target##*:}" --data "src-$PROBE_SYS" \
		--timeout "$PROBE_WAIT" >/dev/null
	probe_wait "$PROBE_WAIT" probe_arrived "$PROBE_WORK/rx.log" "peer="
	probe_capture_done dst "$cap" "capture at dst (SYN)"
	probe_stop "$rx"
	probe_section "sender in cli: tcp-send $target" "$PROBE_WORK/tx.log"
	probe_section "receiver in dst" "$PROBE_WORK/rx.log"
	sender=$(probe_kv "$PROBE_WORK/tx.log" local)
	sender=${sender%:*}
	seen=$(probe_kv "$PROBE_WORK/rx.log" peer)
	seen=${seen%:*}
	if [[ -z $seen ]]; then
		probe_verdict no "no connection reached dst"
	elif [[ $seen == "$sender" ]]; then
		probe_verdict yes "dst sees $seen ($(probe_addr_kind "$seen")): the address the sending socket had"
	elif [[ $seen == "$TL_SRV_IN4" ]]; then
		probe_verdict no "dst sees $seen (the exit's own address); the sender had $sender ($(probe_addr_kind "$sender")): dst cannot tell clients apart"
	else
		probe_verdict partial "dst sees $seen ($(probe_addr_kind "$seen")); the sending socket had $sender ($(probe_addr_kind "$sender"))"
	fi
}

# probe_syn_field CAP FIELD: the value of "FIELD N" in the first packet's
# IP header line (tcpdump -v), e.g. ttl or tos.
probe_syn_field() {
	grep -m 1 -E '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+ IP ' "$1" 2>/dev/null |
		grep -oE "[(, ]$2 [0-9a-fx]+" | head -n 1 | awk '{ print $2 }'
}

# probe_syn_with NAME FLAGS...: a TCP connection from cli with socket
# options FLAGS; the SYN captured at dst goes to PROBE_WORK/dst.cap.
probe_syn_with() {
	local target cap rx
	target=$(probe_tcp_target)
	probe_sock_bg "$NS_DST" rx tcp-listen "$TL_DST_IN4" "$PROBE_TCP_PORT" --seconds "$PROBE_RX_SECONDS" --max 1 || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 1 "tcp dst port $PROBE_TCP_PORT and tcp[tcpflags] & tcp-syn != 0" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx tcp-send "${target%:*}" "${target##*:}" --data "$1-$PROBE_SYS" \
		--timeout "$PROBE_WAIT" "${@:2}" >/dev/null
	probe_wait "$PROBE_WAIT" eval "(( \$(probe_packets $PROBE_WORK/dst.cap) > 0 ))"
	probe_capture_done dst "$cap" "capture at dst (SYN, tcpdump -v)"
	probe_stop "$rx"
	probe_section "sender in cli: tcp-send $target ${*:2}" "$PROBE_WORK/tx.log"
}

# The TTL a SYN arrives with at dst, sent with TTL 33. Plain routing
# decrements once, at srv; a tunnel whose exit forwards does the same.
probe_ttl() {
	local ttl hops
	probe_syn_with ttl --ttl "$PROBE_TTL" || return 1
	ttl=$(probe_syn_field "$PROBE_WORK/dst.cap" ttl)
	if [[ -z $ttl ]]; then
		probe_verdict no "no SYN reached dst"
		return 0
	fi
	hops=$((PROBE_TTL - ttl))
	if ((hops == 1)); then
		probe_verdict yes "dst sees ttl $ttl: the sender's $PROBE_TTL less one hop (the exit) as in plain routing"
	elif ((hops == 0)); then
		probe_verdict partial "dst sees ttl $ttl: the sender's value not decremented at the exit (the packet skips forwarding)"
	elif ((hops > 1 && hops <= 4)); then
		probe_verdict partial "dst sees ttl $ttl: the sender's $PROBE_TTL decremented $hops times"
	else
		probe_verdict no "dst sees ttl $ttl: not derived from the sender's $PROBE_TTL (a new packet from the exit)"
	fi
}

# DSCP of a SYN whose socket set TOS 0xb8 (EF).
probe_dscp() {
	local tos dscp want
	probe_syn_with dscp --tos "$PROBE_TOS" || return 1
	tos=$(probe_syn_field "$PROBE_WORK/dst.cap" tos)
	want=$((PROBE_TOS >> 2))
	if [[ -z $tos ]]; then
		probe_verdict no "no SYN reached dst"
		return 0
	fi
	dscp=$((tos >> 2))
	if ((dscp == want)); then
		probe_verdict yes "dst sees DSCP $dscp (tos $tos) as the sender set it"
	else
		probe_verdict no "dst sees DSCP $dscp (tos $tos); the sender set $want (EF)"
	fi
}

# probe_ecn_exchange TAG: cli (tcp_ecn=1 in its namespace for the probe;
# dst answers with its default 2) sends data "TAG-SYSTEM" over TCP to dst;
# dst's capture (tcpdump -v) goes to PROBE_WORK/dst.cap. Both ECN probes.
probe_ecn_exchange() {
	local tag=$1 target cap rx old
	target=$(probe_tcp_target)
	probe_sock_bg "$NS_DST" rx tcp-listen "$TL_DST_IN4" "$PROBE_TCP_PORT" --seconds "$PROBE_RX_SECONDS" --max 1 || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 6 "tcp dst port $PROBE_TCP_PORT" || return 1
	cap=$PROBE_LAST_PID
	old=$(tl_ns "$NS_CLI" sysctl -n net.ipv4.tcp_ecn 2>/dev/null)
	tl_ns "$NS_CLI" sysctl -qw net.ipv4.tcp_ecn=1 >/dev/null
	probe_sock "$NS_CLI" tx tcp-send "${target%:*}" "${target##*:}" --data "$tag-$PROBE_SYS" \
		--timeout "$PROBE_WAIT" >/dev/null
	probe_wait "$PROBE_WAIT" probe_arrived "$PROBE_WORK/rx.log" "data=$tag-"
	tl_ns "$NS_CLI" sysctl -qw "net.ipv4.tcp_ecn=${old:-2}" >/dev/null
	probe_capture_done dst "$cap" "capture at dst (tcpdump -v)"
	probe_stop "$rx"
	probe_section "sender in cli (net.ipv4.tcp_ecn=1): tcp-send $target" "$PROBE_WORK/tx.log"
	probe_section "receiver in dst" "$PROBE_WORK/rx.log"
}

# ECN as an application gets it: end to end, dst sees the SYN's ECE+CWR
# and data segments marked ECT(0). Congestion marks (CE) are probe_ecn_ce's.
probe_ecn() {
	local syn_ecn ect data
	probe_ecn_exchange ecn || return 1
	read -r syn_ecn ect data < <(probe_ecn_summary "$PROBE_WORK/dst.cap")
	if ((data == 0 && syn_ecn == 0)); then
		probe_verdict no "no ECN setup in the SYN and no data segment reached dst"
	elif ((syn_ecn && ect > 0)); then
		probe_verdict yes "dst sees the SYN ask for ECN (ECE+CWR) and $ect of $data data segments marked ECT"
	elif ((syn_ecn)); then
		probe_verdict partial "ECN set up in the SYN but no data segment reached dst marked ECT ($data unmarked)"
	else
		probe_verdict no "the SYN at dst asks for no ECN and no data segment is ECT-marked: the sender's ECN setup did not reach dst"
	fi
}

# Congestion marks: srv marks CE on every ECN-capable packet that arrives
# from cli on the underlay (mangle PREROUTING, TOS target on the two ECN
# bits), as a congested router would. On the plain path that is the
# packet dst receives; a tunnel must copy the outer CE into the inner
# header at decapsulation (RFC 6040), and can only be marked at all if it
# copied ECT to the outer header. Evidence: how many packets srv marked,
# and the data segments dst saw with CE.
probe_ecn_ce() {
	local ce data marked r rc=0
	local -a rules=("-i $TL_UL_IF -m ecn --ecn-ip-ect 1 -j TOS --set-tos 0x03/0x03"
		"-i $TL_UL_IF -m ecn --ecn-ip-ect 2 -j TOS --set-tos 0x03/0x03")
	for r in "${rules[@]}"; do
		# shellcheck disable=SC2086 # the rule's words
		tl_ns "$NS_SRV" iptables -t mangle -I PREROUTING $r || return 1
	done
	probe_ecn_exchange ce || rc=1
	marked=$(tl_ns "$NS_SRV" iptables -t mangle -vnxL PREROUTING | awk '/TOS set 0x03\/0x03/ { n += $1 } END { print n + 0 }')
	for r in "${rules[@]}"; do
		# shellcheck disable=SC2086
		tl_ns "$NS_SRV" iptables -t mangle -D PREROUTING $r || true
	done
	((rc == 0)) || return 1
	echo "srv marked $marked ECN-capable underlay packets from cli CE" | probe_section "the marking at srv"
	read -r ce data < <(awk '
		/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+ IP / { ce = ($0 ~ /tos 0x[0-9a-f]+,CE/); next }
		/Flags \[/ && match($0, /length [0-9]+$/) && substr($0, RSTART + 7) + 0 > 0 { data++; if (ce) n++ }
		END { printf "%d %d\n", n, data }' "$PROBE_WORK/dst.cap")
	if ((data == 0)); then
		probe_verdict no "no data segment reached dst (srv marked $marked underlay packets CE)"
	elif ((ce > 0)); then
		probe_verdict yes "$ce of $data data segments at dst carry CE; srv marked $marked ECN-capable underlay packets CE"
	elif ((marked == 0)); then
		probe_verdict no "no underlay packet from cli was ECN-capable, so no congestion mark could be set or reach dst ($data data segments, none CE)"
	else
		probe_verdict no "srv marked $marked underlay packets CE but none of the $data data segments at dst carries it: the mark is lost at decapsulation"
	fi
}

# "SYN_HAS_ECE_CWR ECT_DATA_SEGMENTS DATA_SEGMENTS" from a tcpdump -v log,
# where each packet is an IP header line and a TCP line.
probe_ecn_summary() {
	awk '
		/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+ IP / { ect = ($0 ~ /ECT\(|,CE/); next }
		/Flags \[/ {
			if ($0 ~ /Flags \[S[^.]*\]/ && $0 ~ /Flags \[[^]]*E[^]]*W[^]]*\]/) syn = 1
			if (match($0, /length [0-9]+$/) && substr($0, RSTART + 7) + 0 > 0) {
				data++
				if (ect) marked++
			}
		}
		END { printf "%d %d %d\n", syn, marked, data }' "$1"
}

# ---- fragments and path MTU --------------------------------------------------------

# A 4000-byte UDP datagram sent with DF off: it must arrive whole at dst's socket.
probe_frag() {
	local cap rx frags got
	probe_sock_bg "$NS_DST" rx udp-listen "$TL_DST_IN4" "$PROBE_UDP_PORT" --seconds "$PROBE_RX_SECONDS" || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 20 \
		"dst host $TL_DST_IN4 and (udp port $PROBE_UDP_PORT or ip[6:2] & 0x3fff != 0)" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx udp-send "$TL_DST_IN4" "$PROBE_UDP_PORT" --size "$PROBE_FRAG_SIZE" --df no \
		--wait "$PROBE_WAIT" >/dev/null
	probe_wait 1 probe_file_has "$PROBE_WORK/rx.log" "peer="
	probe_capture_done dst "$cap" "capture at dst (fragments)"
	probe_stop "$rx"
	probe_section "sender in cli: udp-send $PROBE_FRAG_SIZE bytes, DF off" "$PROBE_WORK/tx.log"
	probe_section "receiver in dst" "$PROBE_WORK/rx.log"
	frags=$(grep -cE '^[0-9:.]+ IP .*proto UDP' "$PROBE_WORK/dst.cap" 2>/dev/null)
	got=$(probe_kv "$PROBE_WORK/rx.log" bytes)
	if [[ $got == "$PROBE_FRAG_SIZE" ]]; then
		probe_verdict yes "the $PROBE_FRAG_SIZE-byte datagram arrived whole at dst's socket, as $frags IP packets at dst's interface (not told apart: the sender's fragments carried, or the datagram re-sent and fragmented by the exit)"
	elif [[ -n $got ]]; then
		probe_verdict partial "dst's socket got $got of $PROBE_FRAG_SIZE bytes"
	else
		probe_verdict no "nothing reached dst's socket ($frags fragments at dst's interface)"
	fi
}

# srv-dst becomes a 1280-byte bottleneck behind the exit; cli pings dst with
# 1328-byte DF packets, which fit every tunnel's MTU. The sender must learn
# the smaller MTU: an ICMP frag-needed that comes back (captured in cli), or
# its own stack's refusal once it knows it. srv answers a too-big packet
# before its FORWARD chain drops cleartext, so for a tunnel row a
# frag-needed only counts when the pings did not leave cli in clear.
probe_pmtu() {
	local cap dcap ucap icmp mtu local_err arrived clear
	probe_pmtu_link "$PROBE_PMTU_LINK" || { probe_pmtu_link 1500; return 1; }
	probe_capture "$NS_CLI" any cli 4 "icmp and icmp[icmptype] == 3 and icmp[icmpcode] == 4" ||
		{ probe_pmtu_link 1500; return 1; }
	cap=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 6 "icmp[icmptype] == icmp-echo" ||
		{ probe_stop "$cap"; probe_pmtu_link 1500; return 1; }
	dcap=$PROBE_LAST_PID
	probe_capture "$NS_SRV" "$TL_UL_IF" underlay 6 "icmp[icmptype] == icmp-echo and dst host $TL_DST_IN4" ||
		{ probe_stop "$cap"; probe_stop "$dcap"; probe_pmtu_link 1500; return 1; }
	ucap=$PROBE_LAST_PID
	tl_ns "$NS_CLI" timeout 6 ping -n -M 'do' -s "$PROBE_PMTU_SIZE" -c 3 -i 0.2 -W 1 -w 2 "$TL_DST_IN4" \
		>"$PROBE_WORK/ping.log" 2>&1
	probe_wait 1 eval "(( \$(probe_packets $PROBE_WORK/cli.cap) > 0 ))"
	probe_capture_done cli "$cap" "capture in cli (any interface): ICMP frag-needed"
	probe_capture_done dst "$dcap" "capture at dst: echo requests"
	probe_capture_done underlay "$ucap" "capture on srv's underlay end: echo requests to dst in clear"
	probe_pmtu_link 1500
	tl_ns "$NS_CLI" ip route flush cache >/dev/null 2>&1
	icmp=$(probe_packets "$PROBE_WORK/cli.cap")
	mtu=$(grep -oE 'mtu [0-9]+' "$PROBE_WORK/cli.cap" 2>/dev/null | head -n 1 | awk '{ print $2 }')
	local_err=$(grep -oE 'message too long, mtu=[0-9]+' "$PROBE_WORK/ping.log" | head -n 1 | sed 's/.*mtu=//')
	arrived=$(grep -c 'ICMP echo request' "$PROBE_WORK/dst.cap" 2>/dev/null)
	clear=$(probe_packets "$PROBE_WORK/underlay.cap")
	if ((clear > 0)) && probe_blocks_cleartext; then
		probe_verdict no "the DF packets are not carried: they left cli in clear ($clear on the underlay) and srv's own frag-needed answered them"
	elif ((icmp > 0)); then
		probe_verdict yes "ICMP frag-needed (mtu ${mtu:-?}) came back to the sender in cli"
	elif [[ -n $local_err ]]; then
		probe_verdict yes "the sender's own stack refuses the packet: mtu $local_err"
	elif ((arrived > 0)); then
		probe_verdict partial "no frag-needed came back; $arrived echo requests still reached dst (DF not honoured)"
	elif tl_ns "$NS_CLI" ping -n -c 1 -W 1 "$TL_DST_IN4" >>"$PROBE_WORK/ping.log" 2>&1; then
		probe_verdict no "a black hole: small echoes pass but the DF packets vanish without a frag-needed"
	else
		probe_verdict no "no frag-needed came back to ping -M do, and a small echo got no answer either: ICMP is not carried, so no path-MTU signal was observed at all (TCP's own PMTU is not tested here)"
	fi
	probe_section "sender in cli: ping -M do -s $PROBE_PMTU_SIZE (srv-dst MTU $PROBE_PMTU_LINK), then a small ping if nothing came back" \
		"$PROBE_WORK/ping.log"
}

# Does srv refuse cleartext cli<->dst (tl_block_cleartext), i.e. is this a tunnel row?
probe_blocks_cleartext() {
	tl_ns "$NS_SRV" iptables-save 2>/dev/null | grep -qF -- "$TL_BLOCK_COMMENT"
}

probe_pmtu_link() {
	tl_cmd tl_ns "$NS_SRV" ip link set "$TL_IN_IF" mtu "$1" &&
		tl_cmd tl_ns "$NS_DST" ip link set "$PROBE_DST_IF" mtu "$1"
}

# ---- the other direction, IPv6 --------------------------------------------------------

# The address dst would use to reach cli: cli's inner address when cli has
# it, else the source cli's stack picks toward dst.
probe_cli_address() {
	if [[ -n $(tl_ns "$NS_CLI" ip -o -4 addr show to "$TL_TUN_CLI4/32" 2>/dev/null) ]]; then
		echo "$TL_TUN_CLI4"
		return 0
	fi
	tl_ns "$NS_CLI" ip -o route get "$TL_DST_IN4" 2>/dev/null | grep -oE 'src [0-9.]+' | awk '{ print $2 }'
}

# dst opens a TCP connection to cli: a listener in cli must get it.
probe_inbound() {
	local addr cap rx
	addr=$(probe_cli_address)
	[[ -n $addr ]] || { probe_verdict no "cli has no address dst could reach"; return 0; }
	probe_sock_bg "$NS_CLI" rx tcp-listen 0.0.0.0 "$PROBE_IN_PORT" --seconds "$PROBE_RX_SECONDS" --max 1 || return 1
	rx=$PROBE_LAST_PID
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 12 "tcp port $PROBE_IN_PORT" || return 1
	cap=$PROBE_LAST_PID
	probe_sock "$NS_DST" tx tcp-send "$addr" "$PROBE_IN_PORT" --data "inbound-$PROBE_SYS" \
		--timeout "$PROBE_WAIT" >/dev/null
	probe_wait "$PROBE_WAIT" probe_arrived "$PROBE_WORK/rx.log" "data=inbound-"
	probe_capture_done dst "$cap" "capture at dst"
	probe_stop "$rx"
	probe_section "sender in dst: tcp-send $addr:$PROBE_IN_PORT" "$PROBE_WORK/tx.log"
	probe_section "receiver in cli: tcp-listen 0.0.0.0:$PROBE_IN_PORT" "$PROBE_WORK/rx.log"
	if ! probe_file_has "$PROBE_WORK/rx.log" "data=inbound-"; then
		probe_verdict no "dst's connection to cli's $addr ($(probe_addr_kind "$addr")) never reached cli: $(probe_kv "$PROBE_WORK/tx.log" error | tr _ ' ')"
	elif ! probe_file_has "$PROBE_WORK/tx.log" "reply=ok"; then
		probe_verdict partial "cli's listener got dst's data at $addr; the answer never reached dst"
	else
		probe_verdict yes "dst opened a connection to $addr ($(probe_addr_kind "$addr")) and got cli's answer"
	fi
}

# ICMPv6 echo from cli to dst's IPv6 address. A system that sets up no
# IPv6 leaves cli's route to fd02::2 on the underlay, where srv drops it.
probe_ipv6() {
	local cap requests received route src
	probe_capture "$NS_DST" "$PROBE_DST_IF" dst 8 "icmp6 and ip6[40] == 128" || return 1
	cap=$PROBE_LAST_PID
	tl_ns "$NS_CLI" timeout 6 ping -6 -n -c 3 -i 0.2 -W 1 -w 2 "$TL_DST_IN6" >"$PROBE_WORK/ping.log" 2>&1
	probe_capture_done dst "$cap" "capture at dst: ICMPv6 echo requests"
	route=$(tl_ns "$NS_CLI" ip -6 -o route get "$TL_DST_IN6" 2>&1)
	{
		cat "$PROBE_WORK/ping.log"
		echo "cli# ip -6 route get $TL_DST_IN6"
		echo "$route"
	} | probe_section "sender in cli: ping -6 -c 3 $TL_DST_IN6"
	requests=$(grep -c 'ICMP6, echo request' "$PROBE_WORK/dst.cap" 2>/dev/null)
	read -r _ received < <(probe_ping_counts "$PROBE_WORK/ping.log")
	src=$(grep -m 1 -oE '\) [0-9a-f:]+ > [0-9a-f:]+: ' "$PROBE_WORK/dst.cap" | awk '{ print $2 }')
	if ((requests > 0 && received > 0)); then
		probe_verdict yes "$requests echo requests reached dst (from $src); $received replies came back"
	elif ((requests > 0)); then
		probe_verdict no "$requests echo requests reached dst (from $src); no reply came back"
	elif [[ $route == *" dev ${TL_CLI_UL_IF:-$TL_UL_IF} "* ]] && ! tl_ns "$NS_CLI" ip6tables-save 2>/dev/null | grep -qE -- '-j (NFQUEUE|REDIRECT|TPROXY)'; then
		probe_verdict no "not configured: the system set up no IPv6 (cli routes $TL_DST_IN6 to the underlay in clear; srv drops it)"
	elif probe_ipv6_tcp; then
		probe_verdict partial "no ICMPv6 echo request reached dst, but TCP over IPv6 did, both ways ($TL_DST_IN6 port $PROBE_TCP_PORT); UDP over IPv6 not tested"
	else
		probe_verdict no "no ICMPv6 echo request reached dst, and no TCP over IPv6 either"
	fi
}

# A system that carries no ICMPv6 may still carry IPv6 streams (the proxy):
# one TCP exchange cli -> [fd02::2]. Succeeds when the answer came back.
probe_ipv6_tcp() {
	local rx ok=1
	probe_sock_bg "$NS_DST" rx6 tcp-listen "$TL_DST_IN6" "$PROBE_TCP_PORT" --seconds "$PROBE_RX_SECONDS" --max 1 || return 1
	rx=$PROBE_LAST_PID
	probe_sock "$NS_CLI" tx6 tcp-send "$TL_DST_IN6" "$PROBE_TCP_PORT" --data "tcp6-$PROBE_SYS" \
		--timeout "$PROBE_WAIT" >/dev/null
	probe_wait "$PROBE_WAIT" probe_arrived "$PROBE_WORK/rx6.log" "data=tcp6-$PROBE_SYS"
	probe_stop "$rx"
	probe_section "sender in cli: tcp-send [$TL_DST_IN6]:$PROBE_TCP_PORT" "$PROBE_WORK/tx6.log"
	probe_section "receiver in dst: tcp-listen [$TL_DST_IN6]:$PROBE_TCP_PORT" "$PROBE_WORK/rx6.log"
	probe_file_has "$PROBE_WORK/rx6.log" "data=tcp6-" && probe_file_has "$PROBE_WORK/tx6.log" "reply=ok" && ok=0
	return $ok
}

# ---- state at the exit ----------------------------------------------------------------

# 100 TCP connections from cli to dst, held open; then srv's TCP sockets
# toward dst and its conntrack entries are counted. A router keeps none; a
# proxy or relay keeps a socket per flow.
probe_flow_state() {
	local target hold flows held sockets tracked
	target=$(probe_tcp_target)
	probe_sock_bg "$NS_DST" hold hold "$TL_DST_IN4" "$PROBE_TCP_PORT" "$PROBE_FLOWS" --seconds 20 || return 1
	hold=$PROBE_LAST_PID
	tl_bg "$NS_CLI" "$PROBE_WORK/flows.log" timeout 30 "$PROBE_PYTHON" "$PROBE_SOCK" flows \
		"${target%:*}" "${target##*:}" "$PROBE_FLOWS" --seconds 15 --timeout 2 >/dev/null
	flows=$TL_LAST_PID
	probe_wait 10 probe_file_has "$PROBE_WORK/flows.log" "opened="
	probe_wait 5 probe_dst_flows_at_least "$PROBE_FLOWS"
	held=$(probe_dst_flows)
	sockets=$(ip netns exec "$NS_SRV" ss -Htn state established dst "$TL_DST_IN4" 2>/dev/null | wc -l)
	tracked=$(probe_conntrack_count "$NS_SRV")
	{
		echo "dst# ss -Htn state established sport = :$PROBE_TCP_PORT | wc -l"
		echo "$held"
		echo "srv# ss -Htn state established dst $TL_DST_IN4"
		ip netns exec "$NS_SRV" ss -Htn state established dst "$TL_DST_IN4" 2>&1 | head -n 5
		echo "... ($sockets sockets)"
		echo "srv# conntrack -L (entries to $TL_DST_IN4)"
		echo "$tracked"
		ip netns exec "$NS_SRV" conntrack -L 2>/dev/null | grep -F "dst=$TL_DST_IN4" | head -n 5
	} | probe_section "counts while the flows are open"
	probe_stop "$flows"
	probe_stop "$hold"
	probe_section "flows in cli: $PROBE_FLOWS connections to $target" "$PROBE_WORK/flows.log"
	if ((held == 0)); then
		probe_verdict no "the flows never reached dst ($(probe_kv "$PROBE_WORK/flows.log" opened) opened in cli): cannot tell"
	elif ((sockets * 2 >= held)); then
		probe_verdict no "the exit holds $sockets TCP sockets to dst for $held flows (it ends each flow and opens its own)"
	elif ((tracked * 2 >= held)); then
		probe_verdict partial "no sockets at the exit but its kernel tracks $tracked connections (conntrack) for $held flows"
	else
		probe_verdict yes "the exit holds $sockets sockets and $tracked conntrack entries for $held flows: it only forwards"
	fi
}

probe_dst_flows() {
	ip netns exec "$NS_DST" ss -Htn state established "sport = :$PROBE_TCP_PORT" 2>/dev/null | wc -l
}

probe_dst_flows_at_least() {
	(($(probe_dst_flows) >= $1))
}

# Conntrack entries of NS toward dst (0 where nothing tracks connections).
probe_conntrack_count() {
	if command -v conntrack >/dev/null; then
		ip netns exec "$1" conntrack -L 2>/dev/null | grep -cF "dst=$TL_DST_IN4" || true
	else
		ip netns exec "$1" cat /proc/net/nf_conntrack 2>/dev/null | grep -cF "dst=$TL_DST_IN4" || true
	fi
}

# ---- kernel objects -------------------------------------------------------------------

# probe_snapshot NS FILE: one line per kernel object in NS: links, addresses,
# routes and rules (v4 and v6), iptables rules, nft tables. The harness's
# own cleartext block is left out: every tunnel row has it.
# Called by the runner outside any subshell: it must not fail under `set -e`.
probe_snapshot() {
	local ns=$1 file=$2
	{
		ip -n "$ns" -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print "link " $2 }'
		ip -n "$ns" -o addr show | awk '{ print "addr " $2 " " $4 }'
		ip -n "$ns" -o -4 route show table all | sed 's/^/route /'
		ip -n "$ns" -o -6 route show table all | sed 's/^/route /'
		ip -n "$ns" -4 rule show | sed 's/^/rule /'
		ip -n "$ns" -6 rule show | sed 's/^/rule /'
		ip netns exec "$ns" iptables-save | sed -n 's/^-A/fw -A/p'
		ip netns exec "$ns" ip6tables-save | sed -n 's/^-A/fw -A/p'
		ip netns exec "$ns" nft list tables |
			awk '!/^table (ip|ip6|inet) (filter|nat|raw|mangle|security)$/ { print "nft " $0 }'
	} 2>/dev/null | awk -v block="$TL_BLOCK_COMMENT" 'index($0, block) == 0' |
		sed -E 's/[[:space:]]+/ /g; s/ $//' | sort -u >"$file" || true
}

# probe_objects_added BEFORE AFTER: "+7 (link 1 addr 2 route 4)": the new
# lines, by kind (kinds with none left out).
probe_objects_added() {
	comm -13 "$1" "$2" | awk '
		{ n[$1]++; total++ }
		END {
			printf "+%d", total
			split("link addr route rule fw nft", kinds, " ")
			sep = " ("
			for (i = 1; i <= 6; i++)
				if (n[kinds[i]]) { printf "%s%s %d", sep, kinds[i], n[kinds[i]]; sep = " " }
			if (sep == " ") printf ")"
		}'
}

# What the system added in cli and srv: PROBE_SNAP holds cli.before,
# cli.after, srv.before, srv.after, taken by the runner around the start.
probe_kernel_objects() {
	local ns reason="" removed
	for ns in cli srv; do
		[[ -f $PROBE_SNAP/$ns.before && -f $PROBE_SNAP/$ns.after ]] ||
			{ probe_verdict error "no snapshot of $ns around the start"; return 0; }
		reason+="$ns $(probe_objects_added "$PROBE_SNAP/$ns.before" "$PROBE_SNAP/$ns.after")"
		removed=$(comm -23 "$PROBE_SNAP/$ns.before" "$PROBE_SNAP/$ns.after" | wc -l)
		((removed == 0)) || reason+=" and $removed replaced"
		reason+="; "
		{
			echo "added:"
			comm -13 "$PROBE_SNAP/$ns.before" "$PROBE_SNAP/$ns.after" | sed 's/^/  + /'
			echo "removed or changed:"
			comm -23 "$PROBE_SNAP/$ns.before" "$PROBE_SNAP/$ns.after" | sed 's/^/  - /'
		} | probe_section "$ns: objects after the start minus before (ip -o link/addr/route/rule, iptables-save, nft list tables)"
	done
	probe_verdict info "${reason%; }"
}

# ---- fail-closed ----------------------------------------------------------------------

# The process that captures cli's traffic: a reference's "client=PID", else
# the tunlab client.
probe_client_pid() {
	local word
	for word in ${SYS_PIDS:-}; do
		[[ $word == client=* ]] && { echo "${word#client=}"; return 0; }
	done
	[[ -n ${TL_CLI_PID:-} ]] && echo "$TL_CLI_PID"
	return 0
}

# probe_leak_round NAME: while srv's underlay end captures anything to or
# from dst's address in clear, cli pings dst, sends it a UDP datagram and
# connects where its applications connect. Prints the packets seen.
probe_leak_round() {
	local name=$1 target cap senders
	target=$(probe_tcp_target)
	probe_capture "$NS_SRV" "$TL_UL_IF" "$name" 20 "host $TL_DST_IN4 or host $TL_DST_IN6" || return 1
	cap=$PROBE_LAST_PID
	# The three at once: each may have to time out.
	tl_ns "$NS_CLI" timeout 4 ping -n -c 2 -i 0.2 -W 1 -w 2 "$TL_DST_IN4" >"$PROBE_WORK/$name.ping" 2>&1 &
	senders=$!
	probe_sock "$NS_CLI" "$name-udp" udp-send "$TL_DST_IN4" "$PROBE_UDP_PORT" --size 32 --wait 0.3 >/dev/null &
	senders+=" $!"
	probe_sock "$NS_CLI" "$name-tcp" tcp-send "${target%:*}" "${target##*:}" --timeout 1 >/dev/null &
	senders+=" $!"
	# shellcheck disable=SC2086 # three PIDs
	wait $senders
	{
		tail -n 2 "$PROBE_WORK/$name.ping"
		cat -- "$PROBE_WORK/$name-udp.log" "$PROBE_WORK/$name-tcp.log"
	} >"$PROBE_WORK/$name.send" 2>&1
	probe_capture_done "$name" "$cap" "capture on srv's underlay end ($TL_UL_IF), $name"
	probe_section "sent from cli ($name): ping, UDP to $TL_DST_IN4:$PROBE_UDP_PORT, TCP to $target" \
		"$PROBE_WORK/$name.send"
	probe_packets "$PROBE_WORK/$name.cap"
}

# Which protocols a leak capture holds, e.g. "ICMP UDP TCP".
probe_leak_kinds() {
	local cap=$1 kinds=""
	grep -qE 'proto ICMP|ICMP echo' "$cap" && kinds+="ICMP "
	grep -qE 'proto UDP' "$cap" && kinds+="UDP "
	grep -qE 'proto TCP' "$cap" && kinds+="TCP "
	echo "${kinds% }"
}

# kill -9 of the client-side process; then whatever cli sends to dst must
# not show up in clear on the underlay. The same traffic is sent before the
# kill too, so the reason can tell a leak the kill caused from traffic the
# system never carried.
probe_leak() {
	local pid before after name route kinds_before kinds_after alive=0 gone=0
	pid=$(probe_client_pid)
	before=$(probe_leak_round running) || return 1
	# The kill is proved, not assumed: the process was alive after the
	# first round, and is gone (reaped or a zombie of ours no longer
	# counts) after kill -9 and a bounded wait.
	if [[ -n $pid ]] && tl_pid_alive "$pid"; then
		alive=1
		name=$(tr -d '\0' <"/proc/$pid/comm" 2>/dev/null)
		tl_cmd kill -KILL "$pid" 2>/dev/null || true
		tl_wait_exit "$pid" 5 >/dev/null 2>&1 || true
		tl_pid_alive "$pid" || gone=1
	fi
	echo "client pid ${pid:-none}: alive before the kill: $alive; gone after kill -9 and up to 5 s: $gone" |
		probe_section "the kill"
	if [[ -n $pid ]] && ((!alive)); then
		probe_verdict no "the client (pid $pid) was already dead before the kill: fail-closed on kill -9 not shown"
		return 0
	fi
	if [[ -n $pid ]] && ((!gone)); then
		probe_verdict no "kill -9 of $name (pid $pid) did not end it within 5 s: fail-closed not shown"
		return 0
	fi
	after=$(probe_leak_round killed) || return 1
	route=$(ip -n "$NS_CLI" -o route get "$TL_DST_IN4" 2>&1 | sed -E 's/ +/ /g; s/ uid.*//')
	echo "cli# ip route get $TL_DST_IN4 (after the kill)"$'\n'"$route" | probe_section "cli's route to dst afterwards"
	kinds_before=$(probe_leak_kinds "$PROBE_WORK/running.cap")
	kinds_after=$(probe_leak_kinds "$PROBE_WORK/killed.cap")
	if [[ -z $pid ]]; then
		probe_verdict no "no tunnel process to kill: $kinds_after to dst in clear on the underlay ($after packets)"
	elif ((after > 0 && before > 0)) && [[ $kinds_after == "$kinds_before" ]]; then
		probe_verdict partial "what it carries does not leak after kill -9 of $name; $kinds_after to dst go in clear with or without it (never carried)"
	elif ((after > 0 && before > 0)); then
		probe_verdict no "leaks: after kill -9 of $name $kinds_after to dst in clear on the underlay ($after packets); $kinds_before already went in clear while it ran"
	elif ((after > 0)); then
		probe_verdict no "leaks: after kill -9 of $name $after packets to dst in clear on the underlay ($kinds_after); cli's route: $route"
	else
		probe_verdict yes "fail-closed: after kill -9 of $name nothing to dst in clear on the underlay"
	fi
}
