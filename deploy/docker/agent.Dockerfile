# syntax=docker/dockerfile:1
#
# phoenix-agent: the host daemon on Debian slim, run as a non-root user.
#
# Build with the repository root as the context (the workspace is compiled in the image):
#
#   docker build -f deploy/docker/agent.Dockerfile -t phoenix-agent:0.1.0 .
#
# The agent measures the processes of the host it runs on, so its container must share the
# host's PID namespace: `docker run --pid=host`, `pid: host` in Compose, `hostPID: true` in
# Kubernetes. Without it the agent sees only itself. Keep /var/lib/phoenix-agent on a
# volume: it holds the agent's credential, and an agent that loses it enrolls again as a
# new agent. Configuration: PHOENIX_AGENT_* variables (docs/agent.md); log filter: RUST_LOG.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# Cache mounts as in server.Dockerfile. `phoenix-client/rustls` adds HTTPS to the agent's
# client (off in default builds), so the agent can reach a server behind TLS.
RUN --mount=type=cache,id=phoenix-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=phoenix-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=phoenix-target-agent,target=/src/target,sharing=locked \
    CARGO_INCREMENTAL=0 cargo build --release --locked -p phoenix-agent --bin phoenix-agent \
        --features phoenix-client/rustls \
    && install -D -m 0755 target/release/phoenix-agent /out/phoenix-agent

FROM debian:${DEBIAN_RELEASE}-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="phoenix-agent" \
      org.opencontainers.image.description="Phoenix host agent: runs baseline and candidate metrics pipelines side by side on the host's processes and reports what each produces" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/phoenix-metrics/phoenix" \
      org.opencontainers.image.licenses="Apache-2.0"
# CA certificates: the HTTPS client verifies the server against the system trust store.
# Debian package versions are not pinned: a pin breaks the build at the next security
# update of the release, and the release itself is pinned by DEBIAN_RELEASE.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 phoenix \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin phoenix \
    && install -d -m 0700 -o 10001 -g 10001 /var/lib/phoenix-agent
COPY --from=builder /out/phoenix-agent /usr/local/bin/phoenix-agent
USER 10001:10001
ENV PHOENIX_AGENT_STATE_DIR=/var/lib/phoenix-agent
# The exposition listener (/metrics/baseline, /metrics/candidate, /healthz) binds to
# 127.0.0.1:9460 unless PHOENIX_AGENT_LISTEN says otherwise; set 0.0.0.0:9460 only when a
# scraper outside the container needs it.
EXPOSE 9460
ENTRYPOINT ["/usr/local/bin/phoenix-agent"]
