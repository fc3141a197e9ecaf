# SPDX-License-Identifier: MIT
# experiment.sh: the frame every performance experiment shares: flags, the system x repetition matrix, progress, publishing (sourced).
# shellcheck shell=bash
#
# An experiment is data plus one function (flent's idea). The script sets
#   EXP_NAME        file names (NAME.csv, NAME.meta, raw/NAME/) and progress tag
#   EXP_TITLE       the metadata's "experiment:" line
#   EXP_REPS EXP_SECONDS              defaults
#   EXP_QUICK_REPS EXP_QUICK_SECONDS  --quick (CI)
#   EXP_TEST_BUDGET seconds one test (one system start; with exp_one, one
#                   repetition) is expected to take at the defaults: the
#                   estimate before any has run
# and may set
#   EXP_REPS_PER_START  repetitions measured one after the other on one
#                   system start (default 1: a fresh topology and system
#                   for every repetition). Starting a system costs 1-2.5 s (experiments/overhead),
#                   longer than one RTT or packet-rate measurement, so
#                   those take several repetitions per start to afford
#                   five within the run's budget; what a start itself
#                   costs is the setup experiment's subject.
# and defines
#   exp_measure ID FN REP WORK   measures the running system ID: rows via
#                   exp_row, raw files under $EXP_RAW. When this system
#                   cannot be measured this way it calls exp_cannot WHY,
#                   and later repetitions skip it.
#   exp_parameters  prints the "parameters: ..." metadata lines
# and optionally
#   EXP_DEFAULT_EXCLUDE  rows left out unless --systems names them: variants
#                   that throughput and transparency cover, dropped from the
#                   other experiments to keep `make experiments` within its
#                   30 minutes (the metadata says so)
#   EXP_OPT_IN      rows of systems.sh's SYS_OPT_IN_ROWS (tun-udp) this
#                   experiment measures by default; the others leave them
#                   out as if EXP_DEFAULT_EXCLUDE named them
#   exp_applies ID NEEDS   prints why the experiment does not apply to a
#                   row (e.g. no tunnel to set up); nothing when it does
#   exp_one ID FN REP WORK replaces the default test (system up,
#                   exp_measure, system down) with one repetition of its
#                   own making: for experiments that time the start
#                   itself, or that start the system more than once a
#                   repetition (loss: a fresh start for every point)
#   EXP_ON_HOSTS=1  the experiment runs on an inventory's hosts too
#                   (--inventory): every helper it uses has both back ends;
#                   without it --inventory is refused (tl_backend_check),
#                   and with it the systems of systems.sh's SYS_ON_HOSTS
#                   only: --systems naming another is refused, "all"
#                   leaves the others out with skipped.ID lines
#   exp_flag FLAG VALUE    takes an experiment's own two-word flag (return
#                   0) or not (return 1); EXP_USAGE_EXTRA documents them
# and ends with `exp_main "$@"`.
#
# Each test runs in a subshell: a test that dies (meas_die, a tool error)
# is cleaned up and retried once; every failed try is written to the
# metadata with its reason ("retry.ID.repN.tryK: exit RC: last stderr
# line"), a second failure also as "failed.ID.repN: ..." and the run goes on, because one flaky
# test should not throw away half an hour of data. The run exits 1 only
# when no test at all succeeded. Sourced after netns.sh, systems.sh and
# measure.sh.

EXP_REPS=${EXP_REPS:-5}
EXP_SECONDS=${EXP_SECONDS:-5}
EXP_QUICK_REPS=${EXP_QUICK_REPS:-1}
EXP_QUICK_SECONDS=${EXP_QUICK_SECONDS:-1}
EXP_TEST_BUDGET=${EXP_TEST_BUDGET:-10}
EXP_REPS_PER_START=${EXP_REPS_PER_START:-1}
EXP_DEFAULT_EXCLUDE=${EXP_DEFAULT_EXCLUDE:-}
EXP_OPT_IN=${EXP_OPT_IN:-}
EXP_USAGE_EXTRA=${EXP_USAGE_EXTRA:-}
EXP_QUICK=0
declare -A EXP_SKIP=()          # id -> why later repetitions skip it
EXP_FAILED=0 EXP_PASSED=0

exp_usage() {
	cat <<-EOF
		Usage: experiments/$EXP_NAME [--tunlab PATH] [--quick] [--reps N] [--seconds S]
		                    [--systems LIST] [--results DIR] [--inventory FILE]$EXP_USAGE_EXTRA
		  $EXP_TITLE
		  --quick         $EXP_QUICK_REPS repetition(s), ${EXP_QUICK_SECONDS} s steps (default $EXP_REPS x ${EXP_SECONDS} s)
		  --systems LIST  comma list of rows of experiments/lib/systems.sh (default all)
		  --results DIR   where the data goes (default: results/)
		  --inventory FILE  on the hosts of this Ansible inventory instead of
		                  namespaces (README: "Running on real hosts")
		Writes DIR/$EXP_NAME.csv (system,parameter,metric,value,unit,repetition),
		DIR/$EXP_NAME.meta and DIR/raw/$EXP_NAME/ once every test has run;
		experiments/lib/plots.sh renders them.
	EOF
}

# exp_row SYSTEM PARAMETER METRIC VALUE UNIT REP
exp_row() {
	meas_csv_row "$EXP_CSV" "$@"
}

# exp_cannot WHY: the system cannot be measured by this experiment; ends
# the test (a subshell) with status 3.
exp_cannot() {
	echo "$*" >"$EXP_WORK_SKIP_FILE"
	exit 3
}

# The last repetition a test starting at REP measures.
exp_last_rep() {
	local last=$(($1 + EXP_REPS_PER_START - 1))
	((last <= EXP_REPS)) || last=$EXP_REPS
	echo "$last"
}

# The default test: fresh topology and system, the measurement of
# repetitions REP ... (EXP_REPS_PER_START of them), teardown.
exp_default_one() {
	local id=$1 fn=$2 rep=$3 work=$4 r last
	last=$(exp_last_rep "$rep")
	meas_system_up "$id" "$fn" "$work"
	for ((r = rep; r <= last; r++)); do
		exp_measure "$id" "$fn" "$r" "$work"
	done
	meas_system_down "$fn"
}

# Runs one test in a subshell with errexit on; leaves 0 (ok), 3 (cannot)
# or another status (failed) in EXP_RC. Never call it, or a function that
# calls it, as the operand of || && if or !: bash then ignores errexit in
# the subshell too, and a failing step would go unnoticed.
exp_run_test() {
	local id=$1 fn=$2 rep=$3 work=$4 runner=exp_default_one
	declare -F exp_one >/dev/null && runner=exp_one
	mkdir -p "$work"
	EXP_WORK_SKIP_FILE=$work/cannot
	rm -f -- "$EXP_WORK_SKIP_FILE"
	# In the background and waited for, so that a TERM (run-all passes
	# one on) runs the trap at once: it stops the test and cleans up.
	set +e
	# Its stderr also goes to a file: the reason a retry records.
	(
		set -e
		"$runner" "$id" "$fn" "$rep" "$work"
	) 2> >(tee -a "$work/stderr" >&2) &
	EXP_CHILD=$!
	wait "$EXP_CHILD"
	EXP_RC=$?
	EXP_CHILD=""
	set -e
	# Whatever the subshell left behind (it may have died half-way).
	meas_system_down "$fn"
}

# One (system, repetition) test with a retry; records failures and skips.
exp_test() {
	local id=$1 fn=$2 rep=$3 try rc=0
	for try in 1 2; do
		exp_run_test "$id" "$fn" "$rep" "$TL_TMP/$id-rep$rep-try$try"
		rc=$EXP_RC
		case $rc in
		0) EXP_PASSED=$((EXP_PASSED + 1)); return 0 ;;
		3)
			EXP_SKIP[$id]=$(cat "$TL_TMP/$id-rep$rep-try$try/cannot" 2>/dev/null || echo "cannot be measured")
			echo "skipped.$id: ${EXP_SKIP[$id]}" >>"$EXP_STAGE/$EXP_NAME.meta"
			meas_progress "$id: skipped from now on: ${EXP_SKIP[$id]}"
			return 0
			;;
		esac
		meas_progress "warning: $id rep $rep failed (exit $rc), try $try of 2"
		exp_record_retry "$id" "$rep" "$try" "$rc" "$TL_TMP/$id-rep$rep-try$try/stderr"
		# The rows a failed try wrote are not data.
		exp_drop_rows "$id" "$rep" "$(exp_last_rep "$rep")"
	done
	EXP_FAILED=$((EXP_FAILED + 1))
	echo "failed.$id.rep$rep: exit $rc twice (see the run's output)" >>"$EXP_STAGE/$EXP_NAME.meta"
}

EXP_CHILD=""

# exp_record_retry ID REP TRY RC STDERR: every failed try goes into the
# metadata with its reason (the last line the test printed to stderr), so a
# dataset says which of its rows came from a second try and why.
exp_record_retry() {
	local id=$1 rep=$2 try=$3 rc=$4 err=$5 why
	why=$(grep -v '^[[:space:]]*$' "$err" 2>/dev/null | tail -n 1 | tr -d '\r' | cut -c 1-240)
	echo "retry.$id.rep$rep.try$try: exit $rc: ${why:-no message on stderr}" >>"$EXP_STAGE/$EXP_NAME.meta"
}

# The test first (its processes are ours and get killed by tl_cleanup
# anyway, but the subshell would go on with its next step), then netns.sh's
# cleanup.
exp_stop_child() {
	[[ -n $EXP_CHILD ]] || return 0
	kill -TERM "$EXP_CHILD" 2>/dev/null || true
	wait "$EXP_CHILD" 2>/dev/null || true
	EXP_CHILD=""
}

exp_traps() {
	trap 'exp_stop_child; tl_cleanup' EXIT
	trap 'exp_stop_child; tl_cleanup; trap - INT; kill -INT $$' INT
	trap 'exp_stop_child; tl_cleanup; trap - TERM; kill -TERM $$' TERM
}

# exp_drop_rows ID FIRST LAST: repetitions FIRST ... LAST of system ID.
exp_drop_rows() {
	local id=$1 first=$2 last=$3
	awk -F, -v s="$id" -v a="$first" -v b="$last" 'NR == 1 || !($1 == s && $6 >= a && $6 <= b)' \
		"$EXP_CSV" >"$EXP_CSV.tmp"
	mv -- "$EXP_CSV.tmp" "$EXP_CSV"
}

# Interleaved: the first start of every system, then the second, ..., so
# slow drift of the machine hits every system alike.
exp_matrix() {
	local selected=$1 reps=$2 t0=$SECONDS rep k=0 n row id fn
	local -a rows
	mapfile -t rows <<<"$selected"
	n=$(((reps + EXP_REPS_PER_START - 1) / EXP_REPS_PER_START * ${#rows[@]}))
	for ((rep = 1; rep <= reps; rep += EXP_REPS_PER_START)); do
		for row in "${rows[@]}"; do
			read -r id fn _ <<<"$row"
			k=$((k + 1))
			[[ -z ${EXP_SKIP[$id]:-} ]] || continue
			# "[pktrate] tun rep 2/5, test 7/35 (elapsed 34 s, about 3 min left)"
			printf '[%s] %s rep %s/%d, test %d/%d (elapsed %d s, %s)%s\n' "$MEAS_TAG" "$id" \
				"$(exp_rep_span "$rep")" "$reps" "$k" "$n" "$(meas_elapsed)" \
				"$(meas_eta_text $((k - 1)) "$n" $((SECONDS - t0)) "$EXP_TEST_BUDGET")" \
				"$(exp_competitors_note)"
			exp_test "$id" "$fn" "$rep"
		done
	done
}

# "2" or "1-5": the repetitions a test starting at REP measures.
exp_rep_span() {
	local last
	last=$(exp_last_rep "$1")
	if ((last == $1)); then echo "$1"; else echo "$1-$last"; fi
}

exp_competitors_note() {
	local others
	others=$(meas_competitors | wc -l)
	((others == 0)) || echo ", warning: $others other iperf3/tunlab/VPN processes running"
}

# exp_filter_applies SELECTED [--why]: the rows the experiment applies to;
# with --why, instead, a "not-applicable.ID: why" line for each other row.
exp_filter_applies() {
	local selected=$1 mode=${2:-} id fn needs label why
	while read -r id fn needs label; do
		[[ -n $id ]] || continue
		why=""
		declare -F exp_applies >/dev/null && why=$(exp_applies "$id" "$needs")
		if [[ -z $why && -z $mode ]]; then
			printf '%s %s %s %s\n' "$id" "$fn" "$needs" "$label"
		elif [[ -n $why && -n $mode ]]; then
			printf 'not-applicable.%s: %s\n' "$id" "$why"
		fi
	done <<<"$selected"
	return 0
}

# exp_default_selection SELECTED [--why]: without --systems, the rows minus
# EXP_DEFAULT_EXCLUDE; with --why, an "excluded.ID: why" line for each of those.
exp_default_selection() {
	local selected=$1 mode=${2:-} id rest
	local out=" $EXP_DEFAULT_EXCLUDE "
	# systems.sh's opt-in rows, unless this experiment opts in.
	for id in ${SYS_OPT_IN_ROWS:-}; do
		[[ " $EXP_OPT_IN " == *" $id "* ]] || out+="$id "
	done
	while read -r id rest; do
		[[ -n $id ]] || continue
		if [[ $EXP_SYSTEMS != all || $out != *" $id "* ]]; then
			[[ -n $mode ]] || printf '%s %s\n' "$id" "$rest"
		elif [[ -n $mode ]]; then
			printf 'excluded.%s: not in the default run (its budget); --systems %s measures it\n' "$id" "$id"
		fi
	done <<<"$selected"
	return 0
}

# Replaces the stored data of this experiment with the staged run.
exp_publish() {
	local results=$1
	mkdir -p "$results/raw"
	rm -rf -- "${results:?}/raw/$EXP_NAME"
	mv -- "$EXP_STAGE/raw" "$results/raw/$EXP_NAME"
	mv -- "$EXP_CSV" "$EXP_STAGE/$EXP_NAME.meta" "$results/"
}

exp_parse() {
	while (($#)); do
		case $1 in
		--tunlab) # on an inventory's hosts, the one each host built
			[[ $TL_BACKEND == hosts ]] || TUNLAB=$(realpath -e "${2:?--tunlab needs a path}"); shift 2 ;;
		--inventory) shift 2 ;; # loaded by netns.sh (tl_inventory_reexec)
		--quick) EXP_QUICK=1 EXP_REPS=$EXP_QUICK_REPS EXP_SECONDS=$EXP_QUICK_SECONDS; shift ;;
		--reps) EXP_REPS=${2:-}; shift 2 ;;
		--seconds) EXP_SECONDS=${2:-}; shift 2 ;;
		--systems) EXP_SYSTEMS=${2:-}; shift 2 ;;
		--results) EXP_RESULTS=$(realpath -m "${2:?--results needs a directory}"); shift 2 ;;
		-h | --help) exp_usage; exit 0 ;;
		*)
			if (($# >= 2)) && declare -F exp_flag >/dev/null && exp_flag "$1" "$2"; then
				shift 2
			else
				echo "$EXP_NAME: unknown argument '$1'" >&2
				exp_usage >&2
				exit 2
			fi
			;;
		esac
	done
}

exp_main() {
	local selected skipped not_applicable excluded
	tl_inventory_reexec "$0" "$@"
	EXP_SYSTEMS=all EXP_RESULTS=$MEAS_ROOT/results
	exp_parse "$@"
	export TUNLAB
	meas_check_int --reps "$EXP_REPS" 1 100
	meas_check_int --seconds "$EXP_SECONDS" 1 600
	declare -F exp_one >/dev/null && EXP_REPS_PER_START=1
	((EUID == 0)) || meas_die "needs root (network namespaces)"
	meas_need_tools ip iperf3 jq iptables ping
	selected=$(sys_select "$EXP_SYSTEMS") || exit 2
	[[ $EXP_SYSTEMS == all ]] || sys_refuse_backend "$selected" || exit 2
	excluded=$(exp_default_selection "$selected" --why)
	selected=$(exp_default_selection "$selected")
	skipped=$(sys_skipped "$selected")
	selected=$(sys_available "$selected")
	not_applicable=$(exp_filter_applies "$selected" --why)
	selected=$(exp_filter_applies "$selected")
	[[ -n $selected ]] || meas_die "none of the selected systems can run this experiment here"

	tl_init
	exp_traps
	[[ $TL_BACKEND != hosts ]] || tl_hosts_prepare || meas_die "the hosts of $TL_INVENTORY are not ready"
	EXP_STAGE=$TL_TMP/stage
	EXP_RAW=$EXP_STAGE/raw
	EXP_CSV=$EXP_STAGE/$EXP_NAME.csv
	mkdir -p "$EXP_RAW"
	echo "$MEAS_CSV_HEADER" >"$EXP_CSV"
	meas_write_meta "$EXP_STAGE/$EXP_NAME.meta" \
		"experiment: $EXP_NAME ($EXP_TITLE)" \
		"$(exp_parameters)" \
		"repetitions: $EXP_REPS" "repetitions per system start: $EXP_REPS_PER_START" \
		"seconds: $EXP_SECONDS" "quick: $EXP_QUICK" \
		"systems: $(awk '{ printf "%s ", $1 }' <<<"$selected")" \
		"$(meas_meta_systems "$selected")" ${skipped:+"$skipped"} \
		${not_applicable:+"$not_applicable"} ${excluded:+"$excluded"}
	meas_warn_competitors
	meas_progress "$(wc -l <<<"$selected") systems x $EXP_REPS reps ($EXP_REPS_PER_START per start), about $(((EXP_TEST_BUDGET * (EXP_REPS + EXP_REPS_PER_START - 1) / EXP_REPS_PER_START * $(wc -l <<<"$selected") + 30) / 60)) min"
	exp_matrix "$selected" "$EXP_REPS"
	((EXP_PASSED > 0)) || meas_die "no test succeeded; the stored data is left as it was"
	exp_publish "$EXP_RESULTS"
	((EXP_FAILED == 0)) || meas_progress "warning: $EXP_FAILED test(s) failed twice: see failed.* in $EXP_NAME.meta"
	meas_progress "wrote ${EXP_RESULTS#"$MEAS_ROOT"/}/$EXP_NAME.csv, $EXP_NAME.meta, raw/$EXP_NAME/"
}
