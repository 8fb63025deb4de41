# certfront container image: linted with hadolint (.ci/hadolint.sh), not run in CI (no
# container engine there). Build and try it:
#
#   docker build -t certfront .
#   docker run --rm -p 8443:443 -v certfront-state:/var/lib/certfront certfront
#   curl -k --resolve certfront.localhost:8443:127.0.0.1 https://certfront.localhost:8443/
#
# Your own configuration goes to /etc/certfront/certfront.toml (mount a directory with it
# and the certificate files it names); see docs/operations.md.

# ---- build: the certfront binary, with the capability to bind ports below 1024 ----
ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-slim-bookworm AS build

# libcap2-bin only for setcap below; this stage is thrown away, so the version is left to
# the Debian release the image is built on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p certfront \
    && install -D -m 0755 target/release/certfront /out/certfront \
    && setcap cap_net_bind_service=+ep /out/certfront \
    && install -d -m 0700 -o 65532 -g 65532 /out/state

# ---- run: distroless (glibc, CA certificates, no shell), user nonroot (65532) ----
FROM gcr.io/distroless/cc-debian12:nonroot

# BuildKit (the default builder since Docker 23) keeps the file capability on COPY, so the
# non-root user can listen on 443; Docker also lets containers bind low ports by default.
COPY --from=build /out/certfront /usr/local/bin/certfront
COPY --from=build --chown=65532:65532 /out/state /var/lib/certfront
COPY deploy/docker/certfront.toml /etc/certfront/certfront.toml

ENV CERTFRONT_CONFIG=/etc/certfront/certfront.toml
USER 65532:65532
# The internal CA (when a host has internal = true) keeps its key and root here.
VOLUME ["/var/lib/certfront"]
# 443 TLS, 80 redirect to https (when server.http_redirect is set), 9443 admin (metrics).
EXPOSE 443 80 9443
# No shell or curl in the image: certfront asks its own admin listener (/healthz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/certfront", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/certfront"]
CMD ["run"]
