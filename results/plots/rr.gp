# SPDX-License-Identifier: MIT
# TCP request/response transactions per second (1 byte each way, one connection): median bars, min-max whiskers.
# data: plots/rr.dat
#
# plots/rr.dat comes from rtt.csv (plots.sh): id "name" then median min
# max n of rr_rate, the median rr_p50_us and the median rr_p99_us.
if (!exists("outfile")) outfile = "plots/rr.png"
load "plots/common.gpi"
data = "plots/rr.dat"

stats data using 5 nooutput name "HI"
stats data using 6 nooutput name "REPS"

set title sprintf("TCP request/response cli → dst (tcp_rr, 1 byte), median of %d runs; labels: latency p50 / p99", REPS_max)
set ylabel "thousand transactions/s"
set yrange [0 : HI_max / 1000 * 1.25]
set xrange [-0.6 : HI_records - 0.4]
set boxwidth 0.6
set key top right

plot data using 0:($3 / 1000):(0.6):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using 0:($3 / 1000):($4 / 1000):($5 / 1000) with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using 0:($5 / 1000):(sprintf("%.0f / %.0f µs", $7, $8)) with labels offset 0,0.7 font ",8" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab", \
     NaN with boxes lc rgb hex(ref_dark) title "reference"
