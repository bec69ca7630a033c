# syntax=docker/dockerfile:1
#
# kongbot container image: a static Go binary on distroless/static, running as
# the image's nonroot user (UID/GID 65532), with the bbolt store on a volume.
# The runtime image has no shell: debug with `kubectl debug` or an ephemeral
# container, and read the store with `kongbot store backup` (docs/operations.md).
#
#   docker build -t kongbot .
#   docker run --rm -v kongbot-store:/var/lib/kongbot \
#     -v "$PWD/config.yaml:/etc/kongbot/config.yaml:ro" \
#     -e KONGBOT_SLACK_BOT_TOKEN -e KONGBOT_SLACK_APP_TOKEN kongbot
#
# The build command lives in scripts/build-static.sh; CI runs the same script
# without Docker (scripts/docker-build-check.sh), so keep the one RUN line
# that calls it.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so a source change does not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    scripts/build-static.sh /out/kongbot
# The store directory must exist and belong to the runtime user: a named
# volume mounted there is initialised from the image, ownership included, and
# distroless has no shell to create it later.
RUN mkdir -p /out/store

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kongbot /kongbot
COPY --from=build --chown=65532:65532 /out/store /var/lib/kongbot
USER 65532:65532
VOLUME ["/var/lib/kongbot"]
# One HTTP listener: Slack HTTP mode (/slack/...), /healthz, /readyz, /metrics.
# Socket Mode needs no inbound port; the probes and metrics still use it.
EXPOSE 8080
ENTRYPOINT ["/kongbot"]
CMD ["serve", "--config", "/etc/kongbot/config.yaml"]
