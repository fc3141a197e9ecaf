# SPDX-License-Identifier: MIT
# Setup time: from a system's start to the first echo it carries cli -> dst: median bars, min-max whiskers.
# data: plots/setup.dat
#
# plots/setup.dat comes from setup.csv (plots.sh): id "name" then median
# min max n of setup_ms.
if (!exists("outfile")) outfile = "plots/setup.png"
load "plots/common.gpi"
data = "plots/setup.dat"

stats data using 5 nooutput name "HI"
stats data using 6 nooutput name "REPS"

set title sprintf("Start to first answered echo cli → dst (server and client started), median of %d, whiskers min–max", REPS_max)
set ylabel "milliseconds"
set yrange [0 : HI_max * 1.2]
set xrange [-0.6 : HI_records - 0.4]
set boxwidth 0.6
set key top right

plot data using 0:3:(0.6):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using 0:3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using 0:5:(sprintf("%.0f", $3)) with labels offset 0,0.7 font ",9" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab", \
     NaN with boxes lc rgb hex(ref_dark) title "reference"
