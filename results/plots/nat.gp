# SPDX-License-Identifier: MIT
# Through a NAT router: set-up time, and the time to recover after the mapping is flushed or moved to a new port: median bars, min-max whiskers.
# data: plots/nat.dat
#
# plots/nat.dat comes from nat.csv (plots.sh): id "name" then median min
# max n of setup_ms (start), of recovery_ms after a conntrack flush and
# after a new source port, then the most echoes lost in each of the two.
if (!exists("outfile")) outfile = "plots/nat.png"
load "plots/common.gpi"
data = "plots/nat.dat"

stats data using 0 nooutput name "ROWS"
set title "NAT router: start to first echo; recovery after a lost mapping (echoes 10/s); median, min–max"
set ylabel "milliseconds (log scale)"
set logscale y
set yrange [1 : *]
set xrange [-0.6 : ROWS_records - 0.4]
set boxwidth 0.26
set key outside top center horizontal

plot data using ($0 - 0.28):3:(0.26):xtic(ticname(strcol(1))) with boxes lc rgb "#4477aa" title "set-up (start → first echo)", \
     ''   using ($0):7:(0.26) with boxes lc rgb "#ee6677" title "recovery after conntrack flush", \
     ''   using ($0 + 0.28):11:(0.26) with boxes lc rgb "#228833" title "recovery after a new source port", \
     ''   using ($0 - 0.28):3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0):7:8:9 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.28):11:12:13 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.28):13:(sprintf("lost pings, max: %d / %d", $15, $16)) with labels offset 0,0.8 font ",8" notitle
