#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# provenance.sh: which commit and which run each dataset of results/ came from, and whether they form one reference run.
#
# Usage: experiments/lib/provenance.sh [--results DIR] [--check]
#   prints one line per dataset: "DATASET COMMIT RUN" (RUN: the .meta's
#   "run:" line, "unrecorded" in data older than that line);
#   --check  exits 1, saying why, unless every dataset names the same clean
#            commit and the same reference run, and every experiment of
#            every set (experiments/run-all --list-sets) has its dataset.
#
# A reference run is what `make experiments-all` (experiments/run-all
# --set all) makes from a clean tree without --quick: its experiments
# write "run: reference ID" with one ID. The paper marks anything else on its first page
# (paper/gen-macros.sh); this check is what the lead runs before
# committing results/ as the reference data.
set -euo pipefail

prov_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
results=$prov_root/results check=0
while (($#)); do
	case $1 in
	--results) results=${2:?--results needs a directory}; shift 2 ;;
	--check) check=1; shift ;;
	-h | --help) sed -n '4,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "provenance: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

# One line per .meta that has a dataset beside it.
prov_list() {
	local meta ds commit run
	for meta in "$results"/*.meta; do
		[[ -e $meta ]] || continue
		ds=$(basename "$meta" .meta)
		[[ -e $results/$ds.csv ]] || continue
		commit=$(sed -n 's/^commit: //p' "$meta" | head -n 1)
		run=$(sed -n 's/^run: //p' "$meta" | head -n 1)
		printf '%s %s %s\n' "$ds" "${commit:-unknown}" "${run:-unrecorded}"
	done
}

list=$(prov_list)
((check)) || { [[ -z $list ]] || echo "$list"; exit 0; }
[[ -n $list ]] || { echo "provenance: no datasets in $results" >&2; exit 1; }
bad=0
commits=$(awk '{ print $2 }' <<<"$list" | sort -u)
runs=$(cut -d' ' -f3- <<<"$list" | sort -u)
if (($(wc -l <<<"$commits") > 1)); then
	echo "provenance: datasets from $(wc -l <<<"$commits") commits:" >&2
	awk '{ printf "  %s: %s\n", $1, $2 }' <<<"$list" >&2
	bad=1
fi
if grep -q -- '-dirty$\|^unknown$' <<<"$commits"; then
	echo "provenance: code that differs from its commit (or no commit) measured some datasets" >&2
	bad=1
fi
if (($(wc -l <<<"$runs") > 1)) || [[ $runs != reference\ * ]]; then
	echo "provenance: not one reference run of 'make experiments-all':" >&2
	awk '{ $2 = ""; sub(/  /, ": "); print "  " $0 }' <<<"$list" >&2
	bad=1
fi
# demo walks through the tunnel and writes no dataset.
missing=$("$prov_root/experiments/run-all" --list-sets | sed 's/.*): //' | tr ' ' '\n' |
	awk 'NF && $1 != "demo"' | while read -r exp; do [[ -e $results/$exp.csv ]] || echo "$exp"; done)
if [[ -n $missing ]]; then
	echo "provenance: experiments of the sets without a dataset (not every set ran):" $missing >&2
	bad=1
fi
((bad == 0)) || exit 1
echo "provenance: one reference run ($runs) of commit $commits"
