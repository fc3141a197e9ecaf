# SPDX-License-Identifier: MIT
# systems.sh: the systems the performance experiments compare, one table row each (sourced).
# shellcheck shell=bash
#
# A system is whatever carries cli's traffic to dst. Its start function runs
# in a topology that tl_topology_up has just built, with nothing else
# running (argument: a scratch directory of its own); it returns 0 once
# traffic from cli to 10.102.0.2 goes through the system, and says how to
# measure it in these variables (sys_reset empties them first):
#   SYS_STATS    tunlab --stats files to sample, "role=FILE" words
#                (e.g. "client=/tmp/x server=/tmp/y")
#   SYS_PIDS     processes whose CPU time is sampled from /proc, "role=PID"
#                words, for systems without --stats (the references)
#   SYS_TUN_DEV  the device in cli that carries the tunnel: its tx bytes
#                must cover what iperf3 moved, or the figure is not the
#                tunnel's
#   SYS_TARGET   "ADDR:PORT" the iperf3 client in cli connects to, when it is
#                not dst itself (a relay listening in cli)
#   SYS_ROUTES_DONE  1 when the row routed SYS_EXTRA_ROUTES into the tunnel
#   SYS_TX_KEY   the client stats key counting what went into the tunnel,
#                when it is not tx_bytes (the proxy's fe_stream_bytes_out)
# One input: SYS_EXTRA_ROUTES, an array of IPv4 prefixes cli must send
# through the tunnel besides the inner network (the prefix-scaling
# experiment). A row that can carry them does so and sets SYS_ROUTES_DONE;
# sys_reset does not touch the array, the caller owns it.
# The harness stops a system with sys_stop (the row's stop function, if it
# has one, after every process we started is gone) and tl_topology_down.
#
# The "needs" column is a comma list of what a row requires: "tunlab" (an
# executable $TUNLAB) or commands from Debian packages; sys_available
# drops the rows whose requirements are missing, saying why. Every tunnel
# row blocks cleartext forwarding in srv (tl_block_cleartext) before it
# starts, so an answer from dst proves the tunnel carried it. Sourced after
# netns.sh.

# shellcheck disable=SC2034 # read by measure.sh
TL_SYSTEMS=(
	# id          start function          needs            label (rest of line)
	"plain        sys_plain_start         -                plain veth (srv forwards, no tunnel)"
	"tun          sys_tun_start           tunlab           tunlab tun"
	"tun-udp      sys_tun_udp_start       tunlab,tunlab-udp tunlab tun, UDP data channel"
	"tun-poll     sys_tun_poll_start      tunlab,tunlab-poll tunlab tun, --busy-poll 200"
	"nfqueue      sys_nfqueue_start       tunlab           tunlab nfqueue"
	"proxy        sys_proxy_start         tunlab           tunlab proxy"
	"pcap         sys_pcap_start          tunlab           tunlab pcap (GSO inject through lo)"
	"pcap-inject  sys_pcap_inject_start   tunlab           tunlab pcap (pcap_inject)"
	"openvpn-udp  sys_openvpn_udp_start   openvpn          OpenVPN 2.6 UDP"
	"openvpn-tcp  sys_openvpn_tcp_start   openvpn          OpenVPN 2.6 TCP"
	"wireguard-go sys_wggo_start          wireguard-go,wg  wireguard-go"
	"tls-relay    sys_tls_relay_start     stunnel4,socat   TLS relay (stunnel)"
)

# The Debian package behind each command a row may need (deps.sh installs them).
declare -A SYS_CMD_PACKAGE=(
	[openvpn]=openvpn [wireguard-go]=wireguard-go [wg]=wireguard-tools
	[stunnel4]=stunnel4 [socat]=socat
)

SYS_STATS="" SYS_PIDS="" SYS_TUN_DEV="" SYS_TARGET="" SYS_ROUTES_DONE=0 SYS_TX_KEY=""
SYS_EXTRA_ROUTES=()
# SYS_COLD=1 (the acquire experiment): a start returns as soon as its client
# is configured, before any connection: tunlab with --lazy once its policy
# is installed, wireguard-go without the ping that would start its
# handshake, OpenVPN once its routes exist (which it adds only once its
# tunnel is up: before that, cli's traffic takes the default route).
SYS_COLD=${SYS_COLD:-0}

# What carries each row's packets between cli and srv (the metadata's
# "transport.ID:" lines): tunlab's frontends ride the TLS stream unless the
# row says otherwise.
declare -A SYS_TRANSPORT=(
	[plain]="none (routed)" [tun]="tls (TCP)" [tun-udp]="udp (datagram channel keyed by TLS)" [tun-poll]="tls (TCP)"
	[nfqueue]="tls (TCP)" [proxy]="tls (TCP)" [pcap]="tls (TCP)" [pcap-inject]="tls (TCP)"
	[openvpn-udp]=udp [openvpn-tcp]="tcp" [wireguard-go]=udp [tls-relay]="tls (TCP)"
)

# Rows an experiment measures by default only when its EXP_OPT_IN names
# them (experiment.sh): tun-udp joins the experiments where the transport
# matters without pushing `make experiments` past its budget.
SYS_OPT_IN_ROWS="tun-udp tun-poll"

# The rows the hosts back end (--inventory, hosts.sh) runs: their start
# uses only role helpers that have both back ends, and hosts.bats runs them
# through Ansible. Every other row is refused there by name with its reason
# (sys_backend_why), not started half on hosts and half in namespaces.
SYS_ON_HOSTS="plain tun"
declare -A SYS_HOSTS_WHY=(
	[openvpn-udp]="its configs name certificates and a client-config-dir that are not copied to the hosts, and the controller's openvpn is checked instead of the hosts'"
	[openvpn-tcp]="its configs name certificates and a client-config-dir that are not copied to the hosts, and the controller's openvpn is checked instead of the hosts'"
	[wireguard-go]="its start runs wg with ip netns exec itself, not through the role helpers"
	[tls-relay]="its configs name certificates that are not copied to the hosts, and its probe runs socat with ip netns exec itself"
)

# One input for the rows whose transport can keep a NAT mapping alive
# (tun-udp, openvpn-udp, wireguard-go): SYS_KEEPALIVE seconds between
# keepalives from cli, or empty for each one's default.
SYS_KEEPALIVE=${SYS_KEEPALIVE:-}

# SYS_POLICY=FILE (the policy-scale experiment): tunlab rows give the client
# --policy FILE instead of --route flags, FILE written by sys_tunlab_start
# with a "protect dst=P" entry for each prefix those flags would have
# routed, in their order (SYS_EXTRA_ROUTES, the inner network, the row's
# own); the server exports the same. Empty: --route flags.
SYS_POLICY=${SYS_POLICY:-}

# sys_policy_args FILE [client flags]: writes FILE as SYS_POLICY says and
# prints the flags other than --route, one a line.
sys_policy_args() {
	local file=$1 prefix
	shift
	for prefix in ${SYS_EXTRA_ROUTES[@]+"${SYS_EXTRA_ROUTES[@]}"} "$TL_IN_NET4"; do
		echo "protect dst=$prefix"
	done >"$file"
	while (($#)); do
		if [[ $1 == --route ]]; then
			echo "protect dst=$2" >>"$file"
			shift 2
			continue
		fi
		printf '%s\n' "$1"
		shift
	done
}

sys_reset() {
	SYS_STATS="" SYS_PIDS="" SYS_TUN_DEV="" SYS_TARGET="" SYS_ROUTES_DONE=0 SYS_TX_KEY=""
}

# "--route P" (client) or "--export P" (server) for each extra prefix:
# what a tunlab client routes, its server must let it reach.
sys_extra_route_flags() {
	local flag=${1:---route} prefix
	for prefix in ${SYS_EXTRA_ROUTES[@]+"${SYS_EXTRA_ROUTES[@]}"}; do
		printf -- '%s\n%s\n' "$flag" "$prefix"
	done
}

# The reference path: cli's default route already points at srv, which
# forwards to dst. Nothing to start.
sys_plain_start() {
	sys_reset
}

# Starts the tunlab server and client with one frontend (netns.sh gives
# them --stats files, a line every TL_STATS_INTERVAL ms, and the client
# --route 10.102.0.0/24, the server --export of it and of fd02::/64), and
# proves the tunnel is the only way through by blocking cleartext
# cli<->dst forwarding in srv first. The stats files are emptied so that a
# sample never comes from an earlier run. Extra arguments go to the client,
# after a --route for each SYS_EXTRA_ROUTES prefix (the server exports
# each); a row's SYS_SERVER_ARGS array (local to it) goes to the server.
sys_tunlab_start() {
	local frontend=$1
	shift
	rm -f -- "$TL_SRV_STATS" "$TL_CLI_STATS"
	SYS_STATS="client=$TL_CLI_STATS server=$TL_SRV_STATS"
	local -a routes exports args=("$@")
	local policy=${TL_CLIENT_POLICY:-}
	mapfile -t routes < <(sys_extra_route_flags --route)
	mapfile -t exports < <(sys_extra_route_flags --export)
	if [[ -n $SYS_POLICY ]]; then
		mapfile -t args < <(sys_policy_args "$SYS_POLICY" "$@")
		routes=() policy=$SYS_POLICY
	fi
	tl_block_cleartext || return 1
	tl_start_tunlab_server "$frontend" ${exports[@]+"${exports[@]}"} \
		${SYS_SERVER_ARGS[@]+"${SYS_SERVER_ARGS[@]}"} || return 1
	if ((SYS_COLD)); then
		TL_CLIENT_POLICY=$policy TL_WAIT=none tl_start_tunlab_client "$frontend" ${routes[@]+"${routes[@]}"} \
			${args[@]+"${args[@]}"} --lazy || return 1
		sys_wait_stats_written "$TL_CLI_STATS" || return 1
	else
		TL_CLIENT_POLICY=$policy tl_start_tunlab_client "$frontend" ${routes[@]+"${routes[@]}"} \
			${args[@]+"${args[@]}"} || return 1
	fi
	SYS_ROUTES_DONE=1
}

# A lazy client wrote its first stats line: its frontend (the policy) is in place.
sys_wait_stats_written() {
	tl_wait_until "$TL_TIMEOUT" tl_json_test "$1" '.connected == false' ||
		tl_fail "expected the lazy tunlab client to write its stats within ${TL_TIMEOUT}s"
}

# IPv6 as well as IPv4, as the references have it: a second --address at
# each end (fd08::1, fd08::2) and the inner network's IPv6 prefix routed
# into the tunnel. The server's peers file (netns.sh) already gives cli
# fd08::2/128 beside 10.8.0.2/32: the server routes it back to cli's
# session and accepts it as cli's source.
SYS_V6_SERVER_ARGS=(--address "$TL_TUN_SRV6/$TL_TUN_PLEN6")
SYS_V6_CLIENT_ARGS=(--address "$TL_TUN_CLI6/$TL_TUN_PLEN6" --route "$TL_IN_NET6")

# sys_tunlab_dual_start FRONTEND [client flags]: sys_tunlab_start with both
# families; a row's SYS_SERVER_ARGS come before the IPv6 ones.
sys_tunlab_dual_start() {
	local frontend=$1
	shift
	local -a SYS_SERVER_ARGS=(${SYS_SERVER_ARGS[@]+"${SYS_SERVER_ARGS[@]}"} "${SYS_V6_SERVER_ARGS[@]}")
	sys_tunlab_start "$frontend" "${SYS_V6_CLIENT_ARGS[@]}" "$@"
}

# The TLS stream (tl_start_tunlab_client names it: the row it has always been).
sys_tun_start() {
	sys_tunlab_dual_start tun
}

# The datagram data channel of issue 15: keys from the TLS connection, which
# stays as the control channel; the server listens for both on one port.
sys_tun_udp_start() {
	local -a keepalive=()
	[[ -z $SYS_KEEPALIVE ]] || keepalive=(--keepalive "$SYS_KEEPALIVE")
	sys_tunlab_dual_start tun --transport udp ${keepalive[@]+"${keepalive[@]}"}
}

# tun with both ends polling 200 us after each burst of events (--busy-poll,
# issue 17 part 3): request/response latency bought with CPU. Opt-in, not
# a default; the rtt experiment measures it beside tun.
SYS_BUSY_POLL_US=200
sys_tun_poll_start() {
	local -a SYS_SERVER_ARGS=(${SYS_SERVER_ARGS[@]+"${SYS_SERVER_ARGS[@]}"} --busy-poll "$SYS_BUSY_POLL_US")
	sys_tunlab_dual_start tun --busy-poll "$SYS_BUSY_POLL_US"
}

sys_nfqueue_start() {
	sys_tunlab_dual_start nfqueue
}

# The first background text's design: routes to lo, libpcap reads them back.
sys_pcap_start() {
	sys_tunlab_dual_start pcap
}

# The same, both ends delivering with pcap_inject on lo: one send() per packet.
sys_pcap_inject_start() {
	local -a SYS_SERVER_ARGS=(--inject pcap)
	sys_tunlab_dual_start pcap --inject pcap
}

# Byte streams, not packets: its ceiling is the tls-relay row, in the same run.
# IPv6 TCP takes the same REDIRECT (to its listener on [::1]); the proxy
# takes no address of its own, so --address fd08::2 changes nothing there.
sys_proxy_start() {
	sys_tunlab_dual_start proxy || return 1
	SYS_TX_KEY=fe_stream_bytes_out
}

# ---- OpenVPN 2.6 -------------------------------------------------------------
# The data channel in userspace: --disable-dco, since this kernel has no
# ovpn-dco module and 2.6 would otherwise look for it first. AES-128-GCM,
# the AEAD tunlab's TLS 1.3 tunnel picks first, keyed by a TLS 1.3 control
# channel with the test PKI's certificates. The client-config-dir pins cli
# to 10.8.0.2 (fd08::2); the server pushes the route to the inner network.
# srv's tun device owns 10.8.0.0/24, so dst's replies (default via srv) go
# back into the tunnel.

SYS_OVPN_PORT=1194
SYS_OVPN_DEV=ovpn0

sys_openvpn_udp_start() {
	sys_openvpn_start "$1" udp
}

sys_openvpn_tcp_start() {
	sys_openvpn_start "$1" tcp
}

# sys_openvpn_start WORKDIR udp|tcp
sys_openvpn_start() {
	local work=$1 proto=$2 srv_pid cli_pid
	sys_need openvpn || return 1
	tl_pki || return 1
	sys_openvpn_conf "$work" "$proto" || return 1
	tl_block_cleartext || return 1
	tl_bg "$NS_SRV" "$work/openvpn-server.log" openvpn --config "$work/server.conf" >/dev/null || return 1
	srv_pid=$TL_LAST_PID
	sys_wait_log "$srv_pid" "$work/openvpn-server.log" "Initialization Sequence Completed" \
		"OpenVPN server in srv to come up" || return 1
	tl_bg "$NS_CLI" "$work/openvpn-client.log" openvpn --config "$work/client.conf" >/dev/null || return 1
	cli_pid=$TL_LAST_PID
	if ((SYS_COLD)); then
		# OpenVPN's model: its routes exist only once its tunnel is up. Cold
		# for it is launched until then: a sender started earlier would test
		# the default route, not OpenVPN (acquire's header says why).
		tl_wait_until "$TL_TIMEOUT" sys_has_route "$NS_CLI" "$TL_IN_NET4" "$SYS_OVPN_DEV" ||
			{ tl_log_tail "$work/openvpn-client.log"; tl_fail "expected OpenVPN's route to $TL_IN_NET4 in cli"; return 1; }
		SYS_PIDS="client=$cli_pid server=$srv_pid" SYS_TUN_DEV=$SYS_OVPN_DEV SYS_ROUTES_DONE=1
		return 0
	fi
	sys_wait_log "$cli_pid" "$work/openvpn-client.log" "Data Channel: cipher" \
		"OpenVPN client in cli to connect" || return 1
	grep -q "Data Channel: cipher 'AES-128-GCM'" "$work/openvpn-client.log" ||
		{ tl_log_tail "$work/openvpn-client.log"; tl_fail "expected the AES-128-GCM data channel"; return 1; }
	sys_wait_tunnel "$work/openvpn-client.log" "$work/openvpn-server.log" || return 1
	SYS_PIDS="client=$cli_pid server=$srv_pid" SYS_TUN_DEV=$SYS_OVPN_DEV SYS_ROUTES_DONE=1
}

# sys_has_route NS PREFIX DEV: NS routes PREFIX through DEV.
sys_has_route() {
	ip -n "$1" route show "$2" 2>/dev/null | grep -q " dev $3\b"
}

# Writes WORKDIR/server.conf, client.conf and ccd/cli.
sys_openvpn_conf() {
	local work=$1 proto=$2 srv_proto=udp cli_proto=udp
	[[ $proto == tcp ]] && srv_proto=tcp-server cli_proto=tcp-client
	mkdir -p "$work/ccd" || return 1
	cat >"$work/ccd/cli" <<-EOF
		ifconfig-push $TL_TUN_CLI4 255.255.255.0
		ifconfig-ipv6-push $TL_TUN_CLI6/$TL_TUN_PLEN6 $TL_TUN_SRV6
	EOF
	sys_openvpn_common "$cli_proto" >"$work/client.conf" || return 1
	cat >>"$work/client.conf" <<-EOF
		client
		remote $TL_SRV_UL4 $SYS_OVPN_PORT
		nobind
		connect-retry 1 1
		$([[ -z $SYS_KEEPALIVE || $proto != udp ]] || echo "ping $SYS_KEEPALIVE")
		cert $TL_PKI/cli.crt
		key $TL_PKI/cli.key
		remote-cert-tls server
		verify-x509-name server name
	EOF
	sys_openvpn_common "$srv_proto" >"$work/server.conf" || return 1
	cat >>"$work/server.conf" <<-EOF
		local $TL_SRV_UL4
		port $SYS_OVPN_PORT
		topology subnet
		server ${TL_TUN_NET4%/*} 255.255.255.0
		server-ipv6 $TL_TUN_NET6
		client-config-dir $work/ccd
		ccd-exclusive
		push "route ${TL_IN_NET4%/*} 255.255.255.0"
		push "route-ipv6 $TL_IN_NET6"
		$(sys_openvpn_push_extra)
		cert $TL_PKI/server.crt
		key $TL_PKI/server.key
		dh none
		remote-cert-tls client
	EOF
}

# A pushed route per SYS_EXTRA_ROUTES prefix (2.6 splits a long push reply
# into several messages itself).
sys_openvpn_push_extra() {
	local prefix
	for prefix in ${SYS_EXTRA_ROUTES[@]+"${SYS_EXTRA_ROUTES[@]}"}; do
		printf 'push "route %s %s"\n' "${prefix%/*}" "$(sys_netmask "${prefix#*/}")"
	done
}

# Dotted netmask of a prefix length.
sys_netmask() {
	local plen=$1 mask
	mask=$(((0xffffffff << (32 - plen)) & 0xffffffff))
	echo "$((mask >> 24 & 255)).$((mask >> 16 & 255)).$((mask >> 8 & 255)).$((mask & 255))"
}

# The lines both ends share, for transport PROTO.
sys_openvpn_common() {
	cat <<-EOF
		# OpenVPN 2.6 config written by experiments/lib/systems.sh
		dev $SYS_OVPN_DEV
		dev-type tun
		proto $1
		disable-dco
		data-ciphers AES-128-GCM
		tls-version-min 1.3
		ca $TL_PKI/ca.crt
		verb 3
	EOF
}

# ---- wireguard-go ----------------------------------------------------------------
# There is no kernel WireGuard here, which is why the userspace daemon is
# the reference. It runs in the foreground (-f), so its PID is one tl_bg
# recorded. Its control socket lives in /var/run/wireguard/IF.sock, a
# directory every namespace shares: the interface names carry TL_ID and the
# end, so two runs, or cli and srv, never meet there. (Its banner says the
# kernel has WireGuard: it judges by the kernel version alone.) MTU and
# everything else stay at wireguard-go's defaults, as a user would have them.

SYS_WG_PORT=51820
SYS_WG_SOCKS=()

sys_wggo_start() {
	local work=$1 id=${TL_ID:0:10} cli_if srv_if srv_pid cli_pid
	sys_need wireguard-go wg || return 1
	cli_if=wgc-$id srv_if=wgs-$id
	(umask 077 && wg genkey >"$work/wg-cli.key" && wg genkey >"$work/wg-srv.key") || return 1
	wg pubkey <"$work/wg-cli.key" >"$work/wg-cli.pub" || return 1
	wg pubkey <"$work/wg-srv.key" >"$work/wg-srv.pub" || return 1
	tl_block_cleartext || return 1
	SYS_WG_SOCKS=("/var/run/wireguard/$srv_if.sock" "/var/run/wireguard/$cli_if.sock")
	sys_wggo_daemon "$NS_SRV" "$srv_if" "$work/wireguard-go-server.log" || return 1
	srv_pid=$TL_LAST_PID
	sys_wggo_daemon "$NS_CLI" "$cli_if" "$work/wireguard-go-client.log" || return 1
	cli_pid=$TL_LAST_PID
	tl_cmd ip netns exec "$NS_SRV" wg set "$srv_if" private-key "$work/wg-srv.key" \
		listen-port "$SYS_WG_PORT" \
		peer "$(cat "$work/wg-cli.pub")" allowed-ips "$TL_TUN_CLI4/32,$TL_TUN_CLI6/128" || return 1
	tl_cmd ip netns exec "$NS_CLI" wg set "$cli_if" private-key "$work/wg-cli.key" \
		peer "$(cat "$work/wg-srv.pub")" endpoint "$TL_SRV_UL4:$SYS_WG_PORT" \
		allowed-ips "$TL_TUN_NET4,$TL_IN_NET4,$TL_TUN_NET6,$TL_IN_NET6" \
		${SYS_KEEPALIVE:+persistent-keepalive "$SYS_KEEPALIVE"} || return 1
	sys_ifup "$NS_SRV" "$srv_if" "$TL_TUN_SRV4" "$TL_TUN_SRV6" || return 1
	sys_ifup "$NS_CLI" "$cli_if" "$TL_TUN_CLI4" "$TL_TUN_CLI6" || return 1
	tl_cmd ip -n "$NS_CLI" route add "$TL_IN_NET4" dev "$cli_if" || return 1
	tl_cmd ip -n "$NS_CLI" -6 route add "$TL_IN_NET6" dev "$cli_if" || return 1
	sys_wggo_extra_routes "$cli_if" "$work/wg-srv.pub" || return 1
	((SYS_COLD)) || sys_wait_tunnel "$work/wireguard-go-client.log" "$work/wireguard-go-server.log" || return 1
	SYS_PIDS="client=$cli_pid server=$srv_pid" SYS_TUN_DEV=$cli_if SYS_ROUTES_DONE=1
}

# sys_wggo_extra_routes IF PUBKEY_FILE: SYS_EXTRA_ROUTES as wg-quick would
# set them up: added to the server peer's allowed IPs, one route each to IF.
sys_wggo_extra_routes() {
	local dev=$1 pub=$2 prefix allowed
	((${#SYS_EXTRA_ROUTES[@]})) || return 0
	allowed=$(IFS=,; echo "${SYS_EXTRA_ROUTES[*]}")
	tl_cmd ip netns exec "$NS_CLI" wg set "$dev" peer "$(cat "$pub")" \
		allowed-ips "$TL_TUN_NET4,$TL_IN_NET4,$TL_TUN_NET6,$TL_IN_NET6,$allowed" || return 1
	for prefix in "${SYS_EXTRA_ROUTES[@]}"; do
		tl_cmd ip -n "$NS_CLI" route add "$prefix" dev "$dev" || return 1
	done
}

# sys_wggo_daemon NS IF LOG: starts wireguard-go for IF in NS (PID in
# TL_LAST_PID) and waits until its control socket answers.
sys_wggo_daemon() {
	local ns=$1 dev=$2 log=$3
	tl_bg "$ns" "$log" wireguard-go -f "$dev" >/dev/null || return 1
	tl_wait_until "$TL_TIMEOUT" sys_wggo_ready "$TL_LAST_PID" "$ns" "$dev" || {
		tl_log_tail "$log"
		tl_fail "expected wireguard-go (pid $TL_LAST_PID) to answer on /var/run/wireguard/$dev.sock within ${TL_TIMEOUT}s"
	}
}

sys_wggo_ready() {
	tl_pid_alive "$1" || return 255
	ip netns exec "$2" wg show "$3" >/dev/null 2>&1
}

# A wireguard-go that had to be SIGKILLed leaves its socket behind, outside
# the namespaces; the daemons are gone by now.
sys_wggo_stop() {
	((${#SYS_WG_SOCKS[@]})) && rm -f -- "${SYS_WG_SOCKS[@]}"
	SYS_WG_SOCKS=()
}

# sys_ifup NS IF ADDR4 ADDR6: the tunnel's inner addresses, and the link up.
sys_ifup() {
	local ns=$1 dev=$2
	tl_cmd ip -n "$ns" addr add "$3/$TL_TUN_PLEN4" dev "$dev" || return 1
	tl_cmd ip -n "$ns" -6 addr add "$4/$TL_TUN_PLEN6" dev "$dev" nodad || return 1
	tl_cmd ip -n "$ns" link set "$dev" up
}

# ---- TLS byte-stream relay -------------------------------------------------------
# The proxy approach's ceiling: stunnel in cli accepts TCP on a local port and
# carries the byte stream over TLS 1.3 (AES-128-GCM, mutual certificates) to
# stunnel in srv, which opens its own connection to dst's iperf3 port. The
# iperf3 client connects to the local port (SYS_TARGET); iperf3's control
# and data connections all go to that one port, so one relay serves them.

SYS_RELAY_PORT=4443             # stunnel server, on srv's underlay address
SYS_RELAY_LOCAL=127.0.0.1:5301  # stunnel client in cli: iperf3 connects here

sys_tls_relay_start() {
	local work=$1 srv_pid cli_pid
	sys_need stunnel4 socat || return 1
	tl_pki || return 1
	sys_stunnel_conf "$work" || return 1
	tl_block_cleartext || return 1
	tl_bg "$NS_SRV" "$work/stunnel-server.log" stunnel4 "$work/stunnel-server.conf" >/dev/null || return 1
	srv_pid=$TL_LAST_PID
	sys_wait_listen "$srv_pid" "$NS_SRV" "$SYS_RELAY_PORT" "$work/stunnel-server.log" || return 1
	tl_bg "$NS_CLI" "$work/stunnel-client.log" stunnel4 "$work/stunnel-client.conf" >/dev/null || return 1
	cli_pid=$TL_LAST_PID
	sys_wait_listen "$cli_pid" "$NS_CLI" "${SYS_RELAY_LOCAL##*:}" "$work/stunnel-client.log" || return 1
	sys_relay_probe "$work" || return 1
	SYS_PIDS="client=$cli_pid server=$srv_pid" SYS_TARGET=$SYS_RELAY_LOCAL
}

# Writes WORKDIR/stunnel-server.conf and stunnel-client.conf. The server
# relays to dst's iperf3 port (measure.sh's MEAS_PORT).
sys_stunnel_conf() {
	local work=$1
	{
		sys_stunnel_common
		cat <<-EOF
			accept = $TL_SRV_UL4:$SYS_RELAY_PORT
			connect = $TL_DST_IN4:${MEAS_PORT:-5201}
			cert = $TL_PKI/server.crt
			key = $TL_PKI/server.key
			requireCert = yes
		EOF
	} >"$work/stunnel-server.conf" || return 1
	{
		sys_stunnel_common
		cat <<-EOF
			client = yes
			accept = $SYS_RELAY_LOCAL
			connect = $TL_SRV_UL4:$SYS_RELAY_PORT
			cert = $TL_PKI/cli.crt
			key = $TL_PKI/cli.key
			sni = server
			checkHost = server
		EOF
	} >"$work/stunnel-client.conf"
}

# Foreground (a PID we started), no pid file, no syslog; one service.
sys_stunnel_common() {
	cat <<-EOF
		; stunnel config written by experiments/lib/systems.sh
		foreground = yes
		syslog = no
		pid =
		debug = 6
		[relay]
		CAfile = $TL_PKI/ca.crt
		verifyChain = yes
		sslVersionMin = TLSv1.3
		ciphersuites = TLS_AES_128_GCM_SHA256
	EOF
}

# Sends a line from cli through the relay to a one-shot listener on dst's
# iperf3 port: proves the relay carries bytes end to end before the test.
sys_relay_probe() {
	local work=$1 port=${MEAS_PORT:-5201} pid line="tunlab relay probe $TL_ID"
	tl_bg "$NS_DST" "$work/relay-probe-dst.log" socat -u \
		"TCP4-LISTEN:$port,bind=$TL_DST_IN4,reuseaddr" "CREATE:$work/relay-probe.out" >/dev/null || return 1
	pid=$TL_LAST_PID
	tl_wait_listen "$NS_DST" tcp "$port" 5 || return 1
	echo "$line" | tl_cmd ip netns exec "$NS_CLI" timeout 5 socat -u - "TCP4:$SYS_RELAY_LOCAL" || true
	tl_wait_exit "$pid" 5 || tl_stop "$pid" TERM 2 || true
	if [[ $(cat "$work/relay-probe.out" 2>/dev/null) != "$line" ]]; then
		tl_log_tail "$work/stunnel-client.log"
		tl_log_tail "$work/stunnel-server.log"
		tl_fail "expected the probe line sent to $SYS_RELAY_LOCAL in cli to arrive at dst port $port through the relay"
		return 1
	fi
	grep -q 'TLSv1.3 ciphersuite: TLS_AES_128_GCM_SHA256' "$work/stunnel-client.log" ||
		{ tl_log_tail "$work/stunnel-client.log"; tl_fail "expected the relay to use TLS 1.3 with AES-128-GCM"; }
}

# ---- shared by the references ------------------------------------------------------

# sys_need CMD...: fails, saying which package to install, unless every CMD is there.
sys_need() {
	local missing
	missing=$(sys_unmet "$(IFS=,; echo "$*")")
	[[ -z $missing ]] || { tl_fail "$missing"; return 1; }
}

# sys_wait_log PID FILE TEXT WHAT: polls until FILE holds TEXT; fails at once
# when PID died.
sys_wait_log() {
	local pid=$1 file=$2 text=$3 what=$4
	tl_wait_until "$TL_TIMEOUT" sys_log_has "$pid" "$file" "$text" && return 0
	tl_log_tail "$file"
	tl_fail "expected $what (pid $pid logs '$text') within ${TL_TIMEOUT}s"
}

sys_log_has() {
	grep -qF -- "$3" "$2" 2>/dev/null && return 0
	tl_pid_alive "$1" || return 255
	return 1
}

# sys_wait_listen PID NS PORT LOG: PID listens on TCP PORT in NS.
sys_wait_listen() {
	local pid=$1 ns=$2 port=$3 log=$4
	tl_wait_until "$TL_TIMEOUT" sys_pid_listening "$pid" "$ns" "$port" && return 0
	tl_log_tail "$log"
	tl_fail "expected pid $pid to listen on tcp port $port in $ns within ${TL_TIMEOUT}s"
}

sys_pid_listening() {
	tl_pid_alive "$1" || return 255
	tl_listening "$2" tcp "$3"
}

# sys_wait_tunnel LOG...: a ping cli -> dst answers. srv blocks cleartext
# forwarding, so the answer proves the tunnel carried it both ways.
sys_wait_tunnel() {
	local log
	tl_wait_until "$TL_TIMEOUT" tl_ping_dst 1 && return 0
	for log in "$@"; do
		tl_log_tail "$log"
	done
	tl_fail "expected a ping from cli to $TL_DST_IN4 answered through the tunnel within ${TL_TIMEOUT}s"
}

# sys_stop START_FN: ends the system that START_FN started: every process we
# started, then the row's stop function (START_FN with _start -> _stop), if
# it has one, for what lives outside the namespaces.
sys_stop() {
	local stop=${1%_start}_stop
	tl_kill_started
	if declare -F "$stop" >/dev/null; then
		"$stop"
	fi
	return 0
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

# sys_without_opt_in SELECTED: the rows minus SYS_OPT_IN_ROWS, for a
# default selection outside experiment.sh (transparency, bench).
sys_without_opt_in() {
	local id rest
	while read -r id rest; do
		[[ -z $id || " $SYS_OPT_IN_ROWS " == *" $id "* ]] || printf '%s %s\n' "$id" "$rest"
	done <<<"$1"
	return 0
}

sys_ids() {
	local row id rest
	for row in "${TL_SYSTEMS[@]}"; do
		read -r id rest <<<"$row"
		printf '%s ' "$id"
	done
}

# sys_unmet NEEDS: prints what is missing for a row's needs (a comma list:
# "tunlab", or commands); prints nothing when everything is there.
sys_unmet() {
	local need
	local -a needs missing=()
	[[ $1 == - || -z $1 ]] && return 0
	IFS=, read -r -a needs <<<"$1"
	for need in "${needs[@]}"; do
		case $need in
		tunlab)
			# On an inventory's hosts, prepare.yml built it on each.
			[[ $TL_BACKEND == hosts || -x ${TUNLAB:-} ]] ||
				missing+=("the tunlab binary: '${TUNLAB:-}' is not executable (--tunlab PATH; make)")
			;;
		tunlab-udp)
			[[ ! -x ${TUNLAB:-} ]] || tl_tunlab_has_flag --transport ||
				missing+=("a tunlab with the UDP data channel (issue 15): '$TUNLAB client --help' has no --transport")
			;;
		tunlab-poll)
			[[ ! -x ${TUNLAB:-} ]] || tl_tunlab_has_flag --busy-poll ||
				missing+=("a tunlab with --busy-poll (issue 17): '$TUNLAB client --help' has no --busy-poll")
			;;
		*)
			command -v "$need" >/dev/null ||
				missing+=("$need, from Debian package ${SYS_CMD_PACKAGE[$need]:-$need} (experiments/lib/deps.sh installs it)")
			;;
		esac
	done
	((${#missing[@]} == 0)) && return 0
	local joined
	joined=$(printf '%s; ' "${missing[@]}")
	echo "needs ${joined%; }"
}

# sys_backend_why ID: why row ID cannot run on this back end (the hosts of
# an inventory: only SYS_ON_HOSTS); nothing when it can.
sys_backend_why() {
	[[ $TL_BACKEND == hosts && " $SYS_ON_HOSTS " != *" $1 "* ]] || return 0
	echo "does not run on an inventory's hosts: ${SYS_HOSTS_WHY[$1]:-not tried there yet (hosts.bats runs only $SYS_ON_HOSTS)}"
}

# sys_why ID NEEDS: why row ID cannot run here (back end, then unmet needs).
sys_why() {
	local why
	why=$(sys_backend_why "$1")
	[[ -n $why ]] || why=$(sys_unmet "$2")
	[[ -z $why ]] || echo "$why"
}

# sys_refuse_backend SELECTED: rows named by --systems that this back end
# cannot run refuse the whole run (status 1), each named with its reason on
# stderr: data without a system asked for is not what was asked. "all"
# names no row; sys_available drops those rows instead, saying why.
sys_refuse_backend() {
	local id why refused=0
	while read -r id _; do
		[[ -n $id ]] || continue
		why=$(sys_backend_why "$id")
		[[ -n $why ]] || continue
		echo "refusing system $id: it $why (run on hosts: $SYS_ON_HOSTS)" >&2
		refused=1
	done <<<"$1"
	return "$refused"
}

# sys_available SELECTED: prints the selected rows this back end can run
# and whose needs are met; says on stderr "SKIP id: reason" for the others.
sys_available() {
	local id fn needs label why
	while read -r id fn needs label; do
		[[ -n $id ]] || continue
		why=$(sys_why "$id" "$needs")
		if [[ -z $why ]]; then
			printf '%s %s %s %s\n' "$id" "$fn" "$needs" "$label"
		else
			echo "SKIP $id: $why" >&2
		fi
	done <<<"$1"
	return 0
}

# sys_skipped SELECTED: "skipped.ID: reason" metadata lines for the rows
# sys_available leaves out.
sys_skipped() {
	local id needs why
	while read -r id _ needs _; do
		[[ -n $id ]] || continue
		why=$(sys_why "$id" "$needs")
		[[ -z $why ]] || echo "skipped.$id: $why"
	done <<<"$1"
	return 0
}
