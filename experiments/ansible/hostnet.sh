#!/bin/sh
# SPDX-License-Identifier: MIT
# hostnet.sh: on one experiment host, adds (up) or removes (down) exactly the addresses, routes, forwarding and firewall rules of one harness run.
#
# Usage (topology.yml runs it on each host): hostnet.sh up|down STATEFILE WORD...
#   addr=IF,ADDR/LEN        the address on IF (link set up), unless IF has it already
#   route=NET,GATEWAY,IF    a route via the on-link peer, metric 4242, proto 76
#   forward                 IPv4 and IPv6 forwarding on (srv)
# Everything added is written to STATEFILE first and `down` undoes exactly
# those lines, newest first: an address or a setting the host had before
# the run is never touched. `down` also deletes the harness's cleartext
# block rules (comment tl-cleartext-block, netns.sh), which on a namespace
# died with it. A leftover STATEFILE (a run that was killed) is undone
# before `up` adds anything.
set -eu

TL_PROTO=76     # "proto 76": routes the harness added, told apart from tunlab's 77
TL_METRIC=4242  # never shadows a route the host had for the same prefix

log() { echo "[hostnet $(hostname)] $*" >&2; }

undo() {
	state=$1
	[ -f "$state" ] || return 0
	tac "$state" | while read -r kind a b c; do
		case $kind in
		addr) ip addr del "$b" dev "$a" 2>/dev/null || log "address $b on $a was gone already" ;;
		route) ip route del "$a" via "$b" dev "$c" metric "$TL_METRIC" proto "$TL_PROTO" 2>/dev/null || true ;;
		sysctl) sysctl -qw "$a=$b" >/dev/null ;;
		esac
	done
	rm -f -- "$state"
}

unblock() {
	for tool in iptables ip6tables; do
		command -v "$tool" >/dev/null || continue
		"$tool" -w 5 -S FORWARD 2>/dev/null | grep -- '--comment tl-cleartext-block' | while read -r _ _ rest; do
			# shellcheck disable=SC2086 # the rule's words, as iptables -S printed them
			eval "$tool -w 5 -D FORWARD $rest" || true
		done
	done
}

has_addr() {
	ip -o addr show dev "$1" | awk '{ print $4 }' | grep -qx -- "$2"
}

up() {
	state=$1
	shift
	undo "$state"
	mkdir -p "$(dirname "$state")"
	: >"$state"
	for word in "$@"; do
		case $word in
		addr=*)
			w=${word#addr=}
			dev=${w%%,*} cidr=${w#*,}
			ip link show dev "$dev" >/dev/null || { log "no interface $dev"; return 1; }
			ip link set dev "$dev" up
			if ! has_addr "$dev" "$cidr"; then
				echo "addr $dev $cidr" >>"$state"
				case $cidr in *:*) ip -6 addr add "$cidr" dev "$dev" nodad ;; *) ip addr add "$cidr" dev "$dev" ;; esac
			fi
			;;
		route=*)
			w=${word#route=}
			net=${w%%,*} w=${w#*,}
			gw=${w%%,*} dev=${w#*,}
			echo "route $net $gw $dev" >>"$state"
			ip route add "$net" via "$gw" dev "$dev" metric "$TL_METRIC" proto "$TL_PROTO"
			;;
		forward)
			for key in net.ipv4.ip_forward net.ipv6.conf.all.forwarding; do
				echo "sysctl $key $(sysctl -n "$key")" >>"$state"
				sysctl -qw "$key=1" >/dev/null
			done
			;;
		*) log "unknown word '$word'"; return 1 ;;
		esac
	done
}

[ $# -ge 2 ] || { echo "usage: hostnet.sh up|down STATEFILE WORD..." >&2; exit 2; }
action=$1 statefile=$2
shift 2
case $action in
up) up "$statefile" "$@" ;;
down) unblock; undo "$statefile" ;;
*) echo "hostnet.sh: up or down, not '$action'" >&2; exit 2 ;;
esac
