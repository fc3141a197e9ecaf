# SPDX-License-Identifier: MIT
# Start time, kernel objects and RTT through the table against the number of policy entries (non-aggregatable prefixes), one curve per frontend.
# data: plots/policyscale_setup.dat
# data: plots/policyscale_objects.dat
# data: plots/policyscale_rtt.dat
#
# All three come from policyscale.csv (plots.sh): a block per system,
# "name" then "prefixes median min max" lines, of setup_ms, of objects
# (routes + policy/netfilter rules + devices the client added in cli) and
# of rtt_us (the median RTT of one start's echoes to the last entry's host;
# the proxy carries no ICMP: its tcp_rr figure, rr_us, is in the CSV only).
if (!exists("outfile")) outfile = "plots/policyscale.png"
load "plots/common.gpi"

stats "plots/policyscale_setup.dat" using (0) nooutput name "B"
set multiplot layout 1, 3 title "Scaling with policy entries (protect dst=P, every other /24: nothing aggregates); n = repetitions per point"
set logscale x
set xtics scale 1
set grid xtics ytics lc rgb "#e0e0e0"
set xlabel "policy entries"
set bmargin 4
set key font ",9" spacing 0.9

set title "start to first answer from the last entry"
set key bottom right
set logscale y
set ylabel "milliseconds (log scale)"
plot for [i = 0:B_blocks - 1] "plots/policyscale_setup.dat" index i using 1:2:3:4 with yerrorlines title columnheader(1)

set title "kernel objects added in cli"
set key top left
set ylabel "routes + rules + devices (log scale)"
plot for [i = 0:B_blocks - 1] "plots/policyscale_objects.dat" index i using 1:2 with linespoints title columnheader(1)

set title "echo RTT to the last entry's host"
set key top left
unset logscale y
set yrange [0:*]
set ylabel "microseconds (median per start)"
plot for [i = 0:B_blocks - 1] "plots/policyscale_rtt.dat" index i using 1:2:3:4 with yerrorlines title columnheader(1)
unset multiplot
