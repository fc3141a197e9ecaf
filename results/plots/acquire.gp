# SPDX-License-Identifier: MIT
# Acquire: a burst of UDP datagrams from a cold start (tunlab --lazy, wireguard-go, OpenVPN): how many arrive, and when the first does.
# data: plots/acquire.dat
#
# plots/acquire.dat comes from acquire.csv (plots.sh): id "name" then
# median min max n of received, median min max of first_ms.
if (!exists("outfile")) outfile = "plots/acquire.png"
load "plots/common.gpi"
data = "plots/acquire.dat"

stats data using 7 nooutput name "HI"
stats data using 6 nooutput name "REPS"

set multiplot layout 1,2 title sprintf("A burst from a cold start, median of %d, whiskers min–max", REPS_max)
set xrange [-0.6 : HI_records - 0.4]
set boxwidth 0.6
set key top right

set ylabel "datagrams of the burst at dst"
set yrange [0 : 115]
plot data using 0:3:(0.6):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using 0:3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using 0:5:(sprintf("%.0f", $3)) with labels offset 0,0.7 font ",9" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab", \
     NaN with boxes lc rgb hex(ref_dark) title "reference"

set ylabel "first datagram at dst, ms after the burst began"
set yrange [0 : HI_max * 1.2]
plot data using 0:7:(0.6):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using 0:7:8:9 with yerrorbars lc rgb "#000000" pt -1 notitle
unset multiplot
