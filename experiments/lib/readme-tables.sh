#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# readme-tables.sh: writes the README's generated tables (transparency matrix, goals with their intervals) between their markers.
#
# Usage: experiments/lib/readme-tables.sh [--results DIR] [--readme FILE] [--check]
#   --check  change nothing; exit 1 when FILE's tables differ from what
#            DIR's data gives (the test that the README matches the CSV)
#
# Between "<!-- BEGIN generated NAME ... -->" and "<!-- END generated NAME -->"
# lines, NAME one of:
#   transparency  the table of DIR/transparency.md
#                 (experiments/lib/render-transparency.sh, from transparency.csv)
#   goals         experiments/lib/goals.py --format md, with each dataset's
#                 commit (experiments/lib/provenance.sh) and a warning when
#                 they are not one reference run
# `make plots` (experiments/lib/plots.sh) runs it after rendering the tables.
set -euo pipefail

rt_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
results=$rt_lib/../../results readme=$rt_lib/../../README.md check=0
while (($#)); do
	case $1 in
	--results) results=${2:?--results needs a directory}; shift 2 ;;
	--readme) readme=${2:?--readme needs a file}; shift 2 ;;
	--check) check=1; shift ;;
	-h | --help) sed -n '4,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "readme-tables: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[[ -f $readme ]] || { echo "readme-tables: no $readme" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/readme-tables.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# The first Markdown table of transparency.md (its reasons follow it).
rt_transparency() {
	if [[ -s $results/transparency.md ]]; then
		awk '/^\|/ { t = 1; print; next } t { exit }' "$results/transparency.md"
	else
		echo "(no transparency.md: run experiments/transparency, then make plots)"
	fi
}

rt_goals() {
	local prov problem=""
	"$rt_lib/goals.py" --results "$results" --format md
	echo
	echo "A goal is *met* only when the whole 95 % interval (bootstrap over the"
	echo "repetitions paired by number, \`experiments/lib/goals.py\`) clears it,"
	echo "*not met* when the whole interval misses it, *level* when it contains it;"
	echo "a goal \"in every run\" is met only when each repetition satisfies it,"
	echo "*too few runs* below $("$rt_lib/goals.py" --min-pairs) repetitions, *no data* without its dataset."
	prov=$("$rt_lib/provenance.sh" --results "$results")
	echo
	echo "Commit of each dataset: $(awk '{ printf "%s%s `%s`", (NR > 1 ? ", " : ""), $1, $2 }' <<<"$prov")."
	"$rt_lib/provenance.sh" --results "$results" --check >/dev/null 2>"$work/why" || problem=1
	if [[ -n $problem ]]; then
		echo
		echo "**Warning: these data are not one reference run of \`make experiments\`**"
		echo "(\`experiments/lib/provenance.sh --check\`: $(grep -v '^  ' "$work/why" |
			sed 's/^provenance: //; s/:$//' | paste -sd ';' | sed 's/;/; /g'))."
	fi
}

# rt_splice NAME CONTENT_FILE: replaces what is between NAME's markers.
rt_splice() {
	local name=$1 content=$2
	grep -q "^<!-- BEGIN generated $name " "$work/readme" ||
		{ echo "readme-tables: no '<!-- BEGIN generated $name' marker in $readme" >&2; exit 1; }
	awk -v name="$name" -v content="$content" '
		index($0, "<!-- BEGIN generated " name " ") == 1 {
			print; while ((getline line < content) > 0) print line; skip = 1; next
		}
		index($0, "<!-- END generated " name " ") == 1 { skip = 0 }
		!skip' "$work/readme" >"$work/readme.new"
	mv -- "$work/readme.new" "$work/readme"
}

cp -- "$readme" "$work/readme"
rt_transparency >"$work/transparency"
rt_goals >"$work/goals"
rt_splice transparency "$work/transparency"
rt_splice goals "$work/goals"
if ((check)); then
	diff -u "$readme" "$work/readme" >&2 ||
		{ echo "readme-tables: $readme's generated tables differ from $results (run make plots)" >&2; exit 1; }
	exit 0
fi
cmp -s -- "$readme" "$work/readme" || cp -- "$work/readme" "$readme"
echo "[plots] ${readme##*/}: transparency and goals tables"
