# SPDX-License-Identifier: MIT
# RTT cli -> dst idle and under a 4-stream TCP upload (flent's RRUL idea): median bars, p10-p90 whiskers.
# data: plots/rrul.dat
#
# plots/rrul.dat comes from rrul.csv (plots.sh): id "name" then median p10
# p90 n of the idle samples, the same of the samples under load.
if (!exists("outfile")) outfile = "plots/rrul.png"
load "plots/common.gpi"
data = "plots/rrul.dat"

stats data using 4 nooutput name "LO"
stats data using 9 nooutput name "HI"
set title "RTT cli → dst idle and during a 4-stream TCP upload (ping -i 0.01), median, whiskers p10–p90"
set ylabel "RTT (ms, log scale)"
set logscale y
set yrange [LO_min / 2 : HI_max * 3]
set xrange [-0.6 : LO_records - 0.4]
set boxwidth 0.36
set key outside top center horizontal maxcols 2

plot data using ($0 - 0.19):3:(0.36):(bar_light(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using ($0 + 0.19):7:(0.36):(bar_dark(strcol(2))) with boxes lc rgb variable notitle, \
     ''   using ($0 - 0.19):3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.19):7:8:9 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.19):9:(sprintf("%.2g", $7)) with labels offset 0,0.7 font ",8" notitle, \
     NaN with boxes lc rgb hex(tunlab_light) title "tunlab, idle", \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab, under load", \
     NaN with boxes lc rgb hex(ref_light) title "reference, idle", \
     NaN with boxes lc rgb hex(ref_dark) title "reference, under load"
