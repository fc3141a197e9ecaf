# SPDX-License-Identifier: MIT
# RTT cli -> dst under a single-stream TCP upload against the router's loss rate, without and with 20 ms added RTT.
# data: plots/loss_rtt_rtt0.dat
# data: plots/loss_rtt_rtt20.dat
#
# plots/loss_rtt_rttR.dat come from loss.csv (plots.sh): a block per
# system, "name" then "loss% median min max" lines of the echoes' RTT
# under load, at R ms added RTT. The proxy carries no echo: no curve.
if (!exists("outfile")) outfile = "plots/loss_rtt.png"
load "plots/common.gpi"

xpos(x) = x <= 0 ? 0 : log10(x) + 2
set multiplot layout 1, 2 title "RTT cli → dst during a single-stream upload through a lossy router (ping -i 0.01), median, whiskers min–max"
set xlabel "packets dropped by the router, each way (%)"
set xtics ("0" 0, "0.1" 1, "1" 2) scale 1
set xrange [-0.3 : 2.3]
set logscale y
set grid xtics ytics lc rgb "#e0e0e0"
set key top left font ",8"

do for [rtt in "0 20"] {
	data = sprintf("plots/loss_rtt_rtt%s.dat", rtt)
	stats data using (0) nooutput name "B"
	set title sprintf("+%s ms round trip", rtt)
	set ylabel "RTT under load (ms, log scale)"
	plot for [i = 0:B_blocks - 1] data index i using (xpos($1)):2:3:4 with yerrorlines title columnheader(1)
	unset key
}
unset multiplot
