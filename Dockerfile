# syntax=docker/dockerfile:1
# Flagpost in three stages: Node builds the dashboard (web/dist), Rust builds the binary that
# embeds it, and a slim Debian runs it as an unprivileged user.
#
#   docker build -t flagpost .
#   docker run --rm -p 127.0.0.1:8080:8080 -e FLAGPOST_DATABASE_URL=… -e FLAGPOST_IMAP_HOST=… flagpost
#
# See docker-compose.yml for a complete setup with PostgreSQL and Dovecot.

# --- 1. the dashboard ----------------------------------------------------------------------------
FROM node:20.19-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
# `npm run build` generates the API types from ../openapi/openapi.json.
COPY openapi/ /src/openapi/
RUN npm run build

# --- 2. the binary -------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# crates/api/build.rs embeds web/dist at compile time: it must be there before cargo runs.
COPY --from=web /src/web/dist web/dist
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p flagpost \
    && install -m 0755 target/release/flagpost /usr/local/bin/flagpost

# --- 3. the runtime ------------------------------------------------------------------------------
FROM debian:12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin flagpost
COPY --from=build /usr/local/bin/flagpost /usr/local/bin/flagpost
USER flagpost
ENV FLAGPOST_LISTEN=0.0.0.0:8080
EXPOSE 8080
# /readyz: database reachable and migrated, not shutting down (bash only: no curl in the image).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["flagpost"]
CMD ["serve"]
