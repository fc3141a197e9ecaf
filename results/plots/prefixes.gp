# SPDX-License-Identifier: MIT
# Setup time and kernel objects in cli against the number of non-aggregatable remote prefixes, one curve per system.
# data: plots/prefixes_setup.dat
# data: plots/prefixes_objects.dat
#
# Both files come from prefixes.csv (plots.sh): a block per system, "name"
# then "prefixes median min max" lines, of setup_ms and of objects
# (routes + policy/netfilter rules + devices the system added in cli).
if (!exists("outfile")) outfile = "plots/prefixes.png"
load "plots/common.gpi"

stats "plots/prefixes_setup.dat" using (0) nooutput name "B"
set multiplot layout 1, 2 title "Scaling with remote prefixes (every other /24: nothing aggregates); n = repetitions per point"
set logscale xy
set xtics scale 1
set grid xtics ytics lc rgb "#e0e0e0"
set xlabel "remote prefixes"
set bmargin 4
set key font ",9" spacing 0.9

set title "start to first echo from the last prefix"
set key bottom right
set ylabel "milliseconds (log scale)"
plot for [i = 0:B_blocks - 1] "plots/prefixes_setup.dat" index i using 1:2:3:4 with yerrorlines title columnheader(1)

set title "kernel objects added in cli"
set key top left
set ylabel "routes + rules + devices (log scale)"
plot for [i = 0:B_blocks - 1] "plots/prefixes_objects.dat" index i using 1:2 with linespoints title columnheader(1)
unset multiplot
