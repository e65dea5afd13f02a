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
# (unused when Neon credentials are set), as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/neonguard --uid 10001 neonguard \
 && install -d -o neonguard -g neonguard -m 0700 /var/lib/neonguard/data
COPY --from=build /out/neonguard /usr/local/bin/neonguard
USER neonguard
ENV NEONGUARD_DATA_DIR=/var/lib/neonguard/data
VOLUME ["/var/lib/neonguard/data"]
# serve --transport http --listen 0.0.0.0:8080 (the stdio default needs no port)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/neonguard"]
CMD ["serve"]
