# The stratum binary in a small, non-root runtime image.
#   docker build -t stratum .
#   docker run -p 8080:8080 -v stratum-data:/data stratum serve --listen 0.0.0.0:8080
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p stratum-api --bin stratum \
 && install -D target/release/stratum /out/stratum \
 && mkdir -p /out/data

# glibc and CA certificates, no shell, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/stratum /usr/local/bin/stratum
COPY --from=build --chown=65532:65532 /out/data /data
ENV STRATUM_DATA_DIR=/data \
    STRATUM_DATABASE_URL=sqlite:///data/stratum.db \
    STRATUM_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stratum"]
CMD ["serve"]
