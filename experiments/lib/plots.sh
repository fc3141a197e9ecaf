#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# plots.sh: re-renders every plot in results/plots/ from the stored data only.
#
# Usage: experiments/lib/plots.sh [--results DIR]
# Step 1 derives small summary files from the tidy CSVs (awk, no numbers by
# hand); step 2 runs every results/plots/*.gp through gnuplot, once for PNG
# and once for PDF, with the results directory as working directory so the
# scripts name their data as "throughput.summary.dat". Touches no network
# namespace and starts nothing that outlives it, so it needs neither root
# nor netns.sh.
set -euo pipefail

PLOTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

plots_usage() {
	sed -n '4,5p' "${BASH_SOURCE[0]}" | sed 's/^# //'
}

# Per system, in order of first appearance in CSV: median, min and max of
# METRIC, plus the system's label from the run's metadata file
# ("system.ID: label" lines). Writes a gnuplot data file.
plots_summary() {
	local csv=$1 meta=$2 metric=$3 out=$4
	awk -F, -v metric="$metric" '
		FNR == NR {
			if (match($0, /^system\.[^:]*: /)) {
				id = substr($0, 8, RLENGTH - 9)
				label[id] = substr($0, RLENGTH + 1)
			}
			next
		}
		FNR == 1 { next }
		$3 == metric && $4 != "" {
			if (!($1 in n)) order[systems++] = $1
			v[$1, n[$1]++] = $4 + 0
		}
		END {
			print "# system label median min max repetitions (metric: " metric ")"
			for (s = 0; s < systems; s++) {
				id = order[s]
				k = n[id]
				for (i = 1; i < k; i++)      # insertion sort: mawk has no asort
					for (j = i; j > 0 && v[id, j - 1] > v[id, j]; j--) {
						t = v[id, j]; v[id, j] = v[id, j - 1]; v[id, j - 1] = t
					}
				med = k % 2 ? v[id, (k - 1) / 2] : (v[id, k / 2 - 1] + v[id, k / 2]) / 2
				lab = (id in label) ? label[id] : id
				gsub(/"/, "", lab)
				printf "%s \"%s\" %.6g %.6g %.6g %d\n", id, lab, med, v[id, 0], v[id, k - 1], k
			}
		}' "$meta" "$csv" >"$out"
}

plots_summaries() {
	local results=$1
	if [[ -s $results/throughput.csv ]]; then
		[[ -e $results/throughput.meta ]] || : >"$results/throughput.meta"
		plots_summary "$results/throughput.csv" "$results/throughput.meta" \
			throughput "$results/throughput.summary.dat"
		echo "[plots] throughput.summary.dat from throughput.csv"
	fi
}

plots_have_term() {
	gnuplot -e "set terminal $1" -e 'exit' >/dev/null 2>&1
}

# Picks the terminals: cairo (PNG + PDF) where gnuplot has it, else libgd
# PNG + SVG, so a gnuplot built without cairo still renders something.
plots_terminals() {
	if plots_have_term pngcairo && plots_have_term pdfcairo; then
		PLOTS_TERMS=("png|pngcairo size 900,560 font 'Sans,11'"
			"pdf|pdfcairo size 6in,3.8in font 'Sans,10'")
	else
		echo "[plots] note: gnuplot has no cairo terminals; rendering png (libgd) and svg" >&2
		PLOTS_TERMS=("png|png size 900,560"
			"svg|svg size 900,560 dynamic")
	fi
}

# A plot script names its inputs in "# data: FILE" lines; a plot whose
# data has not been produced yet is skipped, not an error.
plots_data_present() {
	local results=$1 gp=$2 file
	while read -r file; do
		if [[ ! -e $results/$file ]]; then
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
	plots_summaries "$results"
	plots_render "$results"
}

main "$@"
