# syntax=docker/dockerfile:1
# neonblue container image.
#
#   docker build -t neonblue .
#   docker run --rm neonblue --help
#   docker run --rm -v "$PWD/deploy/neonblue.toml:/etc/neonblue/neonblue.toml:ro" \
#       -p 9464:9464 neonblue run --config /etc/neonblue/neonblue.toml
#
# Needs BuildKit (the default builder of current Docker): the cargo registry
# and target/ live in cache mounts, so a rebuild after a source change only
# recompiles the crates that changed.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- builder
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# rdkafka-sys compiles the bundled librdkafka with its own mklove
# `./configure` + `make` (no CMake: that is only for the `cmake-build`
# feature): bash, make and a C toolchain. The features enabled in Cargo.toml
# link system libraries found with pkg-config: `ssl` OpenSSL (libssl-dev),
# `gssapi` Cyrus SASL (libsasl2-dev; SASL PLAIN, SCRAM and OAUTHBEARER are
# librdkafka's own), `libz` zlib (zlib1g-dev); `zstd` compiles zstd from
# source and lz4 is part of librdkafka. Most of this is in the rust:*-bookworm
# image already; installing it explicitly keeps the build working should the
# base image slim down.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config \
        libssl-dev libsasl2-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin neonblue \
    && install -D -m 0755 target/release/neonblue /out/neonblue \
    && strip --strip-debug /out/neonblue

# ---------------------------------------------------------------- runtime
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# The binary links glibc, libgcc_s and zlib (part of the base image), OpenSSL
# (libssl3) and Cyrus SASL (libsasl2-2). ca-certificates: TLS to S3 and to
# Kafka clusters with public certificates (librdkafka uses the system store
# when ssl.ca.location is unset). SASL GSSAPI (Kerberos) needs Cyrus' GSSAPI
# plugin (libsasl2-modules-gssapi-mit) and kinit (krb5-user), which librdkafka
# runs to refresh tickets from sasl.kerberos.keytab; mount /etc/krb5.conf.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
        libssl3 libsasl2-2 libsasl2-modules-gssapi-mit krb5-user \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 neonblue \
    && useradd --system --uid 10001 --gid neonblue --home-dir /var/lib/neonblue \
        --shell /usr/sbin/nologin neonblue \
    && mkdir -p /var/lib/neonblue/state /etc/neonblue \
    && chown -R neonblue:neonblue /var/lib/neonblue

COPY --from=builder /out/neonblue /usr/local/bin/neonblue

LABEL org.opencontainers.image.title="neonblue" \
      org.opencontainers.image.description="Stream processor for A/B-testing analytics: Debezium outbox envelopes to validated events, windows and Parquet/ClickHouse" \
      org.opencontainers.image.licenses="Apache-2.0"

USER neonblue:neonblue
WORKDIR /var/lib/neonblue

# Prometheus /metrics and /healthz. Inside a container the listener must not
# be bound to loopback only, or nothing can scrape it.
ENV NEONBLUE_METRICS__ADDR=0.0.0.0:9464
EXPOSE 9464

# /healthz over bash's /dev/tcp: the slim image has no curl or wget.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "port=${NEONBLUE_METRICS__ADDR##*:}; exec 3<>/dev/tcp/127.0.0.1/${port:-9464} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["neonblue"]
CMD ["--help"]
