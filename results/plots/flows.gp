# SPDX-License-Identifier: MIT
# TCP bulk throughput cli -> dst against the number of parallel flows (iperf3 -P), one curve per system.
# data: plots/flows.dat
#
# plots/flows.dat comes from flows.csv (plots.sh): a block per system,
# "name" then "flows median min max" lines.
if (!exists("outfile")) outfile = "plots/flows.png"
load "plots/common.gpi"
data = "plots/flows.dat"

stats data using (0) nooutput name "B"
set title "TCP throughput cli → dst against parallel flows (iperf3 -P N), median, whiskers min–max; n = repetitions per point"
set xlabel "parallel TCP flows"
set ylabel "Gbit/s (log scale)"
set logscale xy
set logscale x 2
set xtics scale 1
set grid xtics ytics lc rgb "#e0e0e0"
set bmargin 4
set key outside right center font ",9"

plot for [i = 0:B_blocks - 1] data index i using 1:2:3:4 with yerrorlines title columnheader(1)
