# SPDX-License-Identifier: MIT
# TCP bulk throughput cli -> dst per system, 1 and 4 streams: median bars, min-max whiskers.
# data: plots/throughput.dat
#
# plots/throughput.dat comes from throughput.csv (plots.sh): id "name"
# then median min max n for streams=1, the same for streams=4.
if (!exists("outfile")) outfile = "plots/throughput.png"
load "plots/common.gpi"
data = "plots/throughput.dat"

stats data using 4 nooutput name "LO1"
stats data using 5 nooutput name "HI1"
stats data using 9 nooutput name "HI4"
stats data using 6 nooutput name "REPS"
hi = HI1_max > HI4_max ? HI1_max : HI4_max
if (LO1_min > 0 && hi / LO1_min > 10) {
	set logscale y
	set yrange [LO1_min / 1.5 : hi * 2]
	set ytics (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200)
	set grid ytics mytics
	y_note = " (log scale)"
} else {
	set yrange [0 : hi * 1.2]
}

set title sprintf("TCP bulk throughput cli → dst (iperf3), median of %d runs, whiskers min–max", REPS_max)
set ylabel "Gbit/s".y_note
set xrange [-0.6 : LO1_records - 0.4]
set boxwidth 0.36
set key outside top center horizontal maxcols 2

plot data using ($0 - 0.19):3:(0.36):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using ($0 + 0.19):7:(0.36):(bar_light(strcol(2))) with boxes lc rgb variable notitle, \
     ''   using ($0 - 0.19):3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.19):7:8:9 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 - 0.19):5:(sprintf("%.2g", $3)) with labels offset 0,0.7 font ",8" notitle, \
     ''   using ($0 + 0.19):9:(sprintf("%.2g", $7)) with labels offset 0,0.7 font ",8" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab, 1 stream", \
     NaN with boxes lc rgb hex(tunlab_light) title "tunlab, 4 streams", \
     NaN with boxes lc rgb hex(ref_dark) title "reference, 1 stream", \
     NaN with boxes lc rgb hex(ref_light) title "reference, 4 streams"
