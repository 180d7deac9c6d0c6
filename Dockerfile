# syntax=docker/dockerfile:1
# The billflow image: `docker build -t billflow:local .` from the repository root.
# One image for every subcommand: `worker` (the default), `sim`, `publish`, `dlq`, `status`.

FROM rust:1-bookworm AS builder
WORKDIR /build
# Dependencies first, against stub sources: this layer is reused until Cargo.toml or
# Cargo.lock change, so editing src/ recompiles billflow only.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY schemas ./schemas
COPY src ./src
# COPY keeps the files' old modification times; touch them so cargo rebuilds over the stubs.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/billflow /out/billflow \
 && mkdir -p /out/data

# glibc, libgcc and CA certificates (rustls reads the system's roots for amqps://), no
# shell; uid/gid 65532 is its "nonroot" user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/billflow /usr/local/bin/billflow
# Owned by the runtime user so that a fresh named volume mounted here is writable.
COPY --from=builder --chown=65532:65532 /out/data /data
ENV BILLFLOW_DATA_DIR=/data \
    BILLFLOW_HTTP_ADDR=0.0.0.0:9090
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 65532:65532
# The admin API: /healthz, /readyz, /metrics.
EXPOSE 9090
# The sled stage store: one volume per worker, never shared.
VOLUME ["/data"]
ENTRYPOINT ["billflow"]
CMD ["worker"]
