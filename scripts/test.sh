#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# It installs what the tests need on a fresh Debian/Ubuntu machine with Go:
# PostgreSQL server binaries and HAProxy from Debian's packages, and Chromium
# (with a colour emoji font) for localslack's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v haproxy >/dev/null || need+=(haproxy)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || need+=(postgresql)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed:"; echo "$bad"; exit 1; fi
echo "== go vet"
go vet ./...
# The helm chart: lint and template with the real helm (built once into
# ~/.cache/kongbot-tools, a few minutes the first time). KONGBOT_SKIP_HELM=1
# skips it, and the chart tests in internal/shiptest too.
if [ "${KONGBOT_SKIP_HELM:-}" != 1 ]; then
  echo "== helm lint + template"
  scripts/helm-check.sh
fi
echo "== go test -race"
go test -race -timeout 25m ./...
# The /kong grammar's fuzz target, 60 s from its seed corpus.
# KONGBOT_SKIP_FUZZ=1 skips it (e.g. for a quick local run).
if [ "${KONGBOT_SKIP_FUZZ:-}" != 1 ]; then
  echo "== fuzz commands.FuzzParse"
  scripts/fuzz.sh
fi
