#!/usr/bin/env bash
# Fuzzes the /kong grammar (commands.FuzzParse) from its seed corpus in
# commands/testdata/fuzz/FuzzParse. FUZZTIME overrides the 60 s default.
# New failing inputs are written to that directory: commit them with the fix.
#
# Minimizing each new interesting input is capped at 2 s: with Go's default
# (60 s) both workers sat minimizing after the first seconds and the 60 s run
# executed ~99k inputs instead of ~1M.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./commands -run '^$' -fuzz FuzzParse -fuzztime "${FUZZTIME:-60s}" -fuzzminimizetime 2s
