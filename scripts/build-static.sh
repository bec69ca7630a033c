#!/bin/sh
# The one build command for the kongbot binary that ships: the Dockerfile runs
# this script, and scripts/docker-build-check.sh runs it here (there is no
# Docker engine in CI), so the two cannot drift apart.
#
# CGO off gives a static binary that runs on distroless/static (no libc);
# -trimpath keeps build paths out of it; -s -w drops the symbol table and
# DWARF, which only debuggers use.
#
# Usage: scripts/build-static.sh OUTPUT
# POSIX sh on purpose: the builder image has no guarantee of bash.
set -eu
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTPUT" >&2
  exit 2
fi
case $1 in
  /*) out=$1 ;;
  *) out=$PWD/$1 ;;
esac
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out" ./cmd/kongbot
