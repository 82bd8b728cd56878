# syntax=docker/dockerfile:1
#
# phoenix-server: the control plane binary on Debian slim, run as a non-root user.
#
# Build with the repository root as the context (the workspace is compiled in the image):
#
#   docker build -f deploy/docker/server.Dockerfile -t phoenix-server:0.1.0 .
#
# Configure it with PHOENIX_* environment variables (docs/configuration.md). Secrets
# (PHOENIX_ADMIN_TOKEN, PHOENIX_ENROLLMENT_TOKEN, a store URL with a password) come from the
# orchestrator at run time and are never baked into the image.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# Registry, git checkouts and the target directory are BuildKit cache mounts: after a
# source change only the workspace crates are compiled again, not the dependencies. The
# binary is copied out of the target mount because a cache mount is not part of the layer.
RUN --mount=type=cache,id=phoenix-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=phoenix-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=phoenix-target-server,target=/src/target,sharing=locked \
    CARGO_INCREMENTAL=0 cargo build --release --locked -p phoenix-server --bin phoenix-server \
    && install -D -m 0755 target/release/phoenix-server /out/phoenix-server

# The runtime is the builder's Debian release, so the binary finds the glibc it was linked
# against. PostgreSQL TLS uses rustls with built-in roots: no CA bundle is needed.
FROM debian:${DEBIAN_RELEASE}-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="phoenix-server" \
      org.opencontainers.image.description="Phoenix control plane: REST, OpenAPI and WebSocket API and the controller loop, over a memory, PostgreSQL or Redis store" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/phoenix-metrics/phoenix" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 phoenix \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin phoenix
COPY --from=builder /out/phoenix-server /usr/local/bin/phoenix-server
USER 10001:10001
ENV PHOENIX_LISTEN=0.0.0.0:8080
EXPOSE 8080
# Liveness: GET /healthz on the port of PHOENIX_LISTEN, with bash's /dev/tcp (the image has
# no HTTP client). Readiness (/readyz: the store answers) is for load balancers and
# depends_on, which check it themselves (deploy/docker-compose.yml, deploy/k8s/).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PHOENIX_LISTEN##*:} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/phoenix-server"]
CMD ["serve"]
