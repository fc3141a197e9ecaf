# SPDX-License-Identifier: MIT
# Failover: longest gap in a 100/s ping cli -> dst when the active server is killed (kill -9) or hands over (planned): median bars, min-max whiskers, log scale.
# data: plots/failover.dat
#
# plots/failover.dat comes from failover.csv (plots.sh): id "name", then
# median min max n of outage_ms for kill9 and for switchover, then min max
# of inner_tcp_survived after kill9 (1 1: every transfer survived; 0 0:
# none did). A system without ICMP (the proxy) has no bars, only its label.
if (!exists("outfile")) outfile = "plots/failover.png"
load "plots/common.gpi"
data = "plots/failover.dat"

stats data using 0 nooutput name "ROWS"
stats data using 6 nooutput name "REPS"

tcp(lo, hi) = "kill -9: inner TCP " . (lo == 1 ? "kept" : (hi == 0 ? "lost" : "kept in some"))

set title sprintf("Longest ping gap cli → dst around the failure (100/s), median of %d, whiskers min–max", REPS_max)
set ylabel "milliseconds (log scale)"
set logscale y
set yrange [10 : 20000]
set xrange [-0.6 : ROWS_records - 0.4]
set boxwidth 0.35
set key below horizontal maxrows 1 font ",9"
set bmargin 6

plot data using ($0 - 0.19):3:(0.35):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using ($0 - 0.19):3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.19):7:(0.35):(bar_light(strcol(2))) with boxes lc rgb variable notitle, \
     ''   using ($0 + 0.19):7:8:9 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using 0:(12000):(tcp($11, $12)) with labels font ",9" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "kill -9 (tunlab)", \
     NaN with boxes lc rgb hex(tunlab_light) title "planned switchover (tunlab)", \
     NaN with boxes lc rgb hex(ref_dark) title "kill -9 (reference)", \
     NaN with boxes lc rgb hex(ref_light) title "planned switchover (reference)"
