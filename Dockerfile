# A small static image that runs as non-root:
#   docker build -t queue-autoscaler:0.1.0 .
# The build stage makes the same fully static musl binary as scripts/static-build.sh (tested
# there); the final image holds that binary and nothing else.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin queue-autoscaler \
    && cp target/x86_64-unknown-linux-musl/release/queue-autoscaler /queue-autoscaler

# distroless/static: CA certificates, /etc/passwd with the nonroot user, tzdata; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /queue-autoscaler /usr/local/bin/queue-autoscaler
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/queue-autoscaler"]
CMD ["run", "--config", "/etc/queue-autoscaler/config.toml", "--log-json"]
