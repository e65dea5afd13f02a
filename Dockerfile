# syntax=docker/dockerfile:1
# Build: a static binary (pure Go: SQLite is modernc.org/sqlite, no cgo).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/neonguard/neonguard/internal/app.Version=${VERSION}" \
    -o /out/neonguard ./cmd/neonguard

# Run: Debian slim with the PostgreSQL server binaries the local backend serves databases with
# (unused when Neon credentials are set), as a non-root user. postgresql-common is installed
# first and told not to create Debian's default cluster: the local backend makes its own
# clusters under the data dir, so /var/lib/postgresql/15/main would be dead weight.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?\s*create_main_cluster\s*=.*$/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \
 && grep -qx 'create_main_cluster = false' /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends postgresql-15 ca-certificates \
 && test ! -e /var/lib/postgresql/15/main \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && useradd --system --create-home --home-dir /var/lib/neonguard --uid 10001 neonguard \
 && install -d -o neonguard -g neonguard -m 0700 /var/lib/neonguard/data
COPY --from=build /out/neonguard /usr/local/bin/neonguard
USER neonguard
# serve --transport http listens on every interface of the container (publish it with -p);
# the stdio default needs no port.
ENV NEONGUARD_DATA_DIR=/var/lib/neonguard/data \
    NEONGUARD_HTTP_LISTEN=0.0.0.0:8080
VOLUME ["/var/lib/neonguard/data"]
EXPOSE 8080
# Probes /readyz on NEONGUARD_HTTP_LISTEN with the binary itself (no curl in the image). Only
# the HTTP transport has an endpoint: run stdio containers with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/neonguard", "health"]
ENTRYPOINT ["/usr/local/bin/neonguard"]
CMD ["serve"]
