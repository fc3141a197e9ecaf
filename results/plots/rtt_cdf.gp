# SPDX-License-Identifier: MIT
# Idle RTT cli -> dst: empirical CDF of every ping sample, one curve per system.
# data: plots/rtt_cdf.dat
#
# plots/rtt_cdf.dat comes from rtt.csv (plots.sh): a block per system,
# "name" then "rtt_ms fraction" lines.
if (!exists("outfile")) outfile = "plots/rtt_cdf.png"
load "plots/common.gpi"
data = "plots/rtt_cdf.dat"

stats data using (0) nooutput name "B"
set title "Idle RTT cli → dst (ping -i 0.01, every sample of every run)"
set xlabel "RTT (ms, log scale)"
set ylabel "fraction of samples ≤ RTT"
set logscale x
set yrange [0 : 1.02]
set grid xtics ytics lc rgb "#e0e0e0"
set xtics scale 1
set bmargin 4
set key bottom right

plot for [i = 0:B_blocks - 1] data index i using 1:2 with steps lw 2 title columnheader(1)
