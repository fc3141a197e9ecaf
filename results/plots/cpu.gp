# SPDX-License-Identifier: MIT
# CPU seconds (user + system) per GB carried, at each tunnel end, 1 TCP stream: median bars, min-max whiskers.
# data: plots/cpu.dat
#
# plots/cpu.dat comes from throughput.csv (plots.sh): id "name" then
# median min max of cpu_client, the same of cpu_server (streams=1).
# tunlab's figures come from its --stats, the references' from /proc.
if (!exists("outfile")) outfile = "plots/cpu.png"
load "plots/common.gpi"
data = "plots/cpu.dat"

stats data using 5 nooutput name "C"
stats data using 8 nooutput name "S"
hi = C_max > S_max ? C_max : S_max

set title "CPU per GB carried at each tunnel end (1 TCP stream cli → dst), median, whiskers min–max"
set ylabel "CPU seconds (user + system) per GB"
set yrange [0 : hi * 1.2]
set xrange [-0.6 : C_records - 0.4]
set boxwidth 0.36
set key outside top center horizontal maxcols 2

plot data using ($0 - 0.19):3:(0.36):(bar_dark(strcol(2))):xtic(ticname(strcol(1))) with boxes lc rgb variable notitle, \
     ''   using ($0 + 0.19):6:(0.36):(bar_light(strcol(2))) with boxes lc rgb variable notitle, \
     ''   using ($0 - 0.19):3:4:5 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 + 0.19):6:7:8 with yerrorbars lc rgb "#000000" pt -1 notitle, \
     ''   using ($0 - 0.19):5:(sprintf("%.2f", $3)) with labels offset 0,0.7 font ",8" notitle, \
     ''   using ($0 + 0.19):8:(sprintf("%.2f", $6)) with labels offset 0,0.7 font ",8" notitle, \
     NaN with boxes lc rgb hex(tunlab_dark) title "tunlab client (cli)", \
     NaN with boxes lc rgb hex(tunlab_light) title "tunlab server (srv)", \
     NaN with boxes lc rgb hex(ref_dark) title "reference client", \
     NaN with boxes lc rgb hex(ref_light) title "reference server"
