# wxretain: a release build in a Rust image, copied into a slim Debian runtime.
# Builds without a database: the query macros read the committed .sqlx/
# metadata (SQLX_OFFLINE=true in .cargo/config.toml) and the migrations are
# embedded in the binary. CI builds the same files with the same command:
# deploy/check-image-build.sh.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, on stub sources: this layer is reused until Cargo.toml or
# Cargo.lock change, so editing src/ rebuilds only wxretain itself.
# build.rs and benches/ are named by Cargo.toml, which cargo reads before
# anything else (the benchmark itself is not built); .cargo/config.toml sets
# the build's environment, the same for both builds.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY benches ./benches
COPY deploy/build.sh ./deploy/build.sh
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && deploy/build.sh \
 && rm -rf src target/release/wxretain target/release/.fingerprint/wxretain-* \
           target/release/deps/wxretain-* target/release/deps/libwxretain-*
COPY src ./src
COPY .sqlx ./.sqlx
COPY migrations ./migrations
RUN deploy/build.sh

FROM debian:bookworm-slim
# TLS roots are compiled in (rustls with webpki-roots); the system bundle is for
# token_command programs and anything an operator adds. Not pinned to a
# version (hadolint's DL3008): the bookworm archive replaces a package's
# version with each security update and drops the old one, so a pin breaks
# the build within weeks; the base image's tag is what fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin wxretain
COPY --from=build /src/target/release/wxretain /usr/local/bin/wxretain
# Numeric, so orchestrators can check runAsNonRoot.
USER 10001:10001
ENV WXRETAIN_CONFIG=/etc/wxretain/wxretain.toml
# /livez, /readyz, /metrics: set [server] listen = "0.0.0.0:9187" in the config.
EXPOSE 9187
ENTRYPOINT ["wxretain"]
CMD ["run"]
