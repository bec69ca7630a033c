#!/usr/bin/env bash
# Exercises the Dockerfile's build without a Docker engine: checks that the
# builder stage builds with scripts/build-static.sh and that the runtime stage
# copies exactly that output, runs the same script here, and checks that the
# result is a static ELF (the runtime image, distroless/static, has no libc
# and no dynamic loader).
#
# Usage: scripts/docker-build-check.sh [OUTPUT_DIR]
# The binary is left at OUTPUT_DIR/kongbot (default: a temporary directory,
# removed on exit).
set -euo pipefail
cd "$(dirname "$0")/.."

dockerfile=Dockerfile
# The build line, with continuation lines joined, e.g.
#   RUN --mount=type=cache,target=... scripts/build-static.sh /out/kongbot
run_line=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" | grep -E '^RUN .*scripts/build-static\.sh' || true)
if [ "$(printf '%s\n' "$run_line" | grep -c . || true)" -ne 1 ]; then
  echo "docker-build-check: $dockerfile must have exactly one RUN line calling scripts/build-static.sh; found:" >&2
  printf '%s\n' "${run_line:-<none>}" >&2
  exit 1
fi
image_out=$(printf '%s\n' "$run_line" | sed -E 's#.*scripts/build-static\.sh[[:space:]]+([^[:space:]]+).*#\1#')
copy_re="^COPY --from=build([[:space:]]+--[^[:space:]]+)*[[:space:]]+${image_out}[[:space:]]+/kongbot[[:space:]]*\$"
if ! grep -Eq "$copy_re" "$dockerfile"; then
  echo "docker-build-check: $dockerfile builds $image_out but its runtime stage does not COPY --from=build $image_out /kongbot" >&2
  exit 1
fi

if [ $# -ge 1 ]; then
  outdir=$1
  mkdir -p "$outdir"
else
  outdir=$(mktemp -d)
  trap 'rm -rf "$outdir"' EXIT
fi
bin=$outdir/kongbot

echo "docker-build-check: $dockerfile runs: ${run_line#RUN }"
echo "docker-build-check: running scripts/build-static.sh $bin"
start=$(date +%s)
scripts/build-static.sh "$bin"
echo "docker-build-check: built in $(( $(date +%s) - start ))s, $(wc -c <"$bin") bytes"
go run ./internal/shiptest/staticcheck "$bin"
