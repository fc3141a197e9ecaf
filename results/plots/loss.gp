# SPDX-License-Identifier: MIT
# Single-stream TCP goodput cli -> dst against the router's loss rate, without and with 20 ms added RTT, one curve per system.
# data: plots/loss_goodput_rtt0.dat
# data: plots/loss_goodput_rtt20.dat
#
# plots/loss_goodput_rttR.dat come from loss.csv (plots.sh): a block per
# system, "name" then "loss% median min max" lines, at R ms added RTT.
if (!exists("outfile")) outfile = "plots/loss.png"
load "plots/common.gpi"

# 0 % sits one decade left of 0.1 %: the rates are 0, 0.1 and 1 %.
xpos(x) = x <= 0 ? 0 : log10(x) + 2
set multiplot layout 1, 2 title "Single-stream TCP goodput cli → dst through a lossy router (iperf3 -P 1), median, whiskers min–max"
set xlabel "packets dropped by the router, each way (%)"
set xtics ("0" 0, "0.1" 1, "1" 2) scale 1
set xrange [-0.3 : 2.3]
set logscale y
set grid xtics ytics lc rgb "#e0e0e0"
set key bottom left font ",8"

do for [rtt in "0 20"] {
	data = sprintf("plots/loss_goodput_rtt%s.dat", rtt)
	stats data using (0) nooutput name "B"
	set title sprintf("+%s ms round trip", rtt)
	set ylabel "Mbit/s (log scale)"
	plot for [i = 0:B_blocks - 1] data index i using (xpos($1)):2:3:4 with yerrorlines title columnheader(1)
	unset key
}
unset multiplot
