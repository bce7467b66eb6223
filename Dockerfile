# Portrait as a container: a static binary on distroless, running as a
# non-root user. Build: docker build -t portrait . (the CI machines have no
# Docker engine, so this file is kept minimal and is not built in CI).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# modernc.org/sqlite is pure Go, so the binary needs no C library.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/portrait ./cmd/portrait
# The state directory, to be owned by the nonroot user (WORKDIR alone would
# make it root's, and the server could not create its database).
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portrait /usr/local/bin/portrait
COPY --from=build --chown=65532:65532 /out/state /var/lib/portrait
# State (SQLite database, key file, erasure journal) lives on a volume owned
# by the nonroot user (uid 65532). Prefer PORTRAIT_DB=postgres://… and the
# master key from a secret file (PORTRAIT_KEY_FILE) in production. Behind an
# ingress or load balancer, set PORTRAIT_TRUSTED_PROXIES to its address
# range (client addresses, Secure cookies); or serve TLS directly with
# PORTRAIT_TLS_CERT and PORTRAIT_TLS_KEY (files from a mounted secret).
VOLUME ["/var/lib/portrait"]
WORKDIR /var/lib/portrait
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/portrait"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--db", "/var/lib/portrait/portrait.db", "--key-file", "/var/lib/portrait/master.key", "--catalog", "/etc/portrait/catalog.yaml"]
