// Package shiptest checks the artefacts kongbot ships as: the container
// image's binary (built by scripts/build-static.sh, which the Dockerfile runs)
// and the helm chart in helm/kongbot, whose rendered manifests its tests decode
// strictly into Kubernetes API types.
//
// There is no Docker engine or cluster in CI, so these checks stand in for
// them: the same build command runs here, and the chart is rendered by the
// real helm built from its Go module (see scripts/helm-check.sh).
package shiptest
