# SPDX-License-Identifier: MIT
# TCP bulk throughput cli -> dst per system: median bar, min-max whiskers.
# data: throughput.summary.dat
#
# Rendered by experiments/lib/plots.sh from results/ (the working
# directory), which sets termspec and outfile; the data file is made by the
# same script from throughput.csv: system "label" median min max repetitions.
if (!exists("termspec")) termspec = "pngcairo size 900,560 font 'Sans,11'"
if (!exists("outfile")) outfile = "plots/throughput.png"
datafile = "throughput.summary.dat"

set terminal @termspec
set output outfile

stats datafile using 4 nooutput name "LO"
stats datafile using 5 nooutput name "HI"
stats datafile using 6 nooutput name "REPS"

# One slow system next to veth speed would flatten every other bar.
if (LO_min > 0 && HI_max / LO_min > 10) {
	set logscale y
	set yrange [LO_min / 2 : HI_max * 4]
	scale_note = " (log scale)"
} else {
	set yrange [0 : HI_max * 1.18]
	scale_note = ""
}

set title sprintf("TCP bulk throughput cli -> dst, 1 stream (iperf3), median of n=%d runs, whiskers: min-max", REPS_max)
set ylabel "throughput (Gbit/s)".scale_note
set xlabel "system"
set xrange [-0.6 : LO_records - 0.4]
set grid ytics
set style fill solid 0.55 border -1
set boxwidth 0.55
unset key
set xtics scale 0

plot datafile using 0:3:xtic(2) with boxes lc rgb "#4477aa", \
     ''       using 0:3:4:5 with yerrorbars lc rgb "#222222" lw 1.5 pt 7 ps 0.5, \
     ''       using 0:5:(sprintf("%.2f", $3)) with labels offset 0,0.9
