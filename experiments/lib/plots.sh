#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# plots.sh: re-renders every plot in results/plots/ from the stored data only.
#
# Usage: experiments/lib/plots.sh [--results DIR]
# Step 1 derives small data files (results/plots/*.dat) from the tidy CSVs
# and their metadata (sort + awk: medians, percentiles, CDFs; no number by
# hand); step 2 runs every results/plots/*.gp through gnuplot, once for PNG
# (README) and once for PDF (paper), with the results directory as working
# directory. A plot whose data is missing is skipped. Touches no network
# namespace and starts nothing that outlives it, so it needs neither root
# nor netns.sh.
set -euo pipefail

PLOTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export LC_ALL=C # sort -g and awk's number formats alike everywhere

plots_usage() {
	sed -n '4,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---- step 1: data files ----------------------------------------------------------

# plots_stats CSV: one line per (system, parameter, metric) group:
#   system parameter metric n median min max p10 p25 p75 p90
# Percentiles interpolate linearly between the sorted values.
plots_stats() {
	tail -n +2 "$1" | awk -F, '$4 != "" { print $1, $2, $3, $4 }' |
		sort -k1,1 -k2,2 -k3,3 -k4,4g | awk '
		function q(p,   pos, i) {
			pos = (n - 1) * p; i = int(pos)
			return i + 1 < n ? v[i] + (v[i + 1] - v[i]) * (pos - i) : v[i]
		}
		function flush() {
			if (n) printf "%s %d %.6g %.6g %.6g %.6g %.6g %.6g %.6g\n", key, n,
				q(0.5), v[0], v[n - 1], q(0.1), q(0.25), q(0.75), q(0.9)
			n = 0
		}
		{ k = $1 " " $2 " " $3; if (k != key) { flush(); key = k } v[n++] = $4 + 0 }
		END { flush() }'
}

# plots_systems META: "id display-name" per system, in the run's order. The
# display name is the row's label up to any " (" (the long explanations
# stay in the metadata), unless two rows would then share it.
plots_systems() {
	awk '
		/^systems: / { n = split(substr($0, 10), ids, " ") }
		/^system\.[^:]*: / {
			id = substr($0, 8, index($0, ":") - 8)
			lab = substr($0, index($0, ":") + 2)
			gsub(/"/, "", lab)
			label[id] = lab
			sub(/ \(.*/, "", lab)
			short[id] = lab; uses[lab]++
		}
		END {
			for (i = 1; i <= n; i++) {
				id = ids[i]
				if (!(id in label)) name = id
				else if (uses[short[id]] > 1) name = label[id]
				else name = short[id]
				print id, name
			}
		}' "$1"
}

# plots_wide STATS SYSTEMS OUT "PARAM|METRIC|FIELD..."...: one line per
# system with data: id "name" then the FIELDs (n median min max p10 p25
# p75 p90) of each column group, NaN where a group has no data.
plots_wide() {
	local stats=$1 systems=$2 out=$3
	shift 3
	awk -v specs="$(printf '%s\n' "$@")" '
		BEGIN {
			split("n median min max p10 p25 p75 p90", names, " ")
			for (i = 1; i <= 8; i++) col[names[i]] = i + 3
			ngroups = split(specs, group, "\n")
		}
		FNR == NR { for (i = 4; i <= NF; i++) val[$1, $2, $3, i] = $i; next }
		{
			id = $1; name = $0; sub(/^[^ ]+ /, "", name)
			line = sprintf("%s \"%s\"", id, name); any = 0
			for (g = 1; g <= ngroups; g++) {
				split(group[g], part, "|"); nf = split(part[3], fields, " ")
				for (f = 1; f <= nf; f++) {
					x = val[id, part[1], part[2], col[fields[f]]]
					if (x == "") x = "NaN"; else any = 1
					line = line " " x
				}
			}
			if (any) print line
		}' "$stats" "$systems" >"$out.tmp"
	plots_keep "$out"
}

# plots_curves STATS SYSTEMS OUT METRIC KEY: a block per system (first
# line: "name (n=REPS)" for gnuplot's columnheader) of "x median min max" for the
# rows of METRIC whose parameter is KEY=x, by x.
plots_curves() {
	local stats=$1 systems=$2 out=$3 metric=$4 key=$5
	awk -v metric="$metric" -v key="$key=" '
		FNR == NR {
			if ($3 == metric && index($2, key) == 1) {
				s = $1; k = n[s]++
				if (!(s in rmin) || $4 < rmin[s]) rmin[s] = $4
				if (!(s in rmax) || $4 > rmax[s]) rmax[s] = $4
				x[s, k] = substr($2, length(key) + 1) + 0
				row[s, k] = sprintf("%s %s %s %s", x[s, k], $5, $6, $7)
			}
			next
		}
		$1 in n {
			s = $1; name = $0; sub(/^[^ ]+ /, "", name)
			for (i = 1; i < n[s]; i++)      # insertion sort by x: mawk has no asort
				for (j = i; j > 0 && x[s, j - 1] > x[s, j]; j--) {
					t = x[s, j]; x[s, j] = x[s, j - 1]; x[s, j - 1] = t
					t = row[s, j]; row[s, j] = row[s, j - 1]; row[s, j - 1] = t
				}
			# The key names the repetitions behind each point: n=1 has no spread.
			reps = rmin[s] == rmax[s] ? rmin[s] : rmin[s] "-" rmax[s]
			printf "%s\"%s (n=%s)\" x\n", (blocks++ ? "\n\n" : ""), name, reps
			for (i = 0; i < n[s]; i++) print row[s, i]
		}' "$stats" "$systems" >"$out.tmp"
	plots_keep "$out"
}

# plots_cdf CSV SYSTEMS OUT METRIC PARAM: a block per system of "value
# fraction" (the empirical CDF of every sample of METRIC at PARAM).
plots_cdf() {
	local csv=$1 systems=$2 out=$3 metric=$4 param=$5 id name
	: >"$out.tmp"
	while read -r id name; do
		awk -F, -v s="$id" -v m="$metric" -v p="$param" \
			'$1 == s && $2 == p && $3 == m && $4 != "" { print $4 }' "$csv" | sort -g |
			awk -v name="$name" -v first="$([[ -s $out.tmp ]] || echo 1)" '{ v[n++] = $1 } END {
				if (!n) exit
				printf "%s\"%s\" x\n", (first ? "" : "\n\n"), name
				for (i = 0; i < n; i++) printf "%s %.5f\n", v[i], (i + 1) / n }' >>"$out.tmp"
	done <"$systems"
	plots_keep "$out"
}

# plots_at_rtt STATS RTT: the loss experiment's stats rows at one added
# RTT ("loss=L:rtt=R" parameters), renamed "loss=L" for plots_curves.
plots_at_rtt() {
	awk -v tail=":rtt=$2" '{ n = length($2) - length(tail)
		if (n > 0 && substr($2, n + 1) == tail) { $2 = substr($2, 1, n); print } }' "$1"
}

# Moves OUT.tmp to OUT when it holds data; an empty one removes OUT.
plots_keep() {
	if [[ -s $1.tmp ]]; then
		mv -- "$1.tmp" "$1"
	else
		rm -f -- "$1.tmp" "$1"
	fi
}

# plots_derive RESULTS NAME: NAME.csv + NAME.meta -> the stats and system
# list in WORK, or false when the experiment has no data yet.
plots_derive() {
	local results=$1 name=$2
	[[ -s $results/$name.csv ]] || return 1
	plots_stats "$results/$name.csv" >"$PLOTS_WORK/$name.stats"
	if [[ -s $results/$name.meta ]] && grep -q '^systems: ' "$results/$name.meta"; then
		plots_systems "$results/$name.meta" >"$PLOTS_WORK/$name.systems"
	else # no metadata: the CSV's own order, ids as names
		tail -n +2 "$results/$name.csv" | cut -d, -f1 | awk '!seen[$0]++ { print $0, $0 }' \
			>"$PLOTS_WORK/$name.systems"
	fi
}

plots_data() {
	local r=$1 p=$1/plots w=$PLOTS_WORK
	if plots_derive "$r" throughput; then
		plots_wide "$w/throughput.stats" "$w/throughput.systems" "$p/throughput.dat" \
			"streams=1|throughput|median min max n" "streams=4|throughput|median min max n"
		plots_wide "$w/throughput.stats" "$w/throughput.systems" "$p/cpu.dat" \
			"streams=1|cpu_client|median min max" "streams=1|cpu_server|median min max"
	fi
	if plots_derive "$r" pktrate; then
		plots_wide "$w/pktrate.stats" "$w/pktrate.systems" "$p/pktrate.dat" \
			"loss<1%|max_pps|median min max n"
	fi
	if plots_derive "$r" rtt; then
		plots_cdf "$r/rtt.csv" "$w/rtt.systems" "$p/rtt_cdf.dat" rtt idle
		plots_wide "$w/rtt.stats" "$w/rtt.systems" "$p/rr.dat" \
			"size=1|rr_rate|median min max n" "size=1|rr_p50_us|median" "size=1|rr_p99_us|median"
	fi
	if plots_derive "$r" rrul; then
		plots_wide "$w/rrul.stats" "$w/rrul.systems" "$p/rrul.dat" \
			"idle|rtt|median p10 p90 n" "load|rtt|median p10 p90 n"
	fi
	if plots_derive "$r" setup; then
		plots_wide "$w/setup.stats" "$w/setup.systems" "$p/setup.dat" "start|setup_ms|median min max n"
	fi
	if plots_derive "$r" acquire; then
		plots_wide "$w/acquire.stats" "$w/acquire.systems" "$p/acquire.dat" \
			"burst|received|median min max n" "burst|first_ms|median min max"
	fi
	if plots_derive "$r" flows; then
		plots_curves "$w/flows.stats" "$w/flows.systems" "$p/flows.dat" throughput streams
	fi
	if plots_derive "$r" prefixes; then
		plots_curves "$w/prefixes.stats" "$w/prefixes.systems" "$p/prefixes_setup.dat" setup_ms prefixes
		plots_curves "$w/prefixes.stats" "$w/prefixes.systems" "$p/prefixes_objects.dat" objects prefixes
	fi
	if plots_derive "$r" policyscale; then
		plots_curves "$w/policyscale.stats" "$w/policyscale.systems" "$p/policyscale_setup.dat" setup_ms prefixes
		plots_curves "$w/policyscale.stats" "$w/policyscale.systems" "$p/policyscale_objects.dat" objects prefixes
		plots_curves "$w/policyscale.stats" "$w/policyscale.systems" "$p/policyscale_rtt.dat" rtt_us prefixes
	fi
	if plots_derive "$r" loss; then
		local rtt
		for rtt in 0 20; do
			plots_at_rtt "$w/loss.stats" "$rtt" >"$w/loss-rtt$rtt.stats"
			plots_curves "$w/loss-rtt$rtt.stats" "$w/loss.systems" "$p/loss_goodput_rtt$rtt.dat" goodput loss
			plots_curves "$w/loss-rtt$rtt.stats" "$w/loss.systems" "$p/loss_rtt_rtt$rtt.dat" rtt loss
		done
	fi
	if plots_derive "$r" nat; then
		plots_wide "$w/nat.stats" "$w/nat.systems" "$p/nat.dat" "start|setup_ms|median min max n" \
			"flush|recovery_ms|median min max n" "newport|recovery_ms|median min max n" \
			"flush|lost_pings|max" "newport|lost_pings|max" "idle|recovery_ms|median min max n" \
			"idle|lost_pings|max"
	fi
	if plots_derive "$r" failover; then
		plots_wide "$w/failover.stats" "$w/failover.systems" "$p/failover.dat" \
			"kill9|outage_ms|median min max n" "switchover|outage_ms|median min max n" \
			"kill9|inner_tcp_survived|min max"
	fi
	local f
	for f in "$p"/*.dat; do
		[[ -e $f ]] && echo "[plots] ${f#"$r"/}"
	done
	return 0
}

# ---- step 2: rendering -------------------------------------------------------------

plots_have_term() {
	gnuplot -e "set terminal $1" -e 'exit' >/dev/null 2>&1
}

# Picks the terminals: cairo (PNG + PDF) where gnuplot has it, else libgd
# PNG + SVG, so a gnuplot built without cairo still renders something.
plots_terminals() {
	if plots_have_term pngcairo && plots_have_term pdfcairo; then
		PLOTS_TERMS=("png|pngcairo size 1000,600 font 'Sans,11'"
			"pdf|pdfcairo size 6.5in,3.9in font 'Sans,9'")
	else
		echo "[plots] note: gnuplot has no cairo terminals; rendering png (libgd) and svg" >&2
		PLOTS_TERMS=("png|png size 1000,600"
			"svg|svg size 1000,600 dynamic")
	fi
}

# A plot script names its inputs in "# data: FILE" lines; a plot whose
# data has not been produced yet is skipped, not an error.
plots_data_present() {
	local results=$1 gp=$2 file
	while read -r file; do
		if [[ ! -s $results/$file ]]; then
			echo "[plots] skip $(basename "$gp"): no $file yet" >&2
			return 1
		fi
	done < <(sed -n 's/^# data: *//p' "$gp")
}

plots_render() {
	local results=$1 gp name spec ext term n=0
	plots_terminals
	for gp in "$results"/plots/*.gp; do
		[[ -e $gp ]] || continue
		name=$(basename "$gp" .gp)
		plots_data_present "$results" "$gp" || continue
		for spec in "${PLOTS_TERMS[@]}"; do
			ext=${spec%%|*} term=${spec#*|}
			(cd "$results" && gnuplot -e "termspec=\"$term\"; outfile='plots/$name.$ext'" \
				"plots/$name.gp")
			echo "[plots] results/plots/$name.$ext"
			n=$((n + 1))
		done
	done
	((n > 0)) || echo "[plots] no results/plots/*.gp to render" >&2
}

# The tables rendered from stored data (the transparency matrix, as
# Markdown and LaTeX), where their CSV exists.
plots_tables() {
	local results=$1
	if [[ -s $results/transparency.csv ]]; then
		"$PLOTS_ROOT/experiments/lib/render-transparency.sh" --results "$results"
	else
		echo "[plots] skip transparency tables: no transparency.csv yet" >&2
	fi
	# The README's copies (transparency, goals) only for the repository's
	# own results/: another --results DIR is someone's scratch data.
	if [[ $results -ef $PLOTS_ROOT/results ]]; then
		"$PLOTS_ROOT/experiments/lib/readme-tables.sh" --results "$results"
	fi
}

main() {
	local results=$PLOTS_ROOT/results
	while (($#)); do
		case $1 in
		--results) results=$(cd "$2" && pwd); shift 2 ;;
		-h | --help) plots_usage; return 0 ;;
		*) echo "plots.sh: unknown argument '$1'" >&2; plots_usage >&2; return 2 ;;
		esac
	done
	command -v gnuplot >/dev/null || { echo "plots.sh: gnuplot not found: run 'make deps'" >&2; return 1; }
	PLOTS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/tunlab-plots.XXXXXX")
	trap 'rm -rf -- "$PLOTS_WORK"' EXIT
	mkdir -p "$results/plots"
	plots_data "$results"
	plots_tables "$results"
	plots_render "$results"
}

main "$@"
