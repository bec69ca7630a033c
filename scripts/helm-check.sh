#!/usr/bin/env bash
# Lints and renders the helm chart (helm/kongbot) with the real helm, built
# from its Go module without adding it to go.mod, once per machine into a
# cache directory (building it takes minutes; later runs reuse the binary).
#
# Usage: scripts/helm-check.sh [OUTPUT_DIR]
#   Renders the default values to OUTPUT_DIR/default.yaml and the HTTP-mode
#   values (values-http.yaml) to OUTPUT_DIR/http.yaml (default: a temporary
#   directory, removed on exit). The Go test in internal/shiptest decodes
#   those files strictly into Kubernetes API types.
# Environment:
#   KONGBOT_TOOLS_DIR  where tools are cached (default ~/.cache/kongbot-tools)
#   HELM               a helm binary to use instead of building one
#   KONGBOT_HELM_PATH_ONLY=1  only build (if needed) and print helm's path
set -euo pipefail
cd "$(dirname "$0")/.."

helm_version=v3.22.0
tools=${KONGBOT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kongbot-tools}
helm=${HELM:-$tools/helm-$helm_version/helm}

if [ ! -x "$helm" ]; then
  echo "helm-check: building helm $helm_version into $(dirname "$helm") (once; takes a few minutes)" >&2
  mkdir -p "$(dirname "$helm")"
  start=$(date +%s)
  # Outside the module so the build neither reads nor changes go.mod; a
  # partial binary never lands at the final path.
  tmpbin=$(mktemp -d)
  (cd "$tmpbin" && GOFLAGS= GOBIN="$tmpbin" go install "helm.sh/helm/v3/cmd/helm@$helm_version")
  mv "$tmpbin/helm" "$helm"
  rm -rf "$tmpbin"
  echo "helm-check: built helm in $(( $(date +%s) - start ))s" >&2
fi
if [ "${KONGBOT_HELM_PATH_ONLY:-}" = 1 ]; then
  echo "$helm"
  exit 0
fi

chart=helm/kongbot
if [ $# -ge 1 ]; then
  out=$1
  mkdir -p "$out"
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

echo "== helm lint (default values)"
"$helm" lint --strict "$chart"
echo "== helm lint (values-http.yaml)"
"$helm" lint --strict "$chart" -f "$chart/values-http.yaml"
echo "== helm template (default values) > $out/default.yaml"
"$helm" template kongbot "$chart" --namespace kongbot > "$out/default.yaml"
echo "== helm template (values-http.yaml) > $out/http.yaml"
"$helm" template kongbot "$chart" --namespace kongbot -f "$chart/values-http.yaml" > "$out/http.yaml"
echo "helm-check: ok ($(grep -c '^kind:' "$out/default.yaml") documents with default values, $(grep -c '^kind:' "$out/http.yaml") with values-http.yaml)"
