# SPDX-License-Identifier: MIT
# Highest UDP packet rate cli -> dst with 64-byte payloads at < 1% loss: median bars, min-max whiskers.
# data: plots/pktrate.dat
#
# plots/pktrate.dat comes from pktrate.csv (plots.sh): id "name" then
# median min max n of max_pps (the best delivered rate of a search step
# that lost under 1%).
if (!exists("outfile")) outfile = "plots/pktrate.png"
load "plots/common.gpi"
data = "plots/pktrate.dat"

stats data using 5 nooutput name "HI"
stats data using 6 nooutput name "REPS"

set title sprintf("UDP packets/s cli → dst, 64-byte payloads, < 1%% loss (iperf3 -u), median of %d searches, whiskers min–max", REPS_max)
set ylabel "thousand packets/s delivered"
set yrange [0 : HI_max / 1000 * 1.2]
set xrange [-0.6 : HI_records - 0.4]
set boxwidth 0.6
set key top right

plot data using 0:($3 / 1000):(0.6):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using 0:($3 / 1000):($4 / 1000):($5 / 1000) with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using 0:($5 / 1000):(sprintf("%.0fk", $3 / 1000)) with labels offset 0,0.7 font ",9" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab", \
     NaN with boxes lc rgb hex(ref_dark) title "reference"
