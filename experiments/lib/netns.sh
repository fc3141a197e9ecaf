# SPDX-License-Identifier: MIT
# netns.sh: the three-namespace topology of DESIGN.md and the helpers that drive it (sourced, never run).
#
#   +--------------------+              +--------------------+              +--------------------+
#   | $NS_CLI            |   underlay   | $NS_SRV            |  inner net   | $NS_DST            |
#   |  apps, tunlab      |              |  tunlab server     |              |  the host behind   |
#   |  client            |              |  ip_forward=1      |              |  the tunnel exit   |
#   |                    |              |                    |              |                    |
#   |  tunlab<pid> (TUN) |              |  tunlab<pid> (TUN) |              |                    |
#   |   10.8.0.2/24      |              |   10.8.0.1/24      |              |                    |
#   |                    |              |                    |              |                    |
#   |  ul0 10.101.0.2/24 +==============+ ul0 10.101.0.1/24  |              |                    |
#   |      fd01::2/64    |    veth      |     fd01::1/64     |              |                    |
#   |                    |              |  in0 10.102.0.1/24 +==============+ in0 10.102.0.2/24  |
#   |                    |              |      fd02::1/64    |    veth      |      fd02::2/64    |
#   +--------------------+              +--------------------+              +--------------------+
#    default via 10.101.0.1                                                  default via 10.102.0.1
#    (a laptop's route to the                                                (replies go back
#     internet: what a dead                                                   through srv)
#     tunnel leaks goes here)
#
# The tunlab client routes the inner network (10.102.0.0/24) into the tunnel;
# the server forwards what comes out of it to dst. tl_block_cleartext makes srv
# refuse to forward ul0 <-> in0, so an answer from dst proves the tunnel
# carried the packet.
#
# Use:
#   source experiments/lib/netns.sh
#   tl_init                 # temp dir, names, trap tl_cleanup on EXIT INT TERM
#   tl_topology_up
#   tl_start_tunlab_server tun; tl_start_tunlab_client tun
#   n_cli ping -c 1 "$TL_DST_IN4"
#
# Knobs (environment): TL_VERBOSE=1 echoes every command; TL_NS_PREFIX (default
# "tl") and TL_ID (default $$) name the namespaces; TUNLAB is the binary under
# test; TL_PKI a ready PKI dir (else one is made in $TL_TMP/pki); TL_KEEP=1
# keeps $TL_TMP after cleanup. Sourcing sets no shell options: scripts set
# `set -euo pipefail` themselves; every function here is safe under it.

# ---- names and addresses ---------------------------------------------------
# shellcheck disable=SC2034 # the variables are for the scripts that source this

TL_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TL_REPO=${TL_REPO:-$(cd "$TL_LIB_DIR/../.." && pwd)}
TUNLAB=${TUNLAB:-$TL_REPO/build/tunlab}
TL_MKPKI=${TL_MKPKI:-$TL_REPO/experiments/mkpki}

TL_NS_PREFIX=${TL_NS_PREFIX:-tl}
TL_ID=${TL_ID:-$$}

# Interface names are per namespace, so both ends of a pair can share one.
TL_UL_IF=ul0                    # underlay veth, cli <-> srv
TL_IN_IF=in0                    # inner network veth, srv <-> dst

TL_CLI_UL4=10.101.0.2           TL_CLI_UL6=fd01::2
TL_SRV_UL4=10.101.0.1           TL_SRV_UL6=fd01::1
TL_UL_NET4=10.101.0.0/24        TL_UL_NET6=fd01::/64
TL_SRV_IN4=10.102.0.1           TL_SRV_IN6=fd02::1
TL_DST_IN4=10.102.0.2           TL_DST_IN6=fd02::2
TL_IN_NET4=10.102.0.0/24        TL_IN_NET6=fd02::/64

# Inside the tunnel.
TL_TUN_SRV4=10.8.0.1            TL_TUN_SRV6=fd08::1
TL_TUN_CLI4=10.8.0.2            TL_TUN_CLI6=fd08::2
TL_TUN_CLI2_4=10.8.0.3          TL_TUN_CLI2_6=fd08::3
TL_TUN_PLEN4=24                 TL_TUN_PLEN6=64
TL_TUN_NET4=10.8.0.0/24         TL_TUN_NET6=fd08::/64

TL_PORT=${TL_PORT:-4433}        # tunlab server, TCP, on $TL_SRV_UL4
TL_TUNLAB_PROTO=77              # routes tunlab installs carry "proto 77"

# Every --stats line carries these flat keys (the CLI's stable contract).
TL_STATS_KEYS=(event time role frontend connected tx_packets tx_bytes rx_packets rx_bytes
	tls_records_written tls_records_read tls_writes drop_no_peer drop_peer_down
	drop_spoofed_source drop_queue_full drop_tx_full drop_malformed drop_offload drop_bad_offload
	drop_dst_loopback drop_dst_unspecified drop_dst_link_local drop_dst_multicast
	drop_dst_broadcast drop_dst_local drop_dst_peer drop_dst_not_exported
	sessions_active sessions_total handshake_failures sessions_dead reconnects
	handshakes_pending sessions_buffered evicted_per_source handshakes_evicted handshakes_full handshakes_resumed
	queue_packets queue_bytes on_demand_connects idle_closes icmp_prohibited icmp_rate_limited
	drop_too_big icmp_too_big
	fe_captured_packets fe_captured_bytes fe_injected_packets
	fe_injected_bytes fe_inject_errors fe_inject_denied fe_capture_drops cpu_user_s cpu_sys_s
	fq_drops fq_marks fq_drops_overlimit fq_backlog_packets fq_backlog_bytes fq_flows
	fq_sojourn_last_us fq_sojourn_max_us fq_sojourn_p50_us fq_sojourn_p99_us
	transport udp_tx_datagrams udp_tx_bytes udp_rx_datagrams udp_rx_bytes udp_drop_auth
	udp_drop_replay udp_drop_unknown_session udp_drop_malformed udp_rekeys udp_roams
	udp_fallbacks udp_sessions udp_rx_coalesced udp_tx_blocked sessions_moving moves)

TL_TIMEOUT=${TL_TIMEOUT:-10}    # default bound for readiness waits, seconds
TL_KILL_TIMEOUT=${TL_KILL_TIMEOUT:-5}

# The two back ends of the role helpers: "netns" (the three namespaces
# above, on this machine) or "hosts" (the hosts of the Ansible inventory
# TL_INVENTORY, experiments/lib/hosts.sh). An experiment never asks which:
# it names roles through NS_CLI/NS_SRV/NS_DST and the helpers below.
TL_BACKEND=netns
if [[ -n ${TL_INVENTORY:-} ]]; then
	# shellcheck source=hosts.sh
	source "$TL_LIB_DIR/hosts.sh"
	tl_hosts_load
fi

tl_set_names() {
	if [[ $TL_BACKEND == hosts ]]; then
		NS_CLI=cli NS_SRV=srv NS_DST=dst
	else
		NS_CLI="$TL_NS_PREFIX-cli-$TL_ID"
		NS_SRV="$TL_NS_PREFIX-srv-$TL_ID"
		NS_DST="$TL_NS_PREFIX-dst-$TL_ID"
	fi
	NS_RTR="$TL_NS_PREFIX-rtr-$TL_ID"
	export NS_CLI NS_SRV NS_DST NS_RTR
}
tl_set_names

# tl_inventory_reexec SCRIPT ARGS...: an experiment's "--inventory FILE"
# becomes TL_INVENTORY, and the script starts again with it, so that every
# file it sources sees the inventory's addresses from the first line on.
# Returns when there is no --inventory, or it is loaded already.
tl_inventory_reexec() {
	local script=$1 inv="" arg
	shift
	local -a rest=()
	while (($#)); do
		arg=$1
		shift
		if [[ $arg == --inventory ]]; then
			inv=${1:?--inventory needs a file}
			shift
		else
			rest+=("$arg")
		fi
	done
	tl_backend_check "$script"
	[[ -n $inv && $TL_BACKEND != hosts ]] || return 0
	TL_INVENTORY=$(realpath -e "$inv") || exit 2
	export TL_INVENTORY
	exec "$script" ${rest[@]+"${rest[@]}"}
}

# tl_backend_check SCRIPT: on an inventory's hosts, a script that has not
# set EXP_ON_HOSTS=1 (its helpers still assume namespaces) exits 2, saying
# so, before it touches anything; here or there, the others go on.
tl_backend_check() {
	[[ $TL_BACKEND != hosts || ${EXP_ON_HOSTS:-0} == 1 ]] && return 0
	echo "$(basename "$1"): does not run on an inventory's hosts yet (its helpers still assume namespaces): run it without --inventory (README: \"Running on real hosts\")" >&2
	exit 2
}

# ---- printing and running --------------------------------------------------

tl_log() {
	echo "[tl] $*" >&2
}

# wg-quick's cmd(): shows a student every command that changes the system.
tl_cmd() {
	[[ ${TL_VERBOSE:-0} == 1 ]] && echo "[#] $*" >&2
	"$@"
}

# tl_ns NS CMD...: run CMD inside namespace NS.
tl_ns() {
	local ns=$1
	shift
	[[ ${TL_VERBOSE:-0} == 1 ]] && echo "[$ns] $*" >&2
	if [[ $TL_BACKEND == hosts ]]; then
		tl_hosts_run "$ns" "$@"
	else
		ip netns exec "$ns" "$@"
	fi
}

n_cli() { tl_ns "$NS_CLI" "$@"; }
n_srv() { tl_ns "$NS_SRV" "$@"; }
n_dst() { tl_ns "$NS_DST" "$@"; }

# tl_fail MSG...: say what was expected, and fail.
tl_fail() {
	echo "FAIL: $*" >&2
	return 1
}

# tl_assert DESCRIPTION CMD...: CMD must succeed; DESCRIPTION says what was expected.
tl_assert() {
	local what=$1
	shift
	"$@" || tl_fail "expected $what (command: $*)"
}

# tl_assert_not DESCRIPTION CMD...: CMD must fail.
tl_assert_not() {
	local what=$1
	shift
	if "$@"; then
		tl_fail "expected $what, but this succeeded: $*"
	fi
}

# ---- time --------------------------------------------------------------------

tl_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# tl_wait_until TIMEOUT_S CMD...: poll CMD every 0.1 s (every TL_WAIT_STEP_MS
# ms if set: where the wait is part of what is measured, as a crossing
# round) until it succeeds; bounded by the deadline and by an iteration
# count. CMD exiting 255 means "it never will" (e.g. the process we wait
# for died): give up at once.
tl_wait_until() {
	local timeout=$1 step_ms=${TL_WAIT_STEP_MS:-100}
	shift
	local now=${EPOCHREALTIME/[.,]/} step
	local deadline=$((now / 1000 + ${timeout%.*} * 1000))
	local tries=$((${timeout%.*} * 1000 / step_ms + 1)) rc
	printf -v step '%d.%03d' $((step_ms / 1000)) $((step_ms % 1000))
	while ((tries-- > 0)); do
		rc=0
		"$@" >/dev/null 2>&1 || rc=$?
		((rc == 0)) && return 0
		((rc == 255)) && { echo "tl_wait_until: gave up (it cannot happen any more): $*" >&2; return 1; }
		now=${EPOCHREALTIME/[.,]/}
		((now / 1000 >= deadline)) && break
		sleep "$step"
	done
	echo "tl_wait_until: still false after ${timeout}s: $*" >&2
	return 1
}

# ---- processes we started ------------------------------------------------------
# Each started process is recorded as "PID STARTTIME" in $TL_TMP/pids (a file,
# so that a tl_bg run in a $(...) subshell is remembered too). The start time
# from /proc guards against signalling a recycled PID.

# Field 22 of /proc/PID/stat, counted after the ")" that ends the command name.
tl_proc_start() {
	local stat
	local -a fields
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	read -ra fields <<<"${stat##*) }"
	echo "${fields[19]}"
}

tl_proc_state() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	echo "${stat%% *}"
}

# Alive and not a zombie. A "ROLE:PID" is a process on a host (hosts.sh).
tl_pid_alive() {
	local state
	[[ $1 != *:* ]] || { tl_hosts_pid_alive "$1"; return; }
	state=$(tl_proc_state "$1") || return 1
	[[ $state != Z && $state != X ]]
}

# Is PID one we started, and the same process (not a recycled PID)?
tl_pid_ours() {
	local pid=$1 start line
	[[ $pid != *:* ]] || { tl_hosts_pid_ours "$pid"; return; }
	[[ -n ${TL_TMP:-} && -f $TL_TMP/pids ]] || return 1
	start=$(tl_proc_start "$pid") || return 1
	while read -r line; do
		[[ $line == "$pid $start" ]] && return 0
	done <"$TL_TMP/pids"
	return 1
}

# tl_started_pids [MARK]: the processes we started that still run, those
# recorded after line MARK of the pid file (default 0: all). The file only
# grows (hundreds of lines over a long experiment), and most of its
# processes are gone: those are skipped with a test that forks nothing, or
# every teardown would cost a fork per process ever started.
tl_started_pids() {
	[[ -n ${TL_TMP:-} && -f $TL_TMP/pids ]] || return 0
	local mark=${1:-0} pid start
	while read -r pid start; do
		[[ -n $pid && -e /proc/$pid ]] || continue
		[[ $(tl_proc_start "$pid" 2>/dev/null) == "$start" ]] && tl_pid_alive "$pid" && echo "$pid"
	done < <(tail -n +"$((mark + 1))" "$TL_TMP/pids")
	return 0
}

# tl_bg NS LOGFILE CMD...: start CMD in NS ("-": the current namespace) in the
# background, stdout and stderr to LOGFILE; record and print its PID (also in
# TL_LAST_PID). SIGINT/SIGQUIT are reset to default: bash ignores them in
# background jobs, and a program that waits for them with signalfd would
# never see them.
tl_bg() {
	local ns=$1 log=$2
	shift 2
	[[ -n ${TL_TMP:-} ]] || { tl_fail "tl_bg: call tl_init first"; return 1; }
	if [[ $TL_BACKEND == hosts && $ns != - ]]; then
		[[ ${TL_VERBOSE:-0} == 1 ]] && echo "[$ns] $* > $log &" >&2
		tl_hosts_bg "$ns" "$log" "$@"
		return
	fi
	[[ ${TL_VERBOSE:-0} == 1 ]] && echo "[$ns] $* > $log &" >&2
	local -a in_ns=(ip netns exec "$ns")
	[[ $ns == - ]] && in_ns=()
	"${in_ns[@]}" env --default-signal=INT,QUIT "$@" >"$log" 2>&1 </dev/null 3>&- 4>&- &
	local pid=$! start="" tries=50
	# /proc/PID/stat exists from fork on; the start time never changes after.
	while ((tries-- > 0)); do
		start=$(tl_proc_start "$pid") && break
		sleep 0.01
	done
	echo "$pid ${start:-0}" >>"$TL_TMP/pids"
	TL_LAST_PID=$pid
	echo "$pid"
}

# tl_wait_exit PID [TIMEOUT_S]: wait until PID is gone; returns its exit
# status when it is our child, 0 when it is not, 1 on time-out.
tl_wait_exit() {
	local pid=$1 timeout=${2:-$TL_KILL_TIMEOUT}
	if ! tl_wait_until "$timeout" eval "! tl_pid_alive $pid"; then
		return 1
	fi
	local rc=0
	[[ $pid != *:* ]] || return 0 # on a host: its status is not ours to know
	wait "$pid" 2>/dev/null || rc=$?
	((rc == 127)) && rc=0 # not our child: its status is not ours to know
	return "$rc"
}

# tl_stop PID [SIGNAL] [TIMEOUT_S]: signal a process we started and wait for
# it; SIGKILL after the time-out. Returns its exit status (or 1 on time-out).
# shellcheck disable=SC2034 # TL_STOP_STATUS is read by callers
TL_STOP_STATUS=0
tl_stop() {
	local pid=$1 sig=${2:-TERM} timeout=${3:-$TL_KILL_TIMEOUT} rc=0
	TL_STOP_STATUS=0
	if [[ $pid == *:* ]]; then
		tl_pid_ours "$pid" || return 0
		tl_hosts_stop "$pid" "$sig" "$timeout" || TL_STOP_STATUS=1
		return "$TL_STOP_STATUS"
	fi
	tl_pid_ours "$pid" || { wait "$pid" 2>/dev/null || TL_STOP_STATUS=$?; return 0; }
	tl_cmd kill "-$sig" "$pid" 2>/dev/null || true
	tl_wait_exit "$pid" "$timeout" || rc=$?
	if tl_pid_alive "$pid" && tl_pid_ours "$pid"; then
		tl_log "pid $pid ignored SIG$sig for ${timeout}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		tl_wait_exit "$pid" 2 || true
		rc=1
	fi
	TL_STOP_STATUS=$rc
	return "$rc"
}

# tl_kill_started: TERM every process we started, KILL what remains after a
# bounded wait. Never touches a process we did not start.
tl_kill_started() {
	local -a pids
	[[ $TL_BACKEND != hosts ]] || tl_hosts_kill_started
	mapfile -t pids < <(tl_started_pids 0)
	((${#pids[@]})) || return 0
	tl_cmd kill -TERM "${pids[@]}" 2>/dev/null || true
	local pid
	for pid in "${pids[@]}"; do
		tl_wait_exit "$pid" "$TL_KILL_TIMEOUT" >/dev/null 2>&1 || true
	done
	mapfile -t pids < <(tl_started_pids 0)
	if ((${#pids[@]})); then
		tl_log "still alive after SIGTERM: ${pids[*]}; sending SIGKILL"
		kill -KILL "${pids[@]}" 2>/dev/null || true
		for pid in "${pids[@]}"; do
			tl_wait_exit "$pid" 2 >/dev/null 2>&1 || true
		done
	fi
	return 0
}

# ---- readiness -----------------------------------------------------------------

tl_listening() {
	local ns=$1 proto=$2 port=$3 flags
	case $proto in
	tcp) flags=-Hltn ;;
	udp) flags=-Hlun ;;
	*) tl_fail "tl_listening: protocol tcp or udp, not '$proto'"; return 1 ;;
	esac
	[[ -n $(tl_ns "$ns" ss "$flags" "sport = :$port" 2>/dev/null) ]]
}

# tl_wait_listen NS tcp|udp PORT [TIMEOUT_S]: poll ss until something listens.
tl_wait_listen() {
	local ns=$1 proto=$2 port=$3 timeout=${4:-$TL_TIMEOUT}
	tl_wait_until "$timeout" tl_listening "$ns" "$proto" "$port" ||
		tl_fail "expected a $proto listener on port $port in $ns within ${timeout}s"
}

# ---- setup and teardown ----------------------------------------------------------

# tl_init [--no-trap]: names, temp dir, trap. bats owns its traps: its helpers
# pass --no-trap and call tl_cleanup from teardown.
tl_init() {
	tl_backend_check "$0"
	tl_set_names
	TL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tunlab.$TL_ID.XXXXXX") || return 1
	: >"$TL_TMP/pids"
	TL_SRV_LOG=$TL_TMP/server.log
	TL_CLI_LOG=$TL_TMP/client.log
	TL_SRV_STATS=$TL_TMP/server-stats.jsonl
	TL_CLI_STATS=$TL_TMP/client-stats.jsonl
	TL_PEERS=$TL_TMP/peers
	TL_SRV_PID="" TL_CLI_PID=""
	export TL_TMP
	if [[ ${1:-} != --no-trap ]]; then
		trap 'tl_cleanup' EXIT
		trap 'tl_cleanup; trap - INT; kill -INT $$' INT
		trap 'tl_cleanup; trap - TERM; kill -TERM $$' TERM
	fi
}

tl_ns_exists() {
	[[ -e /run/netns/$1 ]]
}

# tl_topology_up: the three namespaces, two veth pairs, addresses and routes.
tl_topology_up() {
	local ns
	[[ $TL_BACKEND != hosts ]] || { tl_hosts_topology_up; return; }
	for ns in "$NS_CLI" "$NS_SRV" "$NS_DST" "$NS_RTR"; do
		if tl_ns_exists "$ns"; then
			tl_fail "namespace $ns exists already (another run with TL_ID=$TL_ID?)"
			return 1
		fi
	done
	tl_topology_build || { tl_topology_down; return 1; }
	# Links come up and get link-local addresses asynchronously; IPv6
	# neighbour discovery fails until they have. Poll, never sleep.
	tl_wait_until "$TL_TIMEOUT" tl_topology_ready ||
		{ tl_fail "expected all veth ends up with an IPv6 link-local address within ${TL_TIMEOUT}s"; tl_topology_down; return 1; }
}

tl_link_ready() {
	local ns=$1 dev=$2
	[[ $(ip -n "$ns" -o link show dev "$dev" 2>/dev/null) == *"state UP"* ]] || return 1
	[[ -n $(ip -n "$ns" -6 -o addr show dev "$dev" scope link -tentative 2>/dev/null) ]]
}

tl_topology_ready() {
	tl_link_ready "$NS_CLI" "$TL_UL_IF" && tl_link_ready "$NS_SRV" "$TL_UL_IF" &&
		tl_link_ready "$NS_SRV" "$TL_IN_IF" && tl_link_ready "$NS_DST" "$TL_IN_IF" || return 1
	[[ $TL_TOPO_ROUTER != 1 ]] || { tl_link_ready "$NS_RTR" "$TL_UL_IF" && tl_link_ready "$NS_RTR" "$TL_WAN_IF"; }
}

# tl_ns_add NS: a fresh namespace, lo up, no router advertisements or DAD
# (in a lab, addresses are usable at once).
tl_ns_add() {
	tl_cmd ip netns add "$1" || return 1
	tl_cmd ip -n "$1" link set lo up || return 1
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
		net.ipv6.conf.default.accept_dad=0 >/dev/null
}

tl_topology_build() {
	local ns
	[[ $TL_TOPO_ROUTER != 1 ]] || { tl_router_build; return; }
	for ns in "$NS_CLI" "$NS_SRV" "$NS_DST"; do
		tl_ns_add "$ns" || return 1
	done
	tl_veth "$NS_CLI" "$TL_UL_IF" "$TL_CLI_UL4" "$TL_CLI_UL6" "$NS_SRV" "$TL_UL_IF" "$TL_SRV_UL4" "$TL_SRV_UL6" || return 1
	tl_veth "$NS_SRV" "$TL_IN_IF" "$TL_SRV_IN4" "$TL_SRV_IN6" "$NS_DST" "$TL_IN_IF" "$TL_DST_IN4" "$TL_DST_IN6" || return 1
	tl_route_via "$NS_CLI" default "$TL_SRV_UL4" default "$TL_SRV_UL6" || return 1
	tl_route_via "$NS_DST" default "$TL_SRV_IN4" default "$TL_SRV_IN6" || return 1
	# Forwarding in srv only; a namespace's sysctls die with it.
	tl_cmd ip netns exec "$NS_SRV" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
}

# tl_veth NS_A IF_A A4 A6 NS_B IF_B B4 B6: a veth pair, /24 and /64 addresses
# on both ends, up. Both ends are created straight inside their namespaces:
# nothing, not even for a moment, lives in the root namespace.
tl_veth() {
	tl_cmd ip -n "$1" link add "$2" type veth peer name "$6" netns "$5" || return 1
	tl_addr_up "$1" "$2" "$3/24" "$4/64" || return 1
	tl_addr_up "$5" "$6" "$7/24" "$8/64"
}

# tl_route_via NS PREFIX4 GW4 PREFIX6 GW6
tl_route_via() {
	tl_cmd ip -n "$1" route add "$2" via "$3" || return 1
	tl_cmd ip -n "$1" -6 route add "$4" via "$5"
}

# tl_addr_up NS IF ADDR4 ADDR6
tl_addr_up() {
	local ns=$1 dev=$2
	tl_cmd ip -n "$ns" addr add "$3" dev "$dev" || return 1
	tl_cmd ip -n "$ns" -6 addr add "$4" dev "$dev" nodad || return 1
	tl_cmd ip -n "$ns" link set "$dev" up
}

# ---- the router topology (opt-in) ---------------------------------------------------
# tl_router_mode (or TL_TOPO_ROUTER=1 in the environment when netns.sh is
# sourced) puts a fourth namespace between cli and srv, for the loss and NAT
# experiments; every other experiment and test keeps the topology above.
#
#   cli ul0 10.101.0.2 ==== ul0 10.101.0.1 [rtr] wan0 10.103.0.1 ==== ul0 10.103.0.2 [srv] in0 ... dst
#
# cli's default route still points at 10.101.0.1 (now rtr's); srv's
# underlay address becomes 10.103.0.2 (TL_SRV_UL4: every system connects to
# it), its default route points at rtr, and rtr routes the inner network to
# srv, so the plain path is cli -> rtr -> srv -> dst. The links through rtr
# carry wire-sized packets (no TSO, GSO or GRO: tl_router_wire_packets), so a
# packet the knobs drop or delay is one packet. rtr forwards and can
#   tl_router_loss PERCENT   drop each forwarded packet with that probability
#                            (iptables statistic, both directions, IPv4 and IPv6)
#   tl_router_delay MS       hold each forwarded packet MS ms (NFQUEUE and the
#                            nfq_delay tool: no netem in this kernel), so the
#                            round trip grows by 2 x MS
#   tl_router_nat on|off     MASQUERADE what cli sends (IPv4), to rtr's wan0 address
#   tl_router_flush          forget every NAT mapping (conntrack -F)
#   tl_router_rebind         forget them and map to new source ports from now on
# Each knob owns a chain of its own (TL_LOSS, TL_DELAY in filter FORWARD,
# TL_NAT in nat POSTROUTING), flushed and refilled on every call; the
# namespace takes them all with it.

TL_TOPO_ROUTER=${TL_TOPO_ROUTER:-0}
TL_WAN_IF=wan0                  # rtr <-> srv
TL_RTR_CLI4=10.101.0.1          TL_RTR_CLI6=fd01::1
TL_RTR_WAN4=10.103.0.1          TL_RTR_WAN6=fd03::1
TL_SRV_WAN4=10.103.0.2          TL_SRV_WAN6=fd03::2
TL_DELAY_QUEUE=${TL_DELAY_QUEUE:-7}      # netfilter queue numbers are per namespace
TL_DELAY_SECONDS=${TL_DELAY_SECONDS:-3600} # the delay line's own bound on its run time
TL_NAT_PORT_BASE=20000          # tl_router_rebind maps to ranges of 1000 ports from here
TL_DELAY_PID="" TL_DELAY_LOG="" TL_NAT_GEN=0

tl_router_mode() {
	[[ $TL_BACKEND != hosts ]] || { tl_fail "the router topology exists in namespaces only"; return 1; }
	TL_TOPO_ROUTER=1
	TL_SRV_UL4=$TL_SRV_WAN4 TL_SRV_UL6=$TL_SRV_WAN6
}

tl_router_build() {
	local ns
	TL_DELAY_PID="" TL_NAT_GEN=0
	for ns in "$NS_CLI" "$NS_RTR" "$NS_SRV" "$NS_DST"; do
		tl_ns_add "$ns" || return 1
	done
	tl_veth "$NS_CLI" "$TL_UL_IF" "$TL_CLI_UL4" "$TL_CLI_UL6" "$NS_RTR" "$TL_UL_IF" "$TL_RTR_CLI4" "$TL_RTR_CLI6" || return 1
	tl_veth "$NS_RTR" "$TL_WAN_IF" "$TL_RTR_WAN4" "$TL_RTR_WAN6" "$NS_SRV" "$TL_UL_IF" "$TL_SRV_WAN4" "$TL_SRV_WAN6" || return 1
	tl_veth "$NS_SRV" "$TL_IN_IF" "$TL_SRV_IN4" "$TL_SRV_IN6" "$NS_DST" "$TL_IN_IF" "$TL_DST_IN4" "$TL_DST_IN6" || return 1
	tl_route_via "$NS_CLI" default "$TL_RTR_CLI4" default "$TL_RTR_CLI6" || return 1
	tl_route_via "$NS_SRV" default "$TL_RTR_WAN4" default "$TL_RTR_WAN6" || return 1
	tl_route_via "$NS_RTR" "$TL_IN_NET4" "$TL_SRV_WAN4" "$TL_IN_NET6" "$TL_SRV_WAN6" || return 1
	tl_route_via "$NS_DST" default "$TL_SRV_IN4" default "$TL_SRV_IN6" || return 1
	for ns in "$NS_RTR" "$NS_SRV"; do
		tl_cmd ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
			>/dev/null || return 1
	done
	tl_router_wire_packets || return 1
	tl_router_chains
}

# A veth passes a 64 KiB TSO or GRO super-packet on whole, and the loss rule
# would drop forty segments for one: the links through rtr carry packets
# of at most the MTU, as a wire does (senders segment, rtr aggregates nothing).
tl_router_wire_packets() {
	local end
	for end in "$NS_CLI:$TL_UL_IF" "$NS_RTR:$TL_UL_IF" "$NS_RTR:$TL_WAN_IF" "$NS_SRV:$TL_UL_IF"; do
		tl_cmd ip netns exec "${end%%:*}" ethtool -K "${end#*:}" tso off gso off gro off >/dev/null 2>&1 ||
			{ tl_fail "ethtool -K ${end#*:} tso off gso off gro off failed in ${end%%:*} (package ethtool)"; return 1; }
	done
}

# The knobs' chains, empty: rtr forwards everything until one is turned.
tl_router_chains() {
	local tool chain
	for tool in iptables ip6tables; do
		for chain in TL_LOSS TL_DELAY; do
			tl_cmd tl_ns "$NS_RTR" "$tool" -w 5 -N "$chain" || return 1
			tl_cmd tl_ns "$NS_RTR" "$tool" -w 5 -A FORWARD -j "$chain" || return 1
		done
	done
	tl_cmd tl_ns "$NS_RTR" iptables -w 5 -t nat -N TL_NAT || return 1
	tl_cmd tl_ns "$NS_RTR" iptables -w 5 -t nat -A POSTROUTING -o "$TL_WAN_IF" -j TL_NAT
}

tl_router_need() {
	if [[ $TL_TOPO_ROUTER != 1 ]] || ! tl_ns_exists "$NS_RTR"; then
		tl_fail "no router namespace: call tl_router_mode before tl_topology_up"
		return 1
	fi
}

# tl_router_loss PERCENT: each packet rtr forwards, either way, is dropped
# with probability PERCENT/100 (0: none).
tl_router_loss() {
	local percent=$1 p tool
	tl_router_need || return 1
	p=$(awk -v x="$percent" 'BEGIN { if (x !~ /^[0-9.]+$/ || x + 0 > 100) exit 1; printf "%.6f", x / 100 }') ||
		{ tl_fail "tl_router_loss: a percentage from 0 to 100, not '$percent'"; return 1; }
	for tool in iptables ip6tables; do
		tl_cmd tl_ns "$NS_RTR" "$tool" -w 5 -F TL_LOSS || return 1
		[[ $p == 0.000000 ]] && continue
		tl_cmd tl_ns "$NS_RTR" "$tool" -w 5 -A TL_LOSS -m statistic --mode random --probability "$p" \
			-j DROP || return 1
	done
}

tl_nfq_delay_bin() {
	local bin=${TL_NFQ_DELAY:-$(dirname "$TUNLAB")/tools/nfq_delay}
	[[ -x $bin ]] || bin=$TL_REPO/build/tools/nfq_delay
	[[ -x $bin ]] || { tl_fail "no nfq_delay at $bin: run make (it builds build/tools/nfq_delay)"; return 1; }
	echo "$bin"
}

# tl_router_delay MS: each packet rtr forwards, either way, waits MS ms (0:
# none). The queue rule goes in only once the delay line has bound the
# queue, and comes out before it stops (it accepts what it still holds).
tl_router_delay() {
	local ms=$1 bin tool
	tl_router_need || return 1
	[[ $ms =~ ^[0-9]+(\.[0-9]+)?$ ]] || { tl_fail "tl_router_delay: milliseconds, not '$ms'"; return 1; }
	for tool in iptables ip6tables; do
		tl_cmd tl_ns "$NS_RTR" "$tool" -w 5 -F TL_DELAY || return 1
	done
	if [[ -n $TL_DELAY_PID ]]; then
		tl_stop "$TL_DELAY_PID" TERM 3 >/dev/null || true
		TL_DELAY_PID=""
	fi
	awk -v x="$ms" 'BEGIN { exit !(x > 0) }' || return 0
	bin=$(tl_nfq_delay_bin) || return 1
	TL_DELAY_LOG=$TL_TMP/nfq_delay-$ms.log
	# TL_DELAY_RT=1: the delay line at a real-time priority, so that the
	# system under test does not stretch its delay by taking the cores (RT
	# throttling bounds it). Off by default: on a loaded 2-core machine it
	# made neither the lateness nor the figures clearly better.
	local -a rt=()
	[[ ${TL_DELAY_RT:-0} != 1 ]] || ! command -v chrt >/dev/null || rt=(chrt -f 10)
	tl_bg "$NS_RTR" "$TL_DELAY_LOG" ${rt[@]+"${rt[@]}"} "$bin" --queue "$TL_DELAY_QUEUE" --delay-ms "$ms" \
		--seconds "$TL_DELAY_SECONDS" >/dev/null || return 1
	TL_DELAY_PID=$TL_LAST_PID
	if ! tl_wait_until 5 tl_delay_ready "$TL_DELAY_PID" "$TL_DELAY_LOG"; then
		tl_log_tail "$TL_DELAY_LOG"
		tl_fail "expected nfq_delay (pid $TL_DELAY_PID) to bind queue $TL_DELAY_QUEUE in $NS_RTR within 5 s"
		return 1
	fi
	for tool in iptables ip6tables; do
		tl_cmd tl_ns "$NS_RTR" "$tool" -w 5 -A TL_DELAY -j NFQUEUE --queue-num "$TL_DELAY_QUEUE" || return 1
	done
}

tl_delay_ready() {
	grep -q '^ready ' "$2" 2>/dev/null && return 0
	tl_pid_alive "$1" || return 255
	return 1
}

# tl_router_nat on|off: MASQUERADE of what leaves rtr towards srv from cli's
# network. The first mapping keeps cli's source port where it can (as a
# home router does); after tl_router_rebind, TCP and UDP map into the
# next range of 1000 ports from TL_NAT_PORT_BASE, so a port is new.
tl_router_nat() {
	tl_router_need || return 1
	tl_cmd tl_ns "$NS_RTR" iptables -w 5 -t nat -F TL_NAT || return 1
	[[ $1 == on ]] || { TL_NAT_GEN=0; return 0; }
	if ((TL_NAT_GEN > 0)); then
		local lo=$((TL_NAT_PORT_BASE + (TL_NAT_GEN % 40) * 1000)) proto
		for proto in udp tcp; do
			tl_cmd tl_ns "$NS_RTR" iptables -w 5 -t nat -A TL_NAT -s "$TL_UL_NET4" -p "$proto" \
				-j MASQUERADE --to-ports "$lo-$((lo + 999))" || return 1
		done
	fi
	tl_cmd tl_ns "$NS_RTR" iptables -w 5 -t nat -A TL_NAT -s "$TL_UL_NET4" -j MASQUERADE
}

# Every mapping forgotten: the next packet each way is a new flow to rtr.
tl_router_flush() {
	tl_router_need || return 1
	tl_cmd tl_ns "$NS_RTR" conntrack -F >/dev/null 2>&1 ||
		{ tl_fail "conntrack -F failed in $NS_RTR (package conntrack)"; return 1; }
}

# New source ports from now on (the rule first, so that no packet between
# the two steps is mapped the old way), then the old mappings forgotten.
tl_router_rebind() {
	TL_NAT_GEN=$((TL_NAT_GEN + 1))
	tl_router_nat on && tl_router_flush
}

# Processes left inside our namespaces were started by this run (directly or
# by a process we started): kill them, or they would keep the namespace alive.
tl_ns_kill_all() {
	local ns=$1
	local -a pids
	mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
	((${#pids[@]})) || return 0
	tl_log "processes left in $ns: ${pids[*]}; killing them"
	kill -KILL "${pids[@]}" 2>/dev/null || true
	tl_wait_until 3 eval "[[ -z \$(ip netns pids $ns 2>/dev/null) ]]" || true
}

# tl_ns_forget_runfiles NS: the owner locks and control sockets tunlab keeps
# in /run/tunlab/<netns inode>-<pid>.* for NS, whose processes are gone: a
# namespace about to be deleted leaves no file that names its inode.
tl_ns_forget_runfiles() {
	local inode
	inode=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || return 0
	rm -f /run/tunlab/"$inode"-*.lock /run/tunlab/"$inode"-*.sock
}

# tl_topology_down: idempotent; deleting a namespace deletes its veth ends,
# routes, iptables rules and sysctls.
tl_topology_down() {
	local ns rc=0
	[[ $TL_BACKEND != hosts ]] || { tl_hosts_topology down; return; }
	for ns in "$NS_DST" "$NS_SRV" "$NS_RTR" "$NS_CLI" "${TL_EXTRA_NS[@]}"; do
		tl_ns_exists "$ns" || continue
		tl_ns_kill_all "$ns"
		tl_ns_forget_runfiles "$ns"
		tl_cmd ip netns del "$ns" || rc=1
	done
	return "$rc"
}
TL_EXTRA_NS=()

# tl_cleanup: the trap handler. Safe to call twice.
tl_cleanup() {
	local rc=$? opts=$-
	set +e
	tl_kill_started
	tl_topology_down
	[[ $TL_BACKEND != hosts ]] || tl_hosts_cleanup
	if [[ -n ${TL_TMP:-} && -d $TL_TMP ]]; then
		if [[ ${TL_KEEP:-0} == 1 ]]; then
			tl_log "kept $TL_TMP"
		else
			rm -rf -- "$TL_TMP"
		fi
	fi
	TL_TMP=""
	[[ $opts == *e* ]] && set -e
	return "$rc"
}

# ---- tunnel-proof and inspection -------------------------------------------------

TL_BLOCK_COMMENT=tl-cleartext-block

# tl_block_cleartext: srv refuses to forward between underlay and inner
# network, both directions, IPv4 and IPv6. Tunnelled packets enter srv on the
# TUN device (or whatever the frontend injects into), so they still pass.
tl_block_cleartext() {
	local tool
	for tool in iptables ip6tables; do
		tl_cmd tl_ns "$NS_SRV" "$tool" -w 5 -I FORWARD -i "$TL_UL_IF" -o "$TL_IN_IF" \
			-m comment --comment "$TL_BLOCK_COMMENT" -j DROP || return 1
		tl_cmd tl_ns "$NS_SRV" "$tool" -w 5 -I FORWARD -i "$TL_IN_IF" -o "$TL_UL_IF" \
			-m comment --comment "$TL_BLOCK_COMMENT" -j DROP || return 1
	done
}

tl_unblock_cleartext() {
	local tool
	for tool in iptables ip6tables; do
		while tl_ns "$NS_SRV" "$tool" -w 5 -D FORWARD -i "$TL_UL_IF" -o "$TL_IN_IF" \
			-m comment --comment "$TL_BLOCK_COMMENT" -j DROP 2>/dev/null; do :; done
		while tl_ns "$NS_SRV" "$tool" -w 5 -D FORWARD -i "$TL_IN_IF" -o "$TL_UL_IF" \
			-m comment --comment "$TL_BLOCK_COMMENT" -j DROP 2>/dev/null; do :; done
	done
	return 0
}

# tl_leftovers NS: prints every tunlab device, proto-77 route or rule, and
# tunlab iptables/nft rule left in NS; prints nothing when NS is clean.
tl_leftovers() {
	local ns=$1
	tl_ns_exists "$ns" || return 0
	ip -n "$ns" -br link show 2>/dev/null | grep -i 'tunlab' | sed "s/^/$ns link: /" || true
	ip -n "$ns" -4 route show table all proto "$TL_TUNLAB_PROTO" 2>/dev/null | sed "s/^/$ns route: /" || true
	ip -n "$ns" -6 route show table all proto "$TL_TUNLAB_PROTO" 2>/dev/null | sed "s/^/$ns route6: /" || true
	ip -n "$ns" rule show 2>/dev/null | grep -E "proto ($TL_TUNLAB_PROTO|tunlab)\b" | sed "s/^/$ns rule: /" || true
	ip -n "$ns" -6 rule show 2>/dev/null | grep -E "proto ($TL_TUNLAB_PROTO|tunlab)\b" | sed "s/^/$ns rule6: /" || true
	ip netns exec "$ns" iptables-save 2>/dev/null | grep -i 'tunlab' | sed "s/^/$ns iptables: /" || true
	ip netns exec "$ns" ip6tables-save 2>/dev/null | grep -i 'tunlab' | sed "s/^/$ns ip6tables: /" || true
	ip netns exec "$ns" nft list tables 2>/dev/null | grep -i 'tunlab' | sed "s/^/$ns nft: /" || true
	return 0
}

# ---- JSON stats -------------------------------------------------------------------

# tl_fetch FILE...: makes the copy here of each FILE a host wrote current
# (hosts.sh); a no-op in the namespace back end, where it is here already.
tl_fetch() {
	[[ $TL_BACKEND == hosts ]] || return 0
	tl_hosts_fetch "$@"
}

# The last complete JSON line of FILE (a writer may be half-way through the next).
tl_json_last() {
	local file=$1
	tl_fetch "$file"
	[[ -s $file ]] || { echo "tl_json_last: $file is missing or empty" >&2; return 1; }
	tail -n 4 -- "$file" | jq -c -R 'fromjson? // empty' 2>/dev/null | tail -n 1
}

# tl_json_get FILE KEY: KEY's value in FILE's last line; fails if absent.
tl_json_get() {
	local file=$1 key=$2 line
	line=$(tl_json_last "$file") || return 1
	[[ -n $line ]] || { echo "tl_json_get: no complete JSON line in $file" >&2; return 1; }
	jq -r --arg k "$key" 'if has($k) then .[$k] else error("no key \($k)") end' <<<"$line"
}

# tl_stats_missing_keys FILE: prints the TL_STATS_KEYS absent from FILE's last line.
tl_stats_missing_keys() {
	local line
	line=$(tl_json_last "$1") || return 1
	jq -r '. as $o | $ARGS.positional[] | . as $k | select($o | has($k) | not)' --args "${TL_STATS_KEYS[@]}" <<<"$line"
}

# tl_json_test FILE JQ_EXPR: true when JQ_EXPR holds on FILE's last line,
# e.g. tl_json_test "$TL_CLI_STATS" '.connected == true'.
tl_json_test() {
	local line
	line=$(tl_json_last "$1") || return 1
	[[ -n $line ]] && jq -e "$2" <<<"$line" >/dev/null 2>&1
}

# ---- tunlab ------------------------------------------------------------------------

tl_pki() {
	if [[ -n ${TL_PKI:-} && -s $TL_PKI/ca.crt ]]; then
		return 0
	fi
	TL_PKI=${TL_PKI:-$TL_TMP/pki}
	"$TL_MKPKI" "$TL_PKI" cli cli2 >/dev/null
}

tl_write_peers() {
	[[ -s $TL_PEERS ]] && return 0
	cat >"$TL_PEERS" <<-EOF
		# cert CN   inner prefixes (comma-separated)
		cli  $TL_TUN_CLI4/32,$TL_TUN_CLI6/128
		cli2 $TL_TUN_CLI2_4/32,$TL_TUN_CLI2_6/128
	EOF
}

tl_log_tail() {
	local file=$1
	tl_fetch "$file"
	[[ -f $file ]] || return 0
	echo "---- last lines of $file ----" >&2
	tail -n 30 -- "$file" >&2
	echo "----" >&2
}

# What the server lets peers reach (--export): the network behind it, dst's.
TL_EXPORTS=("$TL_IN_NET4" "$TL_IN_NET6")

# "--export P" for each TL_EXPORTS prefix, one word a line.
tl_export_flags() {
	local prefix
	for prefix in "${TL_EXPORTS[@]}"; do
		printf -- '--export\n%s\n' "$prefix"
	done
}

# tl_start_tunlab_server FRONTEND [extra flags]: starts the server in srv
# (PID in TL_SRV_PID), exporting TL_EXPORTS, and waits until it listens.
tl_start_tunlab_server() {
	local frontend=$1
	shift
	tl_pki || return 1
	tl_write_peers
	local -a exports
	mapfile -t exports < <(tl_export_flags)
	tl_bg "$NS_SRV" "$TL_SRV_LOG" "$TUNLAB" server --frontend "$frontend" \
		--listen "$TL_SRV_UL4:$TL_PORT" \
		--cert "$TL_PKI/server.crt" --key "$TL_PKI/server.key" --ca "$TL_PKI/ca.crt" \
		--peers "$TL_PEERS" "${exports[@]}" --address "$TL_TUN_SRV4/$TL_TUN_PLEN4" \
		--stats "$TL_SRV_STATS" --stats-interval "${TL_STATS_INTERVAL:-200}" \
		"$@" >/dev/null || return 1
	TL_SRV_PID=$TL_LAST_PID
	if ! tl_wait_until "$TL_TIMEOUT" tl_server_ready; then
		tl_log_tail "$TL_SRV_LOG"
		tl_fail "expected tunlab server (pid $TL_SRV_PID) to listen on tcp $TL_SRV_UL4:$TL_PORT within ${TL_TIMEOUT}s"
		return 1
	fi
}

tl_server_ready() {
	tl_pid_alive "$TL_SRV_PID" || return 255
	tl_listening "$NS_SRV" tcp "$TL_PORT"
}

# tl_start_tunlab_client FRONTEND [extra flags]: starts the client in cli (PID
# in TL_CLI_PID). TL_WAIT says what ready means: "connected" (default: the
# stats say so), "ping" (a ping to dst answers), "none". TL_CLIENT_NAME
# picks the certificate (default cli), TL_CLIENT_ADDR the inner address, and
# TL_CLIENT_PKI the directory the certificate comes from (wrong-CA tests),
# TL_CLIENT_POLICY a --policy file given instead of --route.
tl_start_tunlab_client() {
	local frontend=$1
	shift
	tl_pki || return 1
	local name=${TL_CLIENT_NAME:-cli} pki=${TL_CLIENT_PKI:-$TL_PKI}
	local addr=${TL_CLIENT_ADDR:-$TL_TUN_CLI4/$TL_TUN_PLEN4}
	# TL_CLIENT_POLICY=FILE: --policy FILE in place of --route (which it replaces).
	local -a what=(--route "$TL_IN_NET4")
	[[ -z ${TL_CLIENT_POLICY:-} ]] || what=(--policy "$TL_CLIENT_POLICY")
	local -a transport=()
	mapfile -t transport < <(tl_transport_args "$frontend" "$@")
	tl_bg "$NS_CLI" "$TL_CLI_LOG" "$TUNLAB" client --frontend "$frontend" \
		--connect "$TL_SRV_UL4:$TL_PORT" --server-name server \
		--cert "$pki/$name.crt" --key "$pki/$name.key" --ca "$TL_PKI/ca.crt" \
		--address "$addr" "${what[@]}" \
		--stats "$TL_CLI_STATS" --stats-interval "${TL_STATS_INTERVAL:-200}" \
		${transport[@]+"${transport[@]}"} "$@" >/dev/null || return 1
	TL_CLI_PID=$TL_LAST_PID
	local wait=${TL_WAIT:-connected}
	[[ $wait == none ]] && return 0
	if ! tl_wait_until "$TL_TIMEOUT" tl_client_ready "$wait"; then
		tl_log_tail "$TL_CLI_LOG"
		tl_log_tail "$TL_SRV_LOG"
		tl_fail "expected tunlab client (pid $TL_CLI_PID) ready ($wait) within ${TL_TIMEOUT}s"
		return 1
	fi
}

# tl_transport_args FRONTEND [client flags]: "--transport" and its mode, one
# a line, for a packet frontend's client whose flags name none: TL_TRANSPORT
# (default tls), when the binary has a choice. Issue 15's default "auto"
# would otherwise put the data on UDP, and the tests and experiments written
# for the TLS stream would check and measure another path; udp.bats and the
# tun-udp row name theirs, and one test checks the default itself
# (TL_TRANSPORT=default leaves the flag out).
tl_transport_args() {
	local frontend=$1 mode=${TL_TRANSPORT:-tls}
	shift
	[[ $frontend != proxy && $mode != default && " $* " != *" --transport "* ]] || return 0
	tl_tunlab_has_flag --transport || return 0
	printf '%s\n' --transport "$mode"
}

# tl_tunlab_has_flag FLAG: does the tunlab under test list FLAG in its client's
# --help (--transport of issue 15, --busy-poll of issue 17)? Asked once per
# binary and flag, so an older tunlab given with --tunlab is measured as it is.
declare -gA TL_TUNLAB_FLAGS=()
tl_tunlab_has_flag() {
	local flag=$1 key="$TUNLAB $1"
	if [[ -z ${TL_TUNLAB_FLAGS[$key]:-} ]]; then
		TL_TUNLAB_FLAGS[$key]=no
		"$TUNLAB" client --help 2>&1 | grep -qE -- "^[[:space:]]*$flag[[:space:]]" && TL_TUNLAB_FLAGS[$key]=yes
	fi
	[[ ${TL_TUNLAB_FLAGS[$key]} == yes ]]
}

tl_client_ready() {
	tl_pid_alive "$TL_CLI_PID" || return 255
	case $1 in
	connected) tl_json_test "$TL_CLI_STATS" '.connected == true' ;;
	ping) tl_ping_dst 1 ;;
	*) return 255 ;;
	esac
}

# tl_ping_dst [COUNT] [ping flags...]: ping dst from cli; true if all answered.
tl_ping_dst() {
	local count=${1:-1}
	shift || true
	tl_ns "$NS_CLI" ping -n -q -c "$count" -i 0.2 -W 1 "$@" "$TL_DST_IN4" >/dev/null 2>&1
}

# Last: the router topology asked for from the environment.
[[ $TL_TOPO_ROUTER != 1 ]] || tl_router_mode
# ---- failover: two servers and a floating service address (opt-in) --------------
#
# tl_failover_topology_up replaces tl_topology_up for the failover
# experiment and tests (issue 16); the other experiments keep the
# topology above. VRRP needs one L2 segment for the servers and the
# client, so the links meet on bridges in a namespace of their own, $NS_LAN:
#
#   cli ul0 10.101.0.2 ---+                        +--- in0 10.102.0.2 dst
#                         |  br-ul   $NS_LAN  br-in |
#   srv  ul0 10.101.0.11 -+                        +- in0 10.102.0.11 srv
#   srv2 ul0 10.101.0.12 -+                        +- in0 10.102.0.12 srv2
#
# The service address 10.101.0.1 ($TL_SRV_UL4, what a client connects to)
# and the inner gateway 10.102.0.1 ($TL_SRV_IN4, dst's default route) are
# the virtual addresses of two VRRP instances, tl_service and tl_gateway:
# when a server dies keepalived moves both at once, so dst's answers go to
# the server that gets the clients; a planned switchover moves them one
# after the other (tl_handover). Both servers listen on every address
# (ip_nonlocal_bind covers the service address before they own it): a
# client told to move reaches the standby at its own address.
# IPv4 only.
# VRRP runs unicast between the servers' own addresses: no packet of it
# leaves $NS_LAN's bridges, and nothing of this lives in the root namespace.

TL_FO_SRV1_UL4=10.101.0.11 TL_FO_SRV2_UL4=10.101.0.12
TL_FO_SRV1_IN4=10.102.0.11 TL_FO_SRV2_IN4=10.102.0.12
TL_FO_VRID=51 TL_FO_VRID_GW=52
TL_FO_ADVERT=${TL_FO_ADVERT:-0.1} # VRRPv3 takes centiseconds: the backup decides in ~0.35 s

tl_failover_names() {
	NS_SRV2="$TL_NS_PREFIX-srv2-$TL_ID"
	NS_LAN="$TL_NS_PREFIX-lan-$TL_ID"
	export NS_SRV2 NS_LAN
}

# tl_fo_link NS DEV BRIDGE PORT ADDR: a veth from NS (DEV, ADDR) to a port of BRIDGE in $NS_LAN.
tl_fo_link() {
	local ns=$1 dev=$2 br=$3 port=$4 addr=$5
	tl_cmd ip -n "$NS_LAN" link add "$port" type veth peer name "$dev" netns "$ns" || return 1
	tl_cmd ip -n "$NS_LAN" link set "$port" master "$br" up || return 1
	tl_cmd ip -n "$ns" addr add "$addr/24" dev "$dev" || return 1
	tl_cmd ip -n "$ns" link set "$dev" up
}

tl_failover_topology_up() {
	local ns br
	[[ $TL_BACKEND == netns ]] || { tl_fail "the failover topology is namespaces only"; return 1; }
	tl_failover_names
	[[ " ${TL_EXTRA_NS[*]} " == *" $NS_LAN "* ]] || TL_EXTRA_NS+=("$NS_SRV2" "$NS_LAN")
	for ns in "$NS_CLI" "$NS_SRV" "$NS_SRV2" "$NS_DST" "$NS_LAN"; do
		tl_ns_exists "$ns" && { tl_fail "namespace $ns exists already"; return 1; }
		tl_cmd ip netns add "$ns" || { tl_topology_down; return 1; }
		tl_cmd ip -n "$ns" link set lo up
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
			net.ipv6.conf.default.accept_dad=0 >/dev/null
	done
	for br in br-ul br-in; do
		tl_cmd ip -n "$NS_LAN" link add "$br" type bridge || { tl_topology_down; return 1; }
		tl_cmd ip -n "$NS_LAN" link set "$br" up
	done
	{
		tl_fo_link "$NS_CLI" "$TL_UL_IF" br-ul p-cli "$TL_CLI_UL4" &&
			tl_fo_link "$NS_SRV" "$TL_UL_IF" br-ul p-s1u "$TL_FO_SRV1_UL4" &&
			tl_fo_link "$NS_SRV2" "$TL_UL_IF" br-ul p-s2u "$TL_FO_SRV2_UL4" &&
			tl_fo_link "$NS_SRV" "$TL_IN_IF" br-in p-s1i "$TL_FO_SRV1_IN4" &&
			tl_fo_link "$NS_SRV2" "$TL_IN_IF" br-in p-s2i "$TL_FO_SRV2_IN4" &&
			tl_fo_link "$NS_DST" "$TL_IN_IF" br-in p-dst "$TL_DST_IN4" &&
			tl_cmd ip -n "$NS_CLI" route add default via "$TL_SRV_UL4" &&
			tl_cmd ip -n "$NS_DST" route add default via "$TL_SRV_IN4" &&
			tl_cmd ip netns exec "$NS_SRV" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.ip_nonlocal_bind=1 >/dev/null &&
			tl_cmd ip netns exec "$NS_SRV2" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.ip_nonlocal_bind=1 >/dev/null
	} || { tl_topology_down; return 1; }
}

# tl_on_srv2 CMD...: CMD with srv2 as "the server" (NS_SRV, its logs and stats).
tl_on_srv2() {
	NS_SRV=$NS_SRV2 TL_SRV_LOG=$TL_TMP/server2.log TL_SRV_STATS=$TL_TMP/server2-stats.jsonl "$@"
}

# tl_fo_vrrp_instance NAME VRID TRACK ADDR/DEV PRIORITY SELF PEER: one
# vrrp_instance block of tl_keepalived_start's configuration.
tl_fo_vrrp_instance() {
	cat <<-EOF
		vrrp_instance $1 {
			state BACKUP
			nopreempt
			interface $TL_UL_IF
			virtual_router_id $2
			priority $5
			advert_int $TL_FO_ADVERT
			unicast_src_ip $6
			unicast_peer {
				$7
			}
			virtual_ipaddress {
				$4
			}
			track_file {
				$3
			}
		}
	EOF
}

# tl_keepalived_start NS NAME PRIORITY SELF PEER: keepalived (VRRP only) in
# NS with its own config, pid files and track files in $TL_TMP/ka-NAME.
# A track file is the server's health as keepalived sees it: 0 healthy,
# anything else FAULT, which gives the instance's address up at once (a
# priority-0 advert tells the peer): "down" for the service address,
# "down-gw" for the inner gateway. tl_keepalived_watch writes both when the
# service dies; a planned switchover writes them by hand, gateway first.
# Prints keepalived's PID.
tl_keepalived_start() {
	local ns=$1 name=$2 prio=$3 self=$4 peer=$5 dir=$TL_TMP/ka-$2
	mkdir -p "$dir" || return 1
	echo 0 >"$dir/down"
	echo 0 >"$dir/down-gw"
	{
		cat <<-EOF
			# written by experiments/lib/netns.sh for $name
			global_defs {
				router_id tl-$name
				vrrp_version 3
				vrrp_min_garp true
				vrrp_garp_master_delay 0
				enable_script_security
				script_user root
			}
			track_file tl_health {
				file "$dir/down"
				weight 0
			}
			track_file tl_health_gw {
				file "$dir/down-gw"
				weight 0
			}
		EOF
		tl_fo_vrrp_instance tl_service "$TL_FO_VRID" tl_health "$TL_SRV_UL4/24 dev $TL_UL_IF" "$prio" "$self" "$peer"
		tl_fo_vrrp_instance tl_gateway "$TL_FO_VRID_GW" tl_health_gw "$TL_SRV_IN4/24 dev $TL_IN_IF" "$prio" "$self" "$peer"
	} >"$dir/keepalived.conf"
	tl_bg "$ns" "$dir/keepalived.log" keepalived --dont-fork --log-console --vrrp \
		--use-file "$dir/keepalived.conf" --pid "$dir/keepalived.pid" --vrrp_pid "$dir/vrrp.pid" \
		--checkers_pid "$dir/checkers.pid" >/dev/null || return 1
	echo "$TL_LAST_PID" >"$dir/pid"
	echo "$TL_LAST_PID"
}

# tl_keepalived_pair: keepalived in srv (priority 150), and once srv holds
# the service address, in srv2 (100). One after the other: with
# nopreempt (an address that moved stays where it is) the first to time
# out its wait would keep it, whatever its priority.
tl_keepalived_pair() {
	tl_keepalived_start "$NS_SRV" srv1 150 "$TL_FO_SRV1_UL4" "$TL_FO_SRV2_UL4" >/dev/null || return 1
	tl_wait_until "$TL_TIMEOUT" tl_vip_on "$NS_SRV" ||
		{ tl_log_tail "$TL_TMP/ka-srv1/keepalived.log"; tl_fail "expected srv to own $TL_SRV_UL4 within ${TL_TIMEOUT}s"; return 1; }
	tl_keepalived_start "$NS_SRV2" srv2 100 "$TL_FO_SRV2_UL4" "$TL_FO_SRV1_UL4" >/dev/null || return 1
	tl_wait_until "$TL_TIMEOUT" tl_fo_both_backup "$TL_TMP/ka-srv2/keepalived.log" ||
		{ tl_log_tail "$TL_TMP/ka-srv2/keepalived.log"; tl_fail "expected srv2's keepalived up as backup within ${TL_TIMEOUT}s"; }
}

# Have both instances of a keepalived log entered BACKUP?
tl_fo_both_backup() {
	(($(grep -cF "Entering BACKUP STATE" "$1" 2>/dev/null) >= 2))
}

# tl_fo_server_flags SELF: what a tunlab server of the pair runs with
# besides its frontend's: every address (so that a client told to move
# reaches it at its own), and the other server as --standby.
tl_fo_server_flags() {
	local other=$TL_FO_SRV2_UL4
	[[ $1 == srv1 ]] || other=$TL_FO_SRV1_UL4
	printf '%s\n' --listen "0.0.0.0:$TL_PORT" --standby "$other:$TL_PORT"
}

# tl_vip_on NS: does NS hold the service address (and the inner gateway)?
tl_vip_on() {
	[[ -n $(ip -n "$1" -4 -o addr show dev "$TL_UL_IF" to "$TL_SRV_UL4/32" 2>/dev/null) ]] &&
		[[ -n $(ip -n "$1" -4 -o addr show dev "$TL_IN_IF" to "$TL_SRV_IN4/32" 2>/dev/null) ]]
}

# tl_keepalived_down NAME [gw|service]: the server NAME (srv1, srv2) gives
# the inner gateway, the service address, or (by default) both up now.
tl_keepalived_down() {
	[[ ${2:-} == service ]] || echo 1 >"$TL_TMP/ka-$1/down-gw"
	[[ ${2:-} == gw ]] || echo 1 >"$TL_TMP/ka-$1/down"
}

# tl_tcp_drained NS PORT: NS holds no TCP connection of port PORT but in
# TIME-WAIT: every client has closed its session with the server there.
tl_tcp_drained() {
	[[ -z $(tl_ns "$1" ss -Htn state connected exclude time-wait "( sport = :$2 )" 2>/dev/null) ]]
}

# tl_fo_moved STATS SINCE: the server's stats, written after SINCE (epoch
# seconds), show no client told to move that has not moved yet.
tl_fo_moved() {
	tl_json_test "$1" ".time > $2 and .sessions_moving == 0"
}

# tl_handover PID STATS [ctl]: the planned switchover of the tunlab server
# PID in srv (its --stats file STATS), in the order that loses nothing:
#  1. the server is told (SIGUSR1, or with "ctl" `tunlab handover` on its
#     control socket); it sends each client MOVE, and each connects to the
#     standby beside its session, sends there once that is up and says
#     MOVED (the server's stats: sessions_moving 0);
#  2. the inner gateway moves: dst's answers go to the standby, which has
#     the clients; those still on their way to srv go on through the old
#     sessions;
#  3. the clients close the old sessions once nothing has come on them
#     for a while (no connection to srv's port left);
#  4. the service address moves.
# The service address moved before 3 would cut the old sessions (their
# segments would reach the standby, which answers RST) with answers in
# them; the gateway moved before 1 would send answers to a standby that
# does not have the client yet.
# TL_FO_ACTIVE names the active server (srv1, the default, or srv2); with
# "ctl" the control socket's answer is in TL_HANDOVER_REPLY.
tl_handover() {
	local since name=${TL_FO_ACTIVE:-srv1} ns=$NS_SRV
	[[ $name == srv1 ]] || ns=$NS_SRV2
	since=$(date +%s.%N)
	if [[ ${3:-} == ctl ]]; then
		TL_HANDOVER_REPLY=$(tl_ns "$ns" "$TUNLAB" handover --pid "$1") || return 1
	else
		kill -USR1 "$1" || return 1
	fi
	tl_wait_until 5 tl_fo_moved "$2" "$since" ||
		tl_log "handover: clients of $name still moving after 5 s; moving the gateway anyway"
	tl_keepalived_down "$name" gw
	tl_wait_until 5 tl_tcp_drained "$ns" "$TL_PORT" ||
		tl_log "handover: connections to $name's port $TL_PORT still open after 5 s; moving the address anyway"
	tl_keepalived_down "$name" service
}

# tl_keepalived_up NAME: NAME is healthy again (a standby once more: nopreempt).
tl_keepalived_up() {
	echo 0 >"$TL_TMP/ka-$1/down-gw"
	echo 0 >"$TL_TMP/ka-$1/down"
}

# tl_keepalived_watch NAME PID: NAME's health follows process PID (a
# service manager's job): when it is gone, for whatever reason, the track
# files say so within 20 ms and keepalived gives both addresses up.
tl_keepalived_watch() {
	local name=$1 pid=$2 ns=${3:--}
	tl_bg "$ns" "$TL_TMP/ka-$name/watch.log" sh -c \
		'tail --pid="$1" -s 0.02 -f /dev/null; echo 1 >"$2/down-gw"; echo 1 >"$2/down"' sh "$pid" \
		"$TL_TMP/ka-$name" >/dev/null
}
