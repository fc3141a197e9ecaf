# SPDX-License-Identifier: MIT
# hosts.sh: the real-hosts back end of netns.sh's role helpers: the same calls, carried out by Ansible on an inventory's hosts (sourced).
# shellcheck shell=bash
#
# netns.sh sources this when TL_INVENTORY names an Ansible inventory (the
# experiments' --inventory FILE). Then the "namespaces" NS_CLI, NS_SRV and
# NS_DST are the role names cli, srv and dst, and every helper that ran a
# command in a namespace runs it on that role's host instead:
#   tl_ns ROLE CMD...          tl_hosts_run: one ad-hoc Ansible shell task
#   tl_bg ROLE LOG CMD...      tl_hosts_bg: started detached on the host;
#                              its PID is "ROLE:PID"
#   tl_pid_alive / tl_stop / tl_kill_started on such PIDs, on the host
#   tl_topology_up / down      topology.yml (hostnet.sh on each host)
# Files. A run's directory $TL_TMP has the same path on every host. A
# background command's arguments that name existing files under $TL_TMP
# (certificates, peers, configs) are copied to its host first; the other
# $TL_TMP paths it names (stats, --logfile) and its log are remembered as
# that host's, and tl_fetch copies them back before netns.sh or measure.sh
# read them. Raw output thus lands in the run's directory as locally.
#
# Nothing here opens a connection itself: ansible and ansible-playbook
# do, from the namespace TL_CONTROLLER_NETNS when it is set (a test
# controller; empty: this one). Each step is one Ansible call (about a
# second); waits poll with one call per try, and no call is made per
# packet or per sample.

TL_HOSTS_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TL_HOSTS_PLAYBOOKS=$TL_HOSTS_LIB/../ansible
TL_CONTROLLER_NETNS=${TL_CONTROLLER_NETNS:-}

# tl_hosts_load: reads and checks $TL_INVENTORY (hosts-check.py) and sets
# the role variables; exits the script, saying why, if the inventory is
# refused.
tl_hosts_load() {
	local out name value
	command -v ansible-playbook >/dev/null ||
		{ echo "tunlab: --inventory needs Ansible on this machine (Debian package ansible-core)" >&2; exit 2; }
	ansible-doc -t callback ansible.posix.json >/dev/null 2>&1 ||
		{ echo "tunlab: --inventory reads Ansible's JSON output: the ansible.posix collection's json callback (Debian package ansible)" >&2; exit 2; }
	[[ -r $TL_INVENTORY ]] || { echo "tunlab: cannot read the inventory $TL_INVENTORY" >&2; exit 2; }
	out=$(ANSIBLE_CONFIG=$TL_HOSTS_PLAYBOOKS/ansible.cfg ansible-inventory -i "$TL_INVENTORY" --list 2>/dev/null |
		python3 "$TL_HOSTS_LIB/hosts-check.py" "$TL_TUN_NET4" "$TL_TUN_NET6") || exit 2
	while read -r name value; do
		[[ $name =~ ^TL_[A-Z0-9_]+$ ]] || continue
		printf -v "$name" '%s' "$value"
	done <<<"$out"
	# shellcheck disable=SC2034 # netns.sh's back end switch and binary
	TL_BACKEND=hosts
	# shellcheck disable=SC2034,SC2153 # TL_HOSTS_DIR: set from hosts-check.py above
	TUNLAB=$TL_HOSTS_DIR/src/build/tunlab
	export TL_INVENTORY TL_CONTROLLER_NETNS
}

# The command prefix that puts a program in the controller's namespace.
tl_hosts_controller() {
	[[ -z $TL_CONTROLLER_NETNS ]] || printf '%s\n' ip netns exec "$TL_CONTROLLER_NETNS"
}

# tl_ansible PROGRAM ARGS...: ansible or ansible-playbook on the inventory,
# JSON on stdout, its warnings in $TL_TMP/ansible.log.
tl_ansible() {
	local prog=$1
	shift
	local -a pre
	mapfile -t pre < <(tl_hosts_controller)
	[[ ${TL_VERBOSE:-0} == 1 ]] && echo "[ansible] $prog $*" >&2
	ANSIBLE_CONFIG=$TL_HOSTS_PLAYBOOKS/ansible.cfg ANSIBLE_LOAD_CALLBACK_PLUGINS=1 \
		ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ANSIBLE_NOCOLOR=1 \
		"${pre[@]}" "$prog" -i "$TL_INVENTORY" "$@" 2>>"${TL_TMP:-/tmp}/ansible.log"
}

# tl_hosts_results JSON: each host's stdout on stdout, stderr on stderr;
# returns the largest exit status (1 when a host was unreachable or the
# task failed without one).
tl_hosts_results() {
	local json=$1 rc=0 r
	[[ -n $json ]] || { echo "ansible gave no answer (see ${TL_TMP:-/tmp}/ansible.log)" >&2; return 1; }
	jq -j '[.plays[].tasks[-1].hosts[] | .stdout // empty | select(. != "") | . + "\n"] | add // ""' <<<"$json"
	jq -j '[.plays[].tasks[].hosts | to_entries[] | .value |
		((.stderr // empty | select(. != "")), (select(.rc == null and (.failed or .unreachable)) | .msg // empty))
		| tostring + "\n"] | add // ""' <<<"$json" | grep -v '^Shared connection to .* closed' >&2
	r=$(jq -r '[.plays[].tasks[].hosts[] | if .rc != null then .rc elif (.failed or .unreachable) then 1 else 0 end] | max // 1' <<<"$json") || r=1
	((r > rc)) && rc=$r
	return "$rc"
}

# tl_hosts_sh PATTERN SCRIPT: runs the shell SCRIPT on the hosts of PATTERN
# (a role, or "cli:srv:dst") in one Ansible call. The script travels base64
# encoded: no quoting, templating or k=v parsing can change it.
tl_hosts_sh() {
	local pattern=$1 script=$2 json
	json=$(tl_ansible ansible "$pattern" -m ansible.builtin.shell \
		-a "printf %s $(base64 -w0 <<<"$script") | base64 -d | bash") || true
	tl_hosts_results "$json"
}

# tl_hosts_run ROLE CMD...: CMD (each word kept as it is) on ROLE's host.
tl_hosts_run() {
	local role=$1
	shift
	tl_hosts_sh "$role" "$(printf '%q ' "$@")"
}

TL_HOSTS_ALL=cli:srv:dst

# tl_hosts_register ROLE PATH: PATH is written on ROLE's host.
tl_hosts_register() {
	echo "$1 $2" >>"$TL_TMP/remote-files"
}

# tl_hosts_bg ROLE LOG CMD...: netns.sh's tl_bg on ROLE's host. Prints
# "ROLE:PID" (also in TL_LAST_PID) and records it in $TL_TMP/remote-pids.
# With TL_HOSTS_READY=TEXT, the same call then waits (up to 5 s, while the
# process runs) until LOG holds TEXT; TL_HOSTS_READY_PID is the pid if so.
tl_hosts_bg() {
	local role=$1 log=$2 arg pid tarball="" wait=":"
	TL_HOSTS_READY_PID=""
	shift 2
	local -a inputs=() outputs=("$log")
	for arg in "$@"; do
		[[ $arg == "$TL_TMP"/* ]] || continue
		if [[ -f $arg ]]; then
			inputs+=("${arg#/}")
		else
			outputs+=("$arg")
		fi
	done
	for arg in "${outputs[@]}"; do
		tl_hosts_register "$role" "$arg"
	done
	((${#inputs[@]} == 0)) || tarball=$(tar -C / -czf - "${inputs[@]}" | base64 -w0)
	[[ -z ${TL_HOSTS_READY:-} ]] ||
		wait="i=0; while [ \$i -lt 50 ] && ! grep -qF -- $(printf '%q' "$TL_HOSTS_READY") $(printf '%q' "$log") 2>/dev/null && kill -0 \$pid 2>/dev/null; do sleep 0.1; i=\$((i + 1)); done
		grep -qF -- $(printf '%q' "$TL_HOSTS_READY") $(printf '%q' "$log") 2>/dev/null && ready=' ready'"
	pid=$(tl_hosts_sh "$role" "set -e
		mkdir -p $(printf '%q' "$TL_TMP") $(for arg in "${outputs[@]}"; do printf '%q ' "$(dirname "$arg")"; done)
		rm -f -- $(printf '%q ' "${outputs[@]}") # as here: a sample never comes from an earlier test
		[ -z '$tarball' ] || printf %s '$tarball' | base64 -d | tar -C / -xzf -
		cd /
		setsid env --default-signal=INT,QUIT $(printf '%q ' "$@") >$(printf '%q' "$log") 2>&1 </dev/null &
		pid=\$!
		stat=\$(cat /proc/\$pid/stat 2>/dev/null || true)
		echo \"\$pid \$(echo \"\${stat##*) }\" | cut -d' ' -f20)\" >>$(printf '%q' "$TL_TMP/pids")
		ready=''; $wait
		echo \$pid\$ready") || return 1
	[[ $pid != *" ready" ]] || { pid=${pid% ready}; TL_HOSTS_READY_PID=$role:$pid; }
	[[ $pid =~ ^[0-9]+$ ]] || { tl_fail "tl_bg on $role: no pid from the host (got '$pid')"; return 1; }
	echo "$role:$pid" >>"$TL_TMP/remote-pids"
	TL_LAST_PID=$role:$pid
	echo "$TL_LAST_PID"
}

# The shell test, on the host, that "$pid" is one this run started
# (recorded with its start time) and still runs.
# shellcheck disable=SC2016 # a script for the host, expanded there
TL_HOSTS_OURS='ours() { stat=$(cat /proc/$1/stat 2>/dev/null) || return 1; set -- $1 ${stat##*) }; [ "$2" != Z ] && [ "$2" != X ] && grep -qx "$1 ${21}" "$PIDS"; }'

tl_hosts_pid_alive() {
	local role=${1%%:*} pid=${1#*:}
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	tl_hosts_sh "$role" "PIDS=$(printf '%q' "$TL_TMP/pids"); $TL_HOSTS_OURS; ours $pid" 2>/dev/null
}

tl_hosts_pid_ours() {
	[[ -f $TL_TMP/remote-pids ]] && grep -qx -- "$1" "$TL_TMP/remote-pids"
}

# tl_hosts_stop ROLE:PID SIGNAL TIMEOUT_S: signal, wait on the host, SIGKILL
# after the time-out; 1 when it had to.
tl_hosts_stop() {
	local role=${1%%:*} pid=${1#*:} sig=$2 timeout=$3
	tl_hosts_sh "$role" "PIDS=$(printf '%q' "$TL_TMP/pids"); $TL_HOSTS_OURS
		ours $pid || exit 0
		kill -$sig $pid
		i=0; while ours $pid && [ \$i -lt $((timeout * 10)) ]; do sleep 0.1; i=\$((i + 1)); done
		ours $pid || exit 0
		kill -KILL $pid; exit 1" || { echo "$1" >>"$TL_TMP/remote-stopped"; return 1; }
	echo "$1" >>"$TL_TMP/remote-stopped"
}

# tl_hosts_unstopped MARK: the "ROLE:PID"s recorded after line MARK of
# remote-pids that tl_hosts_stop has not stopped.
tl_hosts_unstopped() {
	[[ -f $TL_TMP/remote-pids ]] || return 0
	tail -n +"$(($1 + 1))" "$TL_TMP/remote-pids" | grep -vxF -f <(cat "$TL_TMP/remote-stopped" 2>/dev/null; echo .) || true
}

# tl_hosts_wait_text ROLE:PID FILE TEXT TIMEOUT_S: polls on the host until
# FILE (written there) holds TEXT: one call, however many tries. Returns 255
# when PID, a process of this run, ended without writing it; 1 on time-out.
tl_hosts_wait_text() {
	local role=${1%%:*} pid=${1#*:} file text
	file=$(printf '%q' "$2") text=$(printf '%q' "$3")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	tl_hosts_sh "$role" "PIDS=$(printf '%q' "$TL_TMP/pids"); $TL_HOSTS_OURS
		has() { grep -qF -- $text $file 2>/dev/null; }
		i=0; while [ \$i -lt $(($4 * 10)) ]; do
			has && exit 0
			ours $pid || { has && exit 0; exit 255; }
			sleep 0.1; i=\$((i + 1))
		done; has"
}

# tl_hosts_fetch_under DIR: brings back every file under DIR the hosts
# wrote (those they have now), one call per role that wrote any.
tl_hosts_fetch_under() {
	[[ -n ${TL_TMP:-} && -f $TL_TMP/remote-files ]] || return 0
	local role b64
	local -a files
	for role in cli srv dst; do
		mapfile -t files < <(awk -v r="$role" -v d="$1/" '$1 == r && index($2, d) == 1 { print $2 }' "$TL_TMP/remote-files" | sort -u)
		((${#files[@]})) || continue
		b64=$(tl_hosts_sh "$role" "set --; for f in $(printf '%q ' "${files[@]}"); do [ -f \"\$f\" ] && set -- \"\$@\" \"\${f#/}\"; done
			[ \$# -eq 0 ] || tar -C / -czf - \"\$@\" | base64 -w0") || continue
		[[ -z $b64 ]] || base64 -d <<<"$b64" | tar -C / -xzf - || return 1
	done
	return 0
}

# tl_hosts_kill_started: TERM every process this run started on any host,
# KILL what is left after TL_KILL_TIMEOUT seconds. One call for all hosts.
tl_hosts_kill_started() {
	[[ -s $TL_TMP/remote-pids ]] || return 0
	tl_hosts_sh "$TL_HOSTS_ALL" "PIDS=$(printf '%q' "$TL_TMP/pids"); [ -f \"\$PIDS\" ] || exit 0; $TL_HOSTS_OURS
		live() { while read -r p _; do ours \$p && echo \$p; done <\"\$PIDS\"; }
		pids=\$(live); [ -n \"\$pids\" ] || exit 0
		kill -TERM \$pids 2>/dev/null
		i=0; while [ -n \"\$(live)\" ] && [ \$i -lt $((TL_KILL_TIMEOUT * 10)) ]; do sleep 0.1; i=\$((i + 1)); done
		pids=\$(live); [ -z \"\$pids\" ] || { echo \"still alive after SIGTERM: \$pids; sending SIGKILL\" >&2; kill -KILL \$pids; }
		exit 0" >/dev/null
}

# tl_hosts_fetch FILE...: brings each FILE a host wrote back to the same
# path here (removed here when the host has none); other files stay as
# they are.
tl_hosts_fetch() {
	[[ -n ${TL_TMP:-} && -f $TL_TMP/remote-files ]] || return 0
	local file role b64
	for file in "$@"; do
		role=$(awk -v f="$file" '$2 == f { r = $1 } END { print r }' "$TL_TMP/remote-files")
		[[ -n $role ]] || continue
		b64=$(tl_hosts_sh "$role" "[ ! -f $(printf '%q' "$file") ] || base64 -w0 $(printf '%q' "$file")") || continue
		if [[ -n $b64 ]]; then
			mkdir -p "$(dirname "$file")"
			base64 -d <<<"$b64" >"$file"
		else
			rm -f -- "$file"
		fi
	done
	return 0
}

# The extra variables of topology.yml: this run's id and each role's words.
tl_hosts_netvars() {
	jq -n --arg run "$TL_NS_PREFIX-$TL_ID" --arg cli "$TL_HOSTS_CLI_NET" --arg srv "$TL_HOSTS_SRV_NET" \
		--arg dst "$TL_HOSTS_DST_NET" '{tl_run: $run, tl_net: {cli: $cli, srv: $srv, dst: $dst}}' \
		>"$TL_TMP/hosts-net.json"
}

# tl_hosts_topology up|down
tl_hosts_topology() {
	local json
	tl_hosts_netvars
	json=$(tl_ansible ansible-playbook "$TL_HOSTS_PLAYBOOKS/topology.yml" -e "tl_action=$1" \
		-e "@$TL_TMP/hosts-net.json") || true
	tl_hosts_results "$json" >/dev/null
}

# Up, then each peer answers on its link: cli -> srv (underlay), dst -> srv
# (inner). What netns.sh's link-local wait is for namespaces.
tl_hosts_topology_up() {
	tl_hosts_topology up || return 1
	tl_wait_until "$TL_TIMEOUT" eval "tl_ns cli ping -n -q -c 1 -W 1 $TL_SRV_UL4 && tl_ns dst ping -n -q -c 1 -W 1 $TL_SRV_IN4" ||
		{ tl_fail "expected srv to answer cli on $TL_SRV_UL4 and dst on $TL_SRV_IN4 within ${TL_TIMEOUT}s"; return 1; }
}

# tl_hosts_prepare: prepare.yml with this source tree (no build output, no
# results, no git), the commit it is, and a digest of both: names and
# contents in a fixed order, without the times, so that the same tree has
# the same digest in the next experiment and a host that built it skips.
tl_hosts_prepare() {
	local tar=$TL_TMP/tunlab-src.tar.gz commit digest json
	local -a tree=(-C "$TL_REPO" --exclude=./build --exclude=./results --exclude=./.git --exclude=./paper)
	commit=$("$TL_HOSTS_LIB/commit.sh")
	tar "${tree[@]}" -czf "$tar" . || return 1
	digest=$({ echo "$commit"; tar "${tree[@]}" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .; } |
		sha256sum) || return 1
	json=$(tl_ansible ansible-playbook "$TL_HOSTS_PLAYBOOKS/prepare.yml" -e "tl_src_tar=$tar" \
		-e "tl_commit=$commit" -e "tl_src_digest=${digest%% *}") || true
	tl_hosts_results "$json" >/dev/null || {
		tl_fail "preparing the hosts failed (see above and $TL_TMP/ansible.log)"
		return 1
	}
}

# tl_hosts_facts: the .meta lines: "host.ROLE.KEY: VALUE" for every host,
# then the inventory's roles and the declared prefixes.
tl_hosts_facts() {
	local json role host
	json=$(tl_ansible ansible-playbook "$TL_HOSTS_PLAYBOOKS/facts.yml") || true
	echo "backend: hosts (Ansible inventory $(basename "$TL_INVENTORY"))"
	echo "hosts.private-prefixes: $TL_HOSTS_PRIVATE"
	for role in cli srv dst; do
		case $role in cli) host=$TL_HOST_CLI ;; srv) host=$TL_HOST_SRV ;; dst) host=$TL_HOST_DST ;; esac
		echo "host.$role: $host"
		# The script module runs on a terminal: its lines end in CR LF.
		jq -r --arg h "$host" '.plays[].tasks[-1].hosts[$h].stdout // "" ' <<<"${json:-{\}}" | tr -d '\r' |
			sed -n "s/^\([a-z0-9._-]*\): /host.$role.\1: /p"
	done
}

# tl_hosts_cleanup: the run's directory on every host.
tl_hosts_cleanup() {
	[[ $TL_TMP == */tunlab.* ]] || return 0
	tl_hosts_sh "$TL_HOSTS_ALL" "rm -rf -- $(printf '%q' "$TL_TMP")" >/dev/null 2>&1 || true
}
