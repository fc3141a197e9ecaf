#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# gen-macros.sh: turns results/*.csv and *.meta into the paper's LaTeX macros and tables (paper/generated/).
#
# Usage: paper/gen-macros.sh [--results DIR] [--out DIR]
#
# Every number the paper quotes comes from here, so a new run of the
# experiments rewrites the whole paper. Whatever is missing (a dataset, a
# system, a metric) becomes "n/a", and the text says "not measured in
# this run" rather than printing a number from an older run. Writes:
#   numbers.tex       \newcommand macros: named medians (\TunGbps ...),
#                     ratios (\TunOverOpenvpnUdp ...), goals with their
#                     bootstrap interval and verdict (experiments/lib/goals.py),
#                     each dataset's commit and any mix of commits or runs
#                     (experiments/lib/provenance.sh: \ProvenanceProblem),
#                     machine and run facts from the .meta files; plus a
#                     lookup of every median of every tidy CSV, read in the
#                     text as \D{experiment}{system}{parameter}{metric}
#   throughput.tex    the headline table: throughput, spread, CPU per GB
#   transparency.tex  results/transparency.tex's table (or one built from
#                     transparency.csv), or a "not measured" note
#   transparency-reasons.tex  every cell that is not "yes", with its reason
#   datasets.tex      the appendix: medians of every tidy CSV, whatever it holds
#   plots.tex         one \tlPlot line per results/plots/*.pdf
#   goals.tex         every goal of experiments/lib/goals.py with its verdict
# Tidy CSV: the header "system,parameter,metric,value,unit,repetition"
# (experiments/lib/measure.sh); other CSVs are skipped, said on stderr.
set -euo pipefail

GEN_PAPER=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GEN_RESULTS=$GEN_PAPER/../results
GEN_OUT=$GEN_PAPER/generated
GEN_TIDY_HEADER="system,parameter,metric,value,unit,repetition"

# The datasets the paper has a place for, in its order; any other tidy CSV
# still lands in the appendix.
GEN_DATASETS=(transparency throughput pktrate rtt rrul setup flows prefixes profile failover
	acquire crossing policyscale loss nat)
# Where plots can go: a dataset's section, or the CPU one (whose data is
# part of throughput.csv); and plots whose name names no section.
GEN_PLOT_SECTIONS=("${GEN_DATASETS[@]}" cpu)
declare -A GEN_PLOT_ALIAS=([rr]=rtt)

# Systems in table order: id, then the macro stem (letters only). A system
# that is not in the data gets its macros all the same, as "n/a".
GEN_SYSTEMS="
plain        Plain
tun          Tun
tun-udp      TunUdp
tun-poll     TunPoll
nfqueue      Nfqueue
pcap         Pcap
pcap-inject  PcapInject
proxy        Proxy
openvpn-udp  OpenvpnUdp
openvpn-tcp  OpenvpnTcp
wireguard-go WireguardGo
tls-relay    TlsRelay
"

# Named quantities, one macro per system: \<Stem><suffix>.
# suffix     experiment  parameter  metric      field (median min max n spread)
GEN_QUANTITIES="
Gbps         throughput  streams=1  throughput  median
GbpsMin      throughput  streams=1  throughput  min
GbpsMax      throughput  streams=1  throughput  max
GbpsN        throughput  streams=1  throughput  n
GbpsSpread   throughput  streams=1  throughput  spread
GbpsFour     throughput  streams=4  throughput  median
CpuCli       throughput  streams=1  cpu_client  median
CpuSrv       throughput  streams=1  cpu_server  median
CpuCliFour   throughput  streams=4  cpu_client  median
CpuSrvFour   throughput  streams=4  cpu_server  median
Retrans      throughput  streams=1  retransmits median
MaxPps       pktrate     loss<1%    max_pps     median
RttMs        rtt         idle       rtt         median
RrRate       rtt         size=1     rr_rate     median
RrPfiftyUs   rtt         size=1     rr_p50_us   median
RrPninetyNineUs rtt      size=1     rr_p99_us   median
RrulIdleMs   rrul        idle       rtt         median
RrulLoadMs   rrul        load       rtt         median
RrulLoadGbps rrul        load       throughput  median
RrulCliWaitShare rrul    load       client_wait_share    median
RrulSrvWaitShare rrul    load       server_wait_share    median
RrulCliWaitUs rrul       load       client_wait_per_run  median
RrulSrvWaitUs rrul       load       server_wait_per_run  median
RrulIdleCliWaitUs rrul   idle       client_wait_per_run  median
RrulIdleSrvWaitUs rrul   idle       server_wait_per_run  median
RrulLoadMachineIdle rrul load       machine_idle         median
RrCliRuns    rtt         size=1     client_runs_per_event median
RrSrvRuns    rtt         size=1     server_runs_per_event median
RrCliWaitUs  rtt         size=1     client_wait_per_event median
RrSrvWaitUs  rtt         size=1     server_wait_per_event median
RrSteal      rtt         size=1     machine_steal        median
RrCliCpuUs   rtt         size=1     client_cpu_per_event median
RrSrvCpuUs   rtt         size=1     server_cpu_per_event median
SetupMs      setup       start      setup_ms    median
FlowsOneGbps flows       streams=1  throughput  median
FlowsSixtyFourGbps flows streams=64 throughput  median
PrefixesOneSetupMs      prefixes prefixes=1    setup_ms median
PrefixesThousandSetupMs prefixes prefixes=1000 setup_ms median
PrefixesOneObjects      prefixes prefixes=1    objects  median
PrefixesThousandObjects prefixes prefixes=1000 objects  median
ProfGbps     profile     streams=1    throughput             median
ProfSrvShare profile     role=server  machine_share          median
ProfSrvCrypto profile    role=server  dso:libcrypto.so.3     median
ProfSrvRawSend profile   role=server  path:raw_sendmsg       median
ProfSrvTunWrite profile  role=server  path:tun_chr_write_iter median
ProfSrvSoftirq profile   role=server  path:net_rx_action     median
FoKillMs     failover    kill9       outage_ms           median
FoKillMsMax  failover    kill9       outage_ms           max
FoKillTcp    failover    kill9       inner_tcp_survived  min
FoKillResumed failover   kill9       resumed             min
FoKillN      failover    kill9       inner_tcp_survived  n
FoSwitchMs   failover    switchover  outage_ms           median
FoSwitchLost failover    switchover  lost_pings          max
AqFirstMs    acquire     burst       first_ms            median
AqFirstMsMax acquire     burst       first_ms            max
AqReceived   acquire     burst       received            median
AqReceivedMin acquire    burst       received            min
AqConnectOk  acquire     burst       connect_ok          min
AqSynRetrans acquire     burst       syn_retrans         max
AqN          acquire     burst       received            n
AqReadyMs    acquire     burst       ready_ms            median
AqEstMs      acquire     burst       established_ms      median
AqBeyondMax  acquire     burst       beyond_setup_rtt_ms max
CrRounds     crossing    race        rounds              min
CrDup        crossing    race        dup_sessions        max
CrClear      crossing    race        cleartext           max
CrFlowOk     crossing    reload      reload_flow_ok      min
CrFlowMin    crossing    reload      reload_flow_min     min
CrRefused    crossing    race        reload_refused      max
CrControl    crossing    control     control_cleartext   min
PsOneStartMs      policyscale prefixes=1    setup_ms   median
PsThousandStartMs policyscale prefixes=1000 setup_ms   median
PsOneObjects      policyscale prefixes=1    objects    median
PsThousandObjects policyscale prefixes=1000 objects    median
PsOneRttUs        policyscale prefixes=1    rtt_us     median
PsThousandRttUs   policyscale prefixes=1000 rtt_us     median
PsThousandEntries policyscale prefixes=1000 entries    min
PsN               policyscale prefixes=1000 objects    n
LossCleanMbps      loss  loss=0:rtt=0    goodput  median
LossTenthMbps      loss  loss=0.1:rtt=0  goodput  median
LossOneMbps        loss  loss=1:rtt=0    goodput  median
LossCleanDelayMbps loss  loss=0:rtt=20   goodput  median
LossTenthDelayMbps loss  loss=0.1:rtt=20 goodput  median
LossOneDelayMbps   loss  loss=1:rtt=20   goodput  median
LossCleanRttMs     loss  loss=0:rtt=0    rtt      median
LossOneDelayRttMs  loss  loss=1:rtt=20   rtt      median
NatSetupMs         nat   start           setup_ms    median
NatFlushMs         nat   flush           recovery_ms median
NatFlushMsMax      nat   flush           recovery_ms max
NatFlushLost       nat   flush           lost_pings  max
NatFlushRecovered  nat   flush           recovered   min
NatNewportMs       nat   newport         recovery_ms median
NatNewportMsMax    nat   newport         recovery_ms max
NatNewportLost     nat   newport         lost_pings  max
NatNewportRecovered nat  newport         recovered   min
NatIdleMs          nat   idle            recovery_ms median
NatIdleLost        nat   idle            lost_pings  max
NatIdleRecovered   nat   idle            recovered   min
"

# Ratios of two named macros: \<name> = numerator / denominator.
GEN_RATIOS="
TunOverPlain        TunGbps          PlainGbps
PlainOverTun        PlainGbps        TunGbps
TunOverOpenvpnUdp   TunGbps          OpenvpnUdpGbps
TunOverOpenvpnTcp   TunGbps          OpenvpnTcpGbps
TunOverWireguardGo  TunGbps          WireguardGoGbps
TunOverTlsRelay     TunGbps          TlsRelayGbps
NfqueueOverTun      NfqueueGbps      TunGbps
PcapOverTun         PcapGbps         TunGbps
PcapInjectOverPcap  PcapInjectGbps   PcapGbps
ProxyOverTun        ProxyGbps        TunGbps
ProxyOverTlsRelay   ProxyGbps        TlsRelayGbps
TlsRelayOverPlain   TlsRelayGbps     PlainGbps
OpenvpnUdpOverPlain OpenvpnUdpGbps   PlainGbps
TunFourOverOne      TunGbpsFour      TunGbps
TunOverPlainPps     TunMaxPps        PlainMaxPps
NfqueueOverTunPps   NfqueueMaxPps    TunMaxPps
PcapOverTunPps      PcapMaxPps       TunMaxPps
TunOverOpenvpnUdpPps TunMaxPps       OpenvpnUdpMaxPps
TunRrulLoadOverIdle TunRrulLoadMs    TunRrulIdleMs
OpenvpnUdpRrulLoadOverIdle OpenvpnUdpRrulLoadMs OpenvpnUdpRrulIdleMs
WireguardGoRrulLoadOverIdle WireguardGoRrulLoadMs WireguardGoRrulIdleMs
NfqueuePrefixesThousandOverOne NfqueuePrefixesThousandSetupMs NfqueuePrefixesOneSetupMs
TunPrefixesThousandOverOne     TunPrefixesThousandSetupMs     TunPrefixesOneSetupMs
TunUdpOverTunLossClean      TunUdpLossCleanMbps     TunLossCleanMbps
TunUdpOverPlainLossOne      TunUdpLossOneMbps       PlainLossOneMbps
TunOverPlainLossOne         TunLossOneMbps          PlainLossOneMbps
TunUdpOverPlainLossOneDelay TunUdpLossOneDelayMbps  PlainLossOneDelayMbps
TunOverPlainLossOneDelay    TunLossOneDelayMbps     PlainLossOneDelayMbps
ProxyOverPlainLossOneDelay  ProxyLossOneDelayMbps   PlainLossOneDelayMbps
"

# The goals the text quotes (every goal of experiments/lib/goals.py gets
# the same macros): \<name> is "met", "not met", "level", "too few runs"
# or "no data"; \<name>At is the threshold, \<name>Full the verdict with
# its interval (or, for a goal on every run, the worst run).
# name            macro              op  threshold
GEN_GOALS="
GoalTunOpenvpn    TunOverOpenvpnUdp  ge  7
GoalTunRelay      TunOverTlsRelay    ge  1
GoalTunCpuCli     TunCpuCli          le  3
GoalTunCpuSrv     TunCpuSrv          le  3
GoalProxyRelay    ProxyOverTlsRelay  ge  1
GoalNfqueueTun    NfqueueOverTun     ge  0.5
"

# Comparisons: \<name> is "below", "above" or "n/a" (a is below/above b).
GEN_COMPARE="
PcapVsTun         PcapGbps         TunGbps
NfqueueVsTun      NfqueueGbps      TunGbps
ProxyVsTun        ProxyGbps        TunGbps
TunVsTlsRelay     TunGbps          TlsRelayGbps
TunVsOpenvpnUdp   TunGbps          OpenvpnUdpGbps
"

# Run facts: macro, meta key (the throughput run's .meta first, then any).
GEN_META="
RunDate        date
RunCommit      commit
MachineKernel  kernel
MachineCpu     cpu
MachineCores   cores
TunlabVersion  tunlab
VerIperf       iperf3
VerOpenssl     openssl
VerGnuplot     gnuplot
VerOpenvpn     openvpn
VerWireguardGo wireguard-go
VerStunnel     stunnel
LoadAtStart    loadavg at start
OtherProcsAtStart other processes at start
"

gen_usage() {
	sed -n '4,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

gen_die() {
	echo "gen-macros: $*" >&2
	exit 1
}

# Shared awk functions: LaTeX escaping and number formatting.
GEN_AWK_LIB='
function tex(s) {
	gsub(/\\/, "\001", s)
	gsub(/[{}$&#_%]/, "\\\\&", s)
	gsub(/~/, "\\textasciitilde{}", s)
	gsub(/\^/, "\\textasciicircum{}", s)
	gsub(/\001/, "\\textbackslash{}", s)
	return s
}
# tex() for a narrow table cell: long identifiers (path:ip_route_output_flow)
# may break after an underscore or a colon.
function tex_cell(s) {
	s = tex(s)
	gsub(/\\_/, "\\_\\allowbreak{}", s)
	gsub(/:/, ":\\allowbreak{}", s)
	return s
}
# A key usable inside \csname: no active or special characters.
function key(s) {
	gsub(/[^A-Za-z0-9=._:\/+, -]/, ".", s)
	return s
}
function isnum(s) {
	return s ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/
}
function thousands(v,    s, out) {
	s = sprintf("%.0f", v)
	out = ""
	while (length(s) > 3) {
		out = "{,}" substr(s, length(s) - 2) out
		s = substr(s, 1, length(s) - 3)
	}
	return s out
}
# Three significant digits, never an exponent, thousands grouped; integers whole.
function fmt(v,    a, s) {
	a = v < 0 ? -v : v
	if (a >= 10000) return (v < 0 ? "-" : "") thousands(a)
	if (v == int(v)) return sprintf("%d", v)   # counts stay counts
	if (a >= 100) return sprintf("%.0f", v)
	if (a >= 10) return sprintf("%.1f", v)
	if (a >= 1) return sprintf("%.2f", v)
	if (a == 0) return "0"
	s = sprintf("%#.3g", v)
	if (s ~ /e/) return sprintf("%.6f", v)
	return s
}
# Ratios: two significant digits are all the noise allows.
function fmt_ratio(v,    a) {
	a = v < 0 ? -v : v
	if (a >= 100) return thousands(v)
	if (a >= 10) return sprintf("%.0f", v)
	if (a >= 0.001) return sprintf("%.2g", v)
	return sprintf("%.4f", v)
}
'

# ---- step 1: tidy CSVs to one summary -----------------------------------------
# Output, tab-separated: experiment system parameter metric median min max n unit.
# Groups keep the order in which the CSV first names them.
gen_csv_files() {
	local ds csv
	for ds in "${GEN_DATASETS[@]}"; do
		[[ -e $GEN_RESULTS/$ds.csv ]] && echo "$GEN_RESULTS/$ds.csv"
	done
	for csv in "$GEN_RESULTS"/*.csv; do
		[[ -e $csv && " ${GEN_DATASETS[*]} " != *" $(basename "$csv" .csv) "* ]] && echo "$csv"
	done
	return 0
}

gen_summary() {
	local csv header exp
	while read -r csv; do
		exp=$(basename "$csv" .csv)
		header=$(head -n 1 "$csv" | tr -d '\r')
		if [[ $header != "$GEN_TIDY_HEADER" ]]; then
			[[ $exp == transparency ]] ||
				echo "gen-macros: skip $exp.csv: not tidy (header: $header)" >&2
			continue
		fi
		awk -F, -v dataset="$exp" "$GEN_AWK_LIB"'
			NR == 1 { next }
			{ gsub(/\r/, "") }
			NF >= 5 && isnum($4) {
				g = $1 SUBSEP $2 SUBSEP $3
				if (!(g in n)) { order[groups++] = g; unit[g] = $5 }
				vals[g, n[g]++] = $4 + 0
			}
			END {
				for (i = 0; i < groups; i++) {
					g = order[i]; k = n[g]
					for (a = 1; a < k; a++)      # insertion sort: mawk has no asort
						for (b = a; b > 0 && vals[g, b - 1] > vals[g, b]; b--) {
							t = vals[g, b]; vals[g, b] = vals[g, b - 1]; vals[g, b - 1] = t
						}
					med = k % 2 ? vals[g, (k - 1) / 2] : (vals[g, k / 2 - 1] + vals[g, k / 2]) / 2
					split(g, f, SUBSEP)
					printf "%s\t%s\t%s\t%s\t%.17g\t%.17g\t%.17g\t%d\t%s\n", dataset, f[1], f[2], f[3],
						med, vals[g, 0], vals[g, k - 1], k, unit[g]
				}
			}' "$csv"
	done < <(gen_csv_files)
}

# ---- step 2: .meta files to experiment/key/value ------------------------------
gen_meta() {
	local meta exp
	for meta in "$GEN_RESULTS"/*.meta; do
		[[ -e $meta ]] || continue
		exp=$(basename "$meta" .meta)
		awk -v dataset="$exp" '
			{ gsub(/\r/, "") }
			match($0, /^[^:]+: /) {
				k = substr($0, 1, RLENGTH - 2)
				v = substr($0, RLENGTH + 1)
				gsub(/\t/, " ", v)
				printf "%s\t%s\t%s\n", dataset, k, v
			}' "$meta"
	done
}

# ---- step 3: transparency.csv to system/probe/result/reason --------------------
# Columns are found by their header names, so their order may change.
gen_transparency_rows() {
	local csv=$GEN_RESULTS/transparency.csv
	[[ -s $csv ]] || return 0
	awk -F, '
		function unq(s) { gsub(/^"|"$/, "", s); gsub(/""/, "\"", s); return s }
		# Splits a CSV line with quoted fields into f[1..n].
		function csv_split(line, f,    n, c, q, i, ch) {
			n = 1; f[1] = ""; q = 0
			for (i = 1; i <= length(line); i++) {
				ch = substr(line, i, 1)
				if (ch == "\"") { q = !q; f[n] = f[n] ch }
				else if (ch == "," && !q) { n++; f[n] = "" }
				else f[n] = f[n] ch
			}
			return n
		}
		{ gsub(/\r/, "") }
		NR == 1 {
			n = csv_split($0, h)
			for (i = 1; i <= n; i++) col[unq(h[i])] = i
			if (!("system" in col) || !("probe" in col) || !("result" in col)) {
				print "gen-macros: transparency.csv lacks system/probe/result columns" > "/dev/stderr"
				exit 0
			}
			next
		}
		{
			n = csv_split($0, f)
			reason = ("reason" in col) ? unq(f[col["reason"]]) : ""
			gsub(/\t/, " ", reason)
			printf "%s\t%s\t%s\t%s\n", unq(f[col["system"]]), unq(f[col["probe"]]),
				unq(f[col["result"]]), reason
		}' "$csv"
}

# ---- facts about the measured code ----------------------------------------------

# \LossRcvbufRechecked: yes when the code the loss dataset measured re-checks
# the TLS socket's receive buffer while data arrives (session_recheck_rcvbuf
# in tunnel/session.c), no when it sized it once at the handshake, n/a when
# that commit is not in this clone. The loss experiment of that code added
# its delay to a running tunnel, so with "no" TUN over TLS ran +20 ms with
# the short path's 64 KiB window, and the paper says so beside its figures.
gen_code_facts() {
	local commit="" v=n/a
	[[ -e $GEN_RESULTS/loss.meta ]] && commit=$(sed -n 's/^commit: //p' "$GEN_RESULTS/loss.meta" | head -n 1)
	commit=${commit%-dirty}
	if [[ -n $commit ]] && git -C "$GEN_PAPER/.." cat-file -e "$commit:tunnel/session.c" 2>/dev/null; then
		# grep -c reads to the end: no SIGPIPE for git under pipefail.
		if git -C "$GEN_PAPER/.." show "$commit:tunnel/session.c" | grep -c session_recheck_rcvbuf >/dev/null; then
			v=yes
		else
			v=no
		fi
	fi
	printf '\\newcommand\\LossRcvbufRechecked{%s}\n' "$v"
}

# \LossFreshStarts: yes when the loss dataset was measured with a fresh
# system start for every point (its .meta says "system starts: one per
# point", experiments/loss since that line, which also sets the delay and
# loss before each start), no when one start served several points (older
# data: its outer TCP connections carried their congestion state from
# point to point, and the paper says so), n/a without a loss dataset. The
# dataset's own record, not the code at its commit: a developer run's tree
# may differ from its commit.
gen_loss_procedure() {
	local meta=$GEN_RESULTS/loss.meta v=n/a
	if [[ -e $meta ]]; then
		v=no
		! grep -q '^system starts: one per point$' "$meta" || v=yes
	fi
	printf '\\newcommand\\LossFreshStarts{%s}\n' "$v"
}

# ---- numbers.tex ----------------------------------------------------------------

gen_numbers() {
	local summary=$1 meta=$2 trans=$3 present=$4
	{
		echo "% Generated by paper/gen-macros.sh from results/ -- do not edit."
		cat <<-'EOF'
			\providecommand\tlSetDatum[9]{\expandafter\def\csname tlD:#1:#2:#3:#4\endcsname{#5}%
			  \expandafter\def\csname tlDmin:#1:#2:#3:#4\endcsname{#6}%
			  \expandafter\def\csname tlDmax:#1:#2:#3:#4\endcsname{#7}%
			  \expandafter\def\csname tlDn:#1:#2:#3:#4\endcsname{#8}%
			  \expandafter\def\csname tlDunit:#1:#2:#3:#4\endcsname{#9}}
			\providecommand\tlSetMeta[3]{\expandafter\def\csname tlM:#1:#2\endcsname{#3}}
			\providecommand\tlSetHave[1]{\expandafter\def\csname tlHave:#1\endcsname{}}
			\providecommand\tlSetLabel[2]{\expandafter\def\csname tlL:#1\endcsname{#2}}
			\providecommand\tlSetTrans[3]{\expandafter\def\csname tlT:#1:#2\endcsname{#3}}
		EOF
		printf '%s\n' "$GEN_SYSTEMS" | awk 'NF == 2 { print "%system " $1 " " $2 }'
		echo "%quantities"
		printf '%s\n' "$GEN_QUANTITIES" | awk 'NF == 5 { print "%q " $0 }'
		printf '%s\n' "$GEN_RATIOS" | awk 'NF == 3 { print "%r " $0 }'
		printf '%s\n' "$GEN_GOALS" | awk 'NF == 4 { print "%g " $0 }'
		printf '%s\n' "$GEN_COMPARE" | awk 'NF == 3 { print "%c " $0 }'
		printf '%s\n' "$GEN_META" | awk 'NF >= 2 { print "%m " $0 }'
	} >"$GEN_TMP/spec"
	awk -F'\t' -v present="$present" -v expected="${GEN_DATASETS[*]}" \
		-v TRANS_CLASSES="leak pmtu frag inbound source ipv6 state ttl dscp ecn icmp proto udp tcp objects" \
		"$GEN_AWK_LIB"'
		function stem(id,    s, parts, i, n) {
			if (id in stem_of) return stem_of[id]
			if (id !~ /^[a-z][a-z-]*$/) return ""
			n = split(id, parts, "-"); s = ""
			for (i = 1; i <= n; i++) s = s toupper(substr(parts[i], 1, 1)) substr(parts[i], 2)
			return s
		}
		function def(name, value) {
			if (name in defined) return
			if (name !~ /^[A-Za-z]+$/) {
				print "gen-macros: no macro \\" name ": a LaTeX name has letters only" > "/dev/stderr"
				return
			}
			defined[name] = 1
			printf "\\newcommand\\%s{%s}\n", name, value
		}
		FILENAME ~ /spec$/ {
			if ($0 ~ /^%system /) { split($0, w, " "); stem_of[w[2]] = w[3]; sys_order[nsys++] = w[2] }
			else if ($0 ~ /^%q /) { split($0, w, " "); q[nq++] = w[2] " " w[3] " " w[4] " " w[5] " " w[6] }
			else if ($0 ~ /^%r /) { split($0, w, " "); r[nr++] = w[2] " " w[3] " " w[4] }
			else if ($0 ~ /^%g /) { split($0, w, " "); goal[ng++] = w[2] " " w[3] " " w[4] " " w[5] }
			else if ($0 ~ /^%c /) { split($0, w, " "); cmp[nc++] = w[2] " " w[3] " " w[4] }
			else if ($0 ~ /^%m /) { m = substr($0, 4); split(m, w, " "); mk = substr(m, length(w[1]) + 2)
				sub(/^ +/, "", mk); meta_macro[nm + 0] = w[1]; meta_key[nm++] = mk }
			else if ($0 !~ /^%/) print
			next
		}
		FILENAME ~ /summary$/ {
			e = $1; s = $2; p = $3; mt = $4
			med[e, s, p, mt] = $5; lo[e, s, p, mt] = $6; hi[e, s, p, mt] = $7; cnt[e, s, p, mt] = $8
			printf "\\tlSetDatum{%s}{%s}{%s}{%s}{%s}{%s}{%s}{%d}{%s}\n", key(e), key(s), key(p), key(mt),
				fmt($5), fmt($6), fmt($7), $8, tex($9)
			if (!((s) in seen_sys)) { seen_sys[s] = 1; extra_sys[nextra++] = s }
			next
		}
		FILENAME ~ /meta$/ {
			printf "\\tlSetMeta{%s}{%s}{%s}\n", key($1), key($2), tex($3)
			if ($2 ~ /^system\./) {
				id = substr($2, 8)
				if (!(id in label)) { label[id] = $3; printf "\\tlSetLabel{%s}{%s}\n", key(id), tex($3) }
			}
			mkey = $2 ~ /^other .*processes at start$/ ? "other processes at start" : $2
			if (!(mkey in meta_any) || $1 == "throughput") meta_any[mkey] = $3
			reps_of[$1] = ($2 == "repetitions") ? $3 : reps_of[$1]
			next
		}
		FILENAME ~ /goals$/ {
			if (FNR == 1) next
			gverdict[$1] = $10; glow[$1] = $8; ghigh[$1] = $9; gn[$1] = $6; gest[$1] = $7
			gat[$1] = $4; gkind[$1] = $11; gorder[ngo++] = $1
			next
		}
		FILENAME ~ /prov$/ {
			# dataset commit run...
			split($0, w, " ")
			pcommit[w[1]] = w[2]; prun[w[1]] = substr($0, length(w[1]) + length(w[2]) + 3)
			pds[np++] = w[1]
			if (!(w[2] in pseen)) { pseen[w[2]] = 1; ncommits++; onecommit = w[2] }
			pr = prun[w[1]]
			if (!(pr in prseen)) { prseen[pr] = 1; nruns++ }
			if (w[2] ~ /-dirty$|^unknown$/) pdirty = 1
			if (pr !~ /^reference /) pnotref = 1
			next
		}
		FILENAME ~ /trans$/ {
			printf "\\tlSetTrans{%s}{%s}{%s}\n", key($1), key($2), tex($3)
			res = tolower($3)
			tcount[$1, res]++
			c = trans_class(tolower($2))
			if (c != "" && !(($1, c) in tcell)) { tcell[$1, c] = $3; twhy[$1, c] = $4 }
			if (!(($1) in tsys)) { tsys[$1] = 1; ntsys++ }
			if (!(($2) in tprobe)) { tprobe[$2] = 1; ntprobe++ }
			next
		}
		END {
			print "% ---- datasets"
			npresent = split(present, pres, " ")
			for (i = 1; i <= npresent; i++) { printf "\\tlSetHave{%s}\n", pres[i]; have[pres[i]] = 1 }
			nexp = split(expected, ex, " ")
			missing = ""
			for (i = 1; i <= nexp; i++)
				if (!(ex[i] in have)) missing = missing (missing == "" ? "" : ", ") ex[i]
			def("DatasetsPresent", present == "" ? "none" : present)
			def("DatasetsMissing", missing == "" ? "none" : missing)

			print "% ---- provenance (experiments/lib/provenance.sh)"
			list = ""
			for (i = 0; i < np; i++)
				list = list (i ? ", " : "") pds[i] " \\texttt{" tex(pcommit[pds[i]]) "}"
			def("DatasetCommits", np ? list : "none")
			why = ""
			if (ncommits > 1) why = "the datasets come from " ncommits " different commits (" list ")"
			if (pdirty) why = why (why == "" ? "" : "; ") "some were measured with uncommitted code (-dirty)"
			if (nruns > 1 || pnotref)
				why = why (why == "" ? "" : "; ") "they are not one reference run of \\texttt{make experiments}"
			def("ProvenanceProblem", why)
			# One commit, or none to name: \RunCommit (a .meta key) then stands.
			if (ncommits > 1) def("RunCommit", "mixed, see the warning below")

			print "% ---- run and machine facts"
			for (i = 0; i < nm; i++)
				def(meta_macro[i], (meta_key[i] in meta_any) ? tex(shorten(meta_key[i], meta_any[meta_key[i]])) : "n/a")
			for (i = 1; i <= nexp; i++) {
				st = stem(ex[i])
				def(st "Reps", (ex[i] in reps_of) && reps_of[ex[i]] != "" ? tex(reps_of[ex[i]]) : "n/a")
			}

			print "% ---- named medians"
			for (i = 0; i < nextra; i++) if (!(extra_sys[i] in stem_of)) sys_order[nsys++] = extra_sys[i]
			for (i = 0; i < nsys; i++) {
				id = sys_order[i]; st = stem(id)
				if (st == "") continue
				def(st "Label", (id in label) ? tex(label[id]) : tex(id))
				for (j = 0; j < nq; j++) {
					split(q[j], w, " ")
					k = w[2] SUBSEP id SUBSEP w[3] SUBSEP w[4]
					if (!(k in med)) { def(st w[1], "n/a"); continue }
					if (w[5] == "spread") {
						def(st w[1], cnt[k] > 1 ? "range " fmt(lo[k]) "--" fmt(hi[k]) " over " cnt[k] " runs" : "a single run")
						continue
					}
					v = w[5] == "min" ? lo[k] : w[5] == "max" ? hi[k] : w[5] == "n" ? cnt[k] : med[k]
					num[st w[1]] = v + 0
					def(st w[1], w[5] == "n" ? sprintf("%d", v) : fmt(v))
				}
			}

			print "% ---- ratios"
			for (j = 0; j < nr; j++) {
				split(r[j], w, " ")
				if ((w[2] in num) && (w[3] in num) && num[w[3]] > 0) {
					num[w[1]] = num[w[2]] / num[w[3]]
					def(w[1], fmt_ratio(num[w[1]]))
				} else def(w[1], "n/a")
			}

			print "% ---- goals: verdicts of experiments/lib/goals.py (bootstrap over paired repetitions)"
			# The goals the text names must be there; every goal of goals.py gets its macros.
			for (j = 0; j < ng; j++) {
				split(goal[j], w, " ")
				if (!(w[1] in gverdict)) {
					print "gen-macros: goals.py gave no verdict for " w[1] > "/dev/stderr"
					gverdict[w[1]] = "no data"; gat[w[1]] = w[4]; gorder[ngo++] = w[1]
				}
			}
			for (j = 0; j < ngo; j++) {
				gname = gorder[j]; gv = gverdict[gname]
				def(gname "At", gat[gname])
				def(gname, gv)
				def(gname "Low", gv == "no data" ? "n/a" : glow[gname])
				def(gname "High", gv == "no data" ? "n/a" : ghigh[gname])
				def(gname "N", gn[gname] + 0)
				# "met (95 % interval 1.18--1.59, 5 pairs)"; an every goal:
				# "not met (worst of 5 runs: 2)"
				if (gv == "no data") def(gname "Full", "no data")
				else if (gkind[gname] == "every")
					def(gname "Full", gv " (worst of " gn[gname] " runs: " gest[gname] ")")
				else def(gname "Full", gv " (95\\,\\% interval " glow[gname] "--" ghigh[gname] ", " gn[gname] " pairs)")
			}
			for (j = 0; j < nc; j++) {
				split(cmp[j], w, " ")
				if (!(w[2] in num) || !(w[3] in num)) def(w[1], "n/a")
				else def(w[1], num[w[2]] < num[w[3]] ? "below" : "above")
			}

			print "% ---- transparency"
			def("TransSystems", ntsys + 0)
			def("TransProbes", ntprobe + 0)
			for (i = 0; i < nsys; i++) {
				id = sys_order[i]; st = stem(id)
				if (st == "") continue
				if (!(id in tsys)) { def(st "TransYes", "n/a"); def(st "TransNo", "n/a"); def(st "TransPartial", "n/a"); continue }
				def(st "TransYes", tcount[id, "yes"] + 0)
				def(st "TransNo", tcount[id, "no"] + 0)
				def(st "TransPartial", tcount[id, "partial"] + 0)
			}
			nclass = split(TRANS_CLASSES, cls, " ")
			for (i = 0; i < nsys; i++) {
				id = sys_order[i]; st = stem(id)
				if (st == "") continue
				for (j = 1; j <= nclass; j++) {
					cn = cls[j] == "ipv6" ? "IPvSix" : toupper(substr(cls[j], 1, 1)) substr(cls[j], 2)
					def(st "Trans" cn, ((id, cls[j]) in tcell) ? tex(tcell[id, cls[j]]) : "n/a")
					def(st "Trans" cn "Why", ((id, cls[j]) in tcell) && twhy[id, cls[j]] != "" ? tex(twhy[id, cls[j]]) : "n/a")
				}
			}
		}
		# The probe a named cell macro (\TunTransLeak ...) stands for, by its
		# name: the first pattern that matches wins, so "udp-frag" is frag.
		function trans_class(p) {
			if (p ~ /leak|kill/) return "leak"
			if (p ~ /pmtu|mtu/) return "pmtu"
			if (p ~ /frag/) return "frag"
			if (p ~ /inbound|reverse|from.?dst|toward|incoming|dst.?to.?cli/) return "inbound"
			if (p ~ /source|src|addr/) return "source"
			if (p ~ /ipv6|v6/) return "ipv6"
			if (p ~ /state|conntrack|flows/) return "state"
			if (p ~ /ttl/) return "ttl"
			if (p ~ /dscp|tos/) return "dscp"
			if (p ~ /ecn/) return "ecn"
			if (p ~ /icmp|ping|echo/) return "icmp"
			if (p ~ /proto|253|other|raw/) return "proto"
			if (p ~ /udp/) return "udp"
			if (p ~ /tcp/) return "tcp"
			if (p ~ /object|kernel/) return "objects"
			return ""
		}
		# Tool version lines are long; the paper quotes the first words.
		function shorten(k, v,    w) {
			if (k == "date") sub(/T.*$/, "", v)
			if (k ~ /^(iperf3|openssl|openvpn|wireguard-go|stunnel)$/ && split(v, w, " ") >= 2)
				v = w[1] " " w[2]
			return v
		}
	' "$GEN_TMP/spec" "$summary" "$meta" "$GEN_TMP/goals" "$GEN_TMP/prov" "$trans"
}

# ---- throughput.tex: the headline table -------------------------------------------
# One row per system that has a single-stream figure; a column appears only
# when some system has a value in it.
gen_throughput_table() {
	local summary=$1 meta=$2
	printf '%s\n' "$GEN_SYSTEMS" | awk 'NF == 2 { print "%system " $1 }' >"$GEN_TMP/order"
	awk -F'\t' "$GEN_AWK_LIB"'
		FILENAME ~ /order$/ { split($0, w, " "); order[n_order++] = w[2]; known[w[2]] = 1; next }
		FILENAME ~ /meta$/ { if ($2 ~ /^system\./ && !((substr($2, 8)) in label)) label[substr($2, 8)] = $3; next }
		$1 != "throughput" { next }
		{
			k = $2 SUBSEP $3 SUBSEP $4
			med[k] = $5; lo[k] = $6; hi[k] = $7; cnt[k] = $8
			if (!(($2) in known)) { known[$2] = 1; order[n_order++] = $2 }
		}
		function cell(k,    s) {
			if (!(k in med)) return "n/a"
			s = fmt(med[k])
			if (cnt[k] > 1) s = s " {\\scriptsize(" fmt(lo[k]) "--" fmt(hi[k]) ")}"
			return s
		}
		END {
			ncol = split("streams=1:throughput streams=4:throughput streams=1:cpu_client streams=1:cpu_server", col, " ")
			split("1 stream (Gbit/s)|4 streams (Gbit/s)|CPU client (s/GB)|CPU server (s/GB)", head, "|")
			base = "plain" SUBSEP "streams=1" SUBSEP "throughput"
			for (c = 1; c <= ncol; c++) {
				split(col[c], w, ":")
				use[c] = 0
				for (i = 0; i < n_order; i++) if ((order[i] SUBSEP w[1] SUBSEP w[2]) in med) use[c] = 1
			}
			spec = "l"; hdr = "System"
			for (c = 1; c <= ncol; c++) if (use[c]) { spec = spec "r"; hdr = hdr " & " head[c] }
			if (base in med) { spec = spec "r"; hdr = hdr " & vs.\\ plain" }
			spec = spec "r"; hdr = hdr " & $n$"
			printf "\\begin{tabular}{%s}\n\\toprule\n%s \\\\\n\\midrule\n", spec, hdr
			rows = 0
			for (i = 0; i < n_order; i++) {
				id = order[i]; k1 = id SUBSEP "streams=1" SUBSEP "throughput"
				if (!(k1 in med)) continue
				line = tex((id in label) ? label[id] : id)
				for (c = 1; c <= ncol; c++) {
					if (!use[c]) continue
					split(col[c], w, ":")
					line = line " & " cell(id SUBSEP w[1] SUBSEP w[2])
				}
				if (base in med) line = line " & " (med[base] > 0 ? fmt_ratio(med[k1] / med[base]) "$\\times$" : "n/a")
				line = line " & " cnt[k1]
				print line " \\\\"
				rows++
			}
			if (rows == 0) print "\\multicolumn{2}{l}{not measured in this run} \\\\"
			print "\\bottomrule\n\\end{tabular}"
		}' "$GEN_TMP/order" "$meta" "$summary"
}

# ---- grid tables: one experiment's medians, systems down, chosen cells across ----
# The experiments of the later sets (loss, nat, acquire, crossing) each get
# a table of their headline cells. COLUMNS: "parameter@metric@header|..."
# (a parameter may hold ":", so "@" separates). A system appears when it has
# any of the cells; "--" marks a cell it lacks. Without a row, the file
# says "not measured in this run", so the paper never needs an \IfData.
gen_grid_table() {
	local summary=$1 meta=$2 exp=$3 columns=$4
	printf '%s\n' "$GEN_SYSTEMS" | awk 'NF == 2 { print "%system " $1 }' >"$GEN_TMP/order"
	awk -F'\t' -v want="$exp" -v columns="$columns" "$GEN_AWK_LIB"'
		FILENAME ~ /order$/ { split($0, w, " "); order[n_order++] = w[2]; known[w[2]] = 1; next }
		FILENAME ~ /meta$/ { if ($2 ~ /^system\./ && !((substr($2, 8)) in label)) label[substr($2, 8)] = $3; next }
		$1 != want { next }
		{
			k = $2 SUBSEP $3 SUBSEP $4
			med[k] = $5; cnt[k] = $8
			if (!(($2) in known)) { known[$2] = 1; order[n_order++] = $2 }
		}
		END {
			ncol = split(columns, col, "|")
			spec = "l"; hdr = "System"
			for (c = 1; c <= ncol; c++) {
				split(col[c], w, "@"); par[c] = w[1]; met[c] = w[2]
				spec = spec "r"; hdr = hdr " & " tex(w[3])
			}
			rows = ""
			for (i = 0; i < n_order; i++) {
				id = order[i]; line = tex((id in label) ? label[id] : id); any = 0; n = 0
				for (c = 1; c <= ncol; c++) {
					k = id SUBSEP par[c] SUBSEP met[c]
					if (k in med) { line = line " & " fmt(med[k]); any = 1; if (cnt[k] > n) n = cnt[k] }
					else line = line " & --"
				}
				if (any) rows = rows line " & " n " \\\\\n"
			}
			if (rows == "") { print "\\emph{Not measured in this run} (no \\texttt{results/" tex(want) ".csv} rows)."; exit }
			printf "\\begin{tabular}{%sr}\n\\toprule\n%s & $n$ \\\\\n\\midrule\n%s\\bottomrule\n\\end{tabular}\n", spec, hdr, rows
		}' "$GEN_TMP/order" "$meta" "$summary"
}

gen_grid_tables() {
	local summary=$1 meta=$2
	gen_grid_table "$summary" "$meta" loss \
		"loss=0:rtt=0@goodput@0 %|loss=0.1:rtt=0@goodput@0.1 %|loss=1:rtt=0@goodput@1 %|loss=0:rtt=20@goodput@0 %, +20 ms|loss=0.1:rtt=20@goodput@0.1 %, +20 ms|loss=1:rtt=20@goodput@1 %, +20 ms" \
		>"$GEN_OUT/loss.tex"
	gen_grid_table "$summary" "$meta" loss \
		"loss=0:rtt=0@rtt@0 %|loss=0.1:rtt=0@rtt@0.1 %|loss=1:rtt=0@rtt@1 %|loss=0:rtt=20@rtt@0 %, +20 ms|loss=0.1:rtt=20@rtt@0.1 %, +20 ms|loss=1:rtt=20@rtt@1 %, +20 ms" \
		>"$GEN_OUT/loss-rtt.tex"
	gen_grid_table "$summary" "$meta" nat \
		"start@setup_ms@set-up (ms)|flush@recovery_ms@flush: back after (ms)|flush@lost_pings@flush: lost echoes|newport@recovery_ms@new port: back after (ms)|newport@lost_pings@new port: lost echoes|idle@recovery_ms@idle: back after (ms)|idle@recovered@idle: recovered" \
		>"$GEN_OUT/nat.tex"
	gen_grid_table "$summary" "$meta" acquire \
		"burst@first_ms@first datagram (ms)|burst@received@received of 100|burst@connect_ok@connect ok|burst@syn_retrans@SYN retransmits|burst@launch_gap_ms@start to burst (ms)|burst@ready_ms@start took (ms)" \
		>"$GEN_OUT/acquire.tex"
	gen_grid_table "$summary" "$meta" crossing \
		"race@rounds@rounds|race@dup_sessions@duplicate sessions|race@cleartext@packets in clear|race@reload_refused@reloads refused|control@control_cleartext@control: seen in clear" \
		>"$GEN_OUT/crossing.tex"
	gen_grid_table "$summary" "$meta" policyscale \
		"prefixes=1@setup_ms@start, 1 (ms)|prefixes=1000@setup_ms@start, 1000 (ms)|prefixes=1@objects@objects, 1|prefixes=1000@objects@objects, 1000|prefixes=1@rtt_us@RTT, 1 (us)|prefixes=1000@rtt_us@RTT, 1000 (us)|prefixes=1000@rr_us@TCP RR, 1000 (us)" \
		>"$GEN_OUT/policyscale.tex"
}

# ---- sets.tex: the experiment sets and their budgets (experiments/run-all) ---------
# The budgets are the harness's own planning figures, not measurements.
gen_sets() {
	local list
	if ! list=$("$GEN_PAPER/../experiments/run-all" --list-sets 2>/dev/null) || [[ -z $list ]]; then
		echo "gen-macros: experiments/run-all --list-sets failed; the paper lists no sets" >&2
		echo "(\\texttt{experiments/run-all -{}-list-sets} did not answer when this paper was built.)"
		return 0
	fi
	awk "$GEN_AWK_LIB"'
		BEGIN {
			print "\\begin{tabular}{@{}lrrL{0.5}@{}}\n\\toprule"
			print "Set & Budget & \\texttt{-{}-quick} & Experiments \\\\\n\\midrule"
		}
		# "loss       about 12 min (--quick: 3 min): loss"
		$2 == "about" && $4 == "min" && $5 == "(--quick:" {
			rest = $0; sub(/^[^)]*\): */, "", rest); gsub(/ +/, ", ", rest)
			printf "\\texttt{%s} & %s min & %s min & %s \\\\\n", tex($1), $3, $6, tex(rest)
		}
		END { print "\\bottomrule\n\\end{tabular}" }' <<<"$list"
}

# ---- goals.tex -------------------------------------------------------------------------
# Every goal of experiments/lib/goals.py (its TSV in GOALS) as a table:
# target, estimate, interval (or the worst run of a goal on every run), n
# and the verdict, "no data" where the dataset is missing.
gen_goals_table() {
	awk -F'\t' "$GEN_AWK_LIB"'
		BEGIN {
			print "\\begin{scriptsize}\n\\begin{longtable}{@{}L{0.42}llllr@{}}"
			print "\\toprule Goal & Target & Measured & 95\\,\\% interval & $n$ & Verdict \\\\ \\midrule \\endhead"
			print "\\bottomrule \\endfoot"
		}
		NR > 1 {
			target = ($3 == "ge" ? "$\\geq$ " : "$\\leq$ ") $4 ($5 == "x" ? "$\\times$" : "~" tex($5))
			if ($5 == "bool") target = "yes"
			if ($11 == "every") target = target " every run"
			measured = $7; interval = $8 "--" $9
			if ($10 == "no data") { measured = "n/a"; interval = "n/a" }
			else if ($11 == "every") { measured = "worst " $7; interval = "(every run)" }
			printf "%s & %s & %s & %s & %d & %s \\\\\n", tex($2), target, tex(measured), tex(interval), $6, tex($10)
		}
		END { print "\\end{longtable}\n\\end{scriptsize}" }' "$1"
}

# ---- transparency.tex and transparency-reasons.tex ----------------------------------

# The tabular of results/transparency.tex (its own table float, if any, is
# dropped: the paper places and captions it). Prints nothing when there is
# no tabular in it.
gen_transparency_tabular() {
	awk '
		/\\begin\{(tabular|tabularx|tabular\*)\}/ { on = 1 }
		on { buf = buf $0 "\n" }
		/\\end\{(tabular|tabularx|tabular\*)\}/ && on { out = buf; on = 0 }
		END { printf "%s", out }' "$GEN_RESULTS/transparency.tex"
}

# A matrix from the CSV rows: probes down, systems across.
gen_transparency_matrix() {
	local trans=$1 meta=$2
	awk -F'\t' "$GEN_AWK_LIB"'
		FILENAME ~ /meta$/ { if ($2 ~ /^system\./ && !((substr($2, 8)) in label)) label[substr($2, 8)] = $3; next }
		{
			if (!(($1) in si)) { si[$1] = ns; sys[ns++] = $1 }
			if (!(($2) in pi)) { pi[$2] = np; probe[np++] = $2 }
			res[$1, $2] = tolower($3)
		}
		# "tunlab tun" -> "tun", "plain veth (srv forwards)" -> "plain veth"
		function short_label(id,    l) {
			l = (id in label) ? label[id] : id
			sub(/ *\(.*\)$/, "", l)
			sub(/^tunlab /, "", l)
			return l
		}
		function mark(r) {
			if (r == "yes") return "yes"
			if (r == "no") return "\\textbf{no}"
			if (r == "partial") return "\\textit{part.}"
			return tex(r)
		}
		END {
			spec = "l"; for (i = 0; i < ns; i++) spec = spec "c"
			printf "\\begin{tabular}{%s}\n\\toprule\nProbe", spec
			for (i = 0; i < ns; i++)
				printf " & \\rotatebox{70}{%s}", tex(short_label(sys[i]))
			print " \\\\\n\\midrule"
			for (p = 0; p < np; p++) {
				printf "%s", tex(probe[p])
				for (i = 0; i < ns; i++)
					printf " & %s", ((sys[i], probe[p]) in res) ? mark(res[sys[i], probe[p]]) : "--"
				print " \\\\"
			}
			print "\\bottomrule\n\\end{tabular}"
		}' "$meta" "$trans"
}

gen_transparency() {
	local trans=$1 meta=$2 tabular=""
	if [[ -s $GEN_RESULTS/transparency.tex ]]; then
		tabular=$(gen_transparency_tabular)
		[[ -n $tabular ]] || echo "gen-macros: results/transparency.tex has no tabular; building the table from the CSV" >&2
	fi
	if [[ -z $tabular && -s $trans ]]; then
		tabular=$(gen_transparency_matrix "$trans" "$meta")
	fi
	if [[ -n $tabular ]]; then
		printf '%% Generated by paper/gen-macros.sh -- do not edit.\n\\tlTransparencyAvailable\n'
		printf '\\begin{table}[tbp]\n\\centering\\footnotesize\n\\tlFitWidth{%%\n%s\n}\n' "$tabular"
		printf '\\caption{\\tlTransparencyCaption}\\label{tab:transparency}\n\\end{table}\n'
	else
		printf '%% Generated by paper/gen-macros.sh -- do not edit.\n\\tlTransparencyMissing\n'
	fi
}

# Every cell that is not a plain "yes", with the probe's own reason.
gen_transparency_reasons() {
	local trans=$1 meta=$2
	[[ -s $trans ]] || return 0
	awk -F'\t' "$GEN_AWK_LIB"'
		FILENAME ~ /meta$/ { if ($2 ~ /^system\./ && !((substr($2, 8)) in label)) label[substr($2, 8)] = $3; next }
		tolower($3) != "yes" {
			if (!rows++) {
				print "\\begin{footnotesize}"
				print "\\begin{longtable}{@{}L{0.2}L{0.17}L{0.08}L{0.47}@{}}"
				print "\\toprule System & Probe & Result & Reason given by the probe \\\\ \\midrule \\endhead"
				print "\\bottomrule \\endfoot"
			}
			printf "%s & %s & %s & %s \\\\\n", tex(($1 in label) ? label[$1] : $1), tex($2), tex($3), tex($4)
		}
		END {
			if (rows) print "\\end{longtable}\n\\end{footnotesize}"
			else print "Every probe of every system answered yes."
		}' "$meta" "$trans"
}

# ---- datasets.tex: every tidy CSV, whatever it holds ---------------------------------
gen_datasets() {
	local summary=$1 meta=$2
	awk -F'\t' "$GEN_AWK_LIB"'
		FILENAME ~ /meta$/ {
			if ($2 ~ /^system\./ && !((substr($2, 8)) in label)) label[substr($2, 8)] = $3
			if ($2 == "experiment") what[$1] = $3
			if ($2 == "parameters") params[$1] = $3
			if ($2 == "repetitions") reps[$1] = $3
			if ($2 == "repetitions per system start") per_start[$1] = $3
			if ($2 == "date") date[$1] = $3
			if ($2 == "commit") commit[$1] = $3
			if ($2 == "run") run[$1] = $3
			if ($2 ~ /^retry\./) retries[$1]++
			next
		}
		{
			if (!(($1) in rows)) exps[ne++] = $1
			rows[$1] = rows[$1] sprintf("%s & %s & %s & %s & %s & %d & %s \\\\\n",
				tex(($2 in label) ? label[$2] : $2), tex_cell($3), tex_cell($4), fmt($5),
				$8 > 1 ? fmt($6) "--" fmt($7) : "", $8, tex($9))
		}
		END {
			if (!ne) { print "No tidy CSV in results/: nothing was measured in this run."; exit }
			for (i = 0; i < ne; i++) {
				e = exps[i]
				printf "\\subsection*{\\texttt{results/%s.csv}}\n", tex(e)
				if (e in what) printf "%s. ", tex(what[e])
				if (e in reps) {
					many = (e in per_start) && per_start[e] + 0 > 1
					printf "Repetitions: %s%s. ", tex(reps[e]),
						(many ? " (" tex(per_start[e]) " per system start)" : "")
				}
				if (e in date) printf "Run: %s. ", tex(date[e])
				# Data older than the "run:" line did not record its retries either.
				printf "Commit: \\texttt{%s}; run: %s; retried tests: %s. ", tex((e in commit) ? commit[e] : "unrecorded"),
					tex((e in run) ? run[e] : "unrecorded"), (e in run) ? retries[e] + 0 : "not recorded"
				if (e in params) printf "Parameters: %s.", tex(params[e])
				print "\n\\begin{scriptsize}"
				print "\\begin{longtable}{@{}L{0.19}L{0.14}L{0.14}rrrl@{}}"
				print "\\toprule System & Parameter & Metric & Median & Min--max & $n$ & Unit \\\\ \\midrule \\endhead"
				print "\\bottomrule \\endfoot"
				printf "%s", rows[e]
				print "\\end{longtable}\n\\end{scriptsize}"
			}
		}' "$meta" "$summary"
}

# ---- plots.tex -----------------------------------------------------------------------
# One line per rendered plot: \tlPlot{name}{caption}{dataset}. The caption
# is the purpose line of the plot's gnuplot script (its second line); the
# dataset, which decides the section the figure goes to, is the longest
# name of GEN_PLOT_SECTIONS that starts the plot's name or, failing that, its
# first "# data:" file's name; else "other" (the appendix).
gen_plot_dataset() {
	local name=$1 gp=$2 ds best="" data=""
	if [[ -n ${GEN_PLOT_ALIAS[$name]:-} ]]; then
		echo "${GEN_PLOT_ALIAS[$name]}"
		return 0
	fi
	[[ -e $gp ]] && data=$(sed -n 's/^# data:[[:space:]]*//p' "$gp" | head -n 1)
	data=${data##*/}
	for ds in "${GEN_PLOT_SECTIONS[@]}"; do
		if [[ $name == "$ds"* || ( -z $best && $data == "$ds"[._-]* ) ]] && ((${#ds} > ${#best})); then
			best=$ds
		fi
	done
	echo "${best:-other}"
}

gen_plots() {
	local pdf name gp caption
	echo "% Generated by paper/gen-macros.sh -- do not edit."
	for pdf in "$GEN_RESULTS"/plots/*.pdf; do
		[[ -e $pdf ]] || continue
		name=$(basename "$pdf" .pdf)
		[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "gen-macros: skip plot '$name': odd name" >&2; continue; }
		gp=$GEN_RESULTS/plots/$name.gp
		caption=""
		[[ -e $gp ]] && caption=$(sed -n '2s/^#[[:space:]]*//p' "$gp")
		[[ -n $caption ]] || caption="results/plots/$name.pdf"
		printf '%s\n' "$caption" | awk -v name="$name" -v ds="$(gen_plot_dataset "$name" "$gp")" \
			"$GEN_AWK_LIB"'{ printf "\\tlPlot{%s}{%s}{%s}\n", name, tex($0), ds }'
	done
}

main() {
	while (($#)); do
		case $1 in
		--results) GEN_RESULTS=${2:?--results needs a directory}; shift 2 ;;
		--out) GEN_OUT=${2:?--out needs a directory}; shift 2 ;;
		-h | --help) gen_usage; return 0 ;;
		*) echo "gen-macros: unknown argument '$1'" >&2; gen_usage >&2; return 2 ;;
		esac
	done
	[[ -d $GEN_RESULTS ]] || gen_die "no results directory '$GEN_RESULTS'"
	GEN_RESULTS=$(cd "$GEN_RESULTS" && pwd)
	mkdir -p "$GEN_OUT"
	GEN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/gen-macros.XXXXXX")
	trap 'rm -rf -- "$GEN_TMP"' EXIT

	local present="" exp
	for exp in "$GEN_RESULTS"/*.csv; do
		[[ -s $exp ]] && present+="${present:+ }$(basename "$exp" .csv)"
	done
	gen_summary >"$GEN_TMP/summary"
	gen_meta >"$GEN_TMP/meta"
	gen_transparency_rows >"$GEN_TMP/trans"
	"$GEN_PAPER/../experiments/lib/goals.py" --results "$GEN_RESULTS" >"$GEN_TMP/goals"
	"$GEN_PAPER/../experiments/lib/provenance.sh" --results "$GEN_RESULTS" >"$GEN_TMP/prov"

	{
		gen_numbers "$GEN_TMP/summary" "$GEN_TMP/meta" "$GEN_TMP/trans" "$present"
		# Where the plots are, as the paper (run in paper/) reaches them.
		printf '\\def\\tlPlotDir{%s/}\n' "$(realpath --relative-to="$GEN_PAPER" "$GEN_RESULTS/plots")"
		gen_code_facts
		gen_loss_procedure
	} >"$GEN_OUT/numbers.tex"
	gen_throughput_table "$GEN_TMP/summary" "$GEN_TMP/meta" >"$GEN_OUT/throughput.tex"
	gen_transparency "$GEN_TMP/trans" "$GEN_TMP/meta" >"$GEN_OUT/transparency.tex"
	gen_transparency_reasons "$GEN_TMP/trans" "$GEN_TMP/meta" >"$GEN_OUT/transparency-reasons.tex"
	gen_datasets "$GEN_TMP/summary" "$GEN_TMP/meta" >"$GEN_OUT/datasets.tex"
	gen_plots >"$GEN_OUT/plots.tex"
	gen_grid_tables "$GEN_TMP/summary" "$GEN_TMP/meta"
	gen_sets >"$GEN_OUT/sets.tex"
	gen_goals_table "$GEN_TMP/goals" >"$GEN_OUT/goals.tex"
	echo "gen-macros: ${GEN_OUT#"$PWD"/}/ from ${present:-no datasets} ($(wc -l <"$GEN_TMP/summary") medians)" >&2
}

main "$@"
