#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# commit.sh: the commit the code came from, "-dirty" when the code differs from it.
#
# One definition for `tunlab --version` (the Makefile) and the run
# metadata (measure.sh). results/ and the paper's PDF are what a run
# rewrites: an experiment that starts after another has published is still
# measuring that commit, so they do not count. Prints "unknown" outside git.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null) || { echo unknown; exit 0; }
git -C "$root" diff --quiet HEAD -- . ':(exclude)results' ':(exclude)paper/tunlab.pdf' 2>/dev/null ||
	commit+=-dirty
echo "$commit"
