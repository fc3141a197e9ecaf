#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh: apt-installs the Debian packages tunlab builds, tests and experiments need; a no-op when all are present.
#
# Usage: experiments/lib/deps.sh [--check] [--paper]
#   --check          only list what is missing (exit 1 if anything is)
#   --paper          the paper's TeX toolchain instead (`make paper`, CI), which
#                    the tests and experiments do not need
#   TL_APT_UPDATE=1  run `apt-get update` once before installing (CI sets it);
#                    otherwise apt-get update runs only if the install fails.
# With everything installed it touches neither apt nor the network.
set -euo pipefail

# The one list. Add a package here, not in a script of its own.
TL_DEB_PACKAGES=(
	build-essential pkg-config libssl-dev libpcap-dev libnetfilter-queue-dev
	libmnl-dev libcmocka-dev clang libclang-rt-14-dev bats iperf3 iproute2
	iptables nftables jq tcpdump socat gnuplot-nox valgrind procps openssl git
	iputils-ping coreutils curl python3
	openvpn wireguard-go wireguard-tools stunnel4 conntrack python3
	keepalived  # experiments/failover: VRRP moves the service address between two servers
	linux-perf
	# --inventory: ansible-core runs the playbooks; the JSON stdout callback the
	# harness reads is ansible.posix.json, which only Debian's ansible package
	# (the collections) has: with ansible-core alone "json" is not a callback.
	ansible-core ansible openssh-server ethtool
)

# pdflatex with booktabs, longtable, graphicx, hyperref, Times; pdftoppm and
# pdfinfo to look at the pages. No texlive-latex-extra: nothing needs it.
TL_DEB_PAPER_PACKAGES=(
	texlive-latex-base texlive-latex-recommended texlive-fonts-recommended poppler-utils
)

# deps_missing PACKAGE...: prints those not installed.
deps_missing() {
	local pkg status
	for pkg in "$@"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		[[ $status == installed ]] || printf '%s\n' "$pkg"
	done
}

deps_cmd() {
	echo "[#] $*" >&2
	"$@"
}

deps_install() {
	local -a sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || { echo "deps.sh: not root and no sudo; install: $*" >&2; return 1; }
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	local -a install=("${sudo[@]}" apt-get install -y -q --no-install-recommends "$@")
	if [[ ${TL_APT_UPDATE:-0} == 1 ]]; then
		deps_cmd "${sudo[@]}" apt-get update -q
		deps_cmd "${install[@]}"
		return
	fi
	# Lists may be stale or absent on a fresh machine: update once, then retry.
	deps_cmd "${install[@]}" || { deps_cmd "${sudo[@]}" apt-get update -q && deps_cmd "${install[@]}"; }
}

main() {
	local check=0 arg
	local -a missing wanted=("${TL_DEB_PACKAGES[@]}")
	for arg in "$@"; do
		case $arg in
		--check) check=1 ;;
		--paper) wanted=("${TL_DEB_PAPER_PACKAGES[@]}") ;;
		*) echo "deps.sh: unknown argument '$arg'" >&2; return 2 ;;
		esac
	done
	mapfile -t missing < <(deps_missing "${wanted[@]}")
	((${#missing[@]} == 0)) && return 0
	if ((check)); then
		echo "missing: ${missing[*]}"
		return 1
	fi
	echo "deps.sh: installing ${missing[*]}" >&2
	deps_install "${missing[@]}"
}

# Sourcing gives the list to other scripts without installing anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
