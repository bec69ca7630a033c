#!/usr/bin/env bash
# Fuzzes the /kong grammar (commands.FuzzParse) from its seed corpus in
# commands/testdata/fuzz/FuzzParse. FUZZTIME overrides the 60 s default.
# New failing inputs are written to that directory: commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./commands -run '^$' -fuzz FuzzParse -fuzztime "${FUZZTIME:-60s}"
