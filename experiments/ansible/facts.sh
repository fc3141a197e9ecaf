#!/bin/sh
# SPDX-License-Identifier: MIT
# facts.sh: prints this host's facts as "key: value" lines (facts.yml runs it; the harness prefixes host.ROLE.).
# Usage: facts.sh TUNLAB IF...
tunlab=$1
shift
first() { "$@" 2>&1 | head -n 1; }
echo "hostname: $(hostname)"
echo "kernel: $(uname -r)"
echo "os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "cpu: $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
echo "cores: $(nproc)"
echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "tunlab: $(first "$tunlab" --version)"
echo "iperf3: $(first iperf3 --version)"
for dev in "$@"; do
	[ -n "$dev" ] || continue
	driver=$(ethtool -i "$dev" 2>/dev/null | sed -n 's/^driver: //p')
	[ -n "$driver" ] || driver=$(basename "$(readlink "/sys/class/net/$dev/device/driver" 2>/dev/null)" 2>/dev/null)
	echo "nic.$dev.driver: ${driver:-unknown}"
	echo "nic.$dev.mtu: $(cat "/sys/class/net/$dev/mtu" 2>/dev/null)"
	echo "nic.$dev.speed: $(cat "/sys/class/net/$dev/speed" 2>/dev/null || echo unknown)"
	if command -v ethtool >/dev/null; then
		echo "nic.$dev.offloads: $(ethtool -k "$dev" 2>/dev/null | awk -F': ' '
			/^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|large-receive-offload|rx-checksumming|tx-checksumming|rx-gro-hw):/ {
				split($2, v, " "); printf "%s%s=%s", sep, $1, v[1]; sep = " " }')"
	else
		echo "nic.$dev.offloads: unknown (no ethtool)"
	fi
done
