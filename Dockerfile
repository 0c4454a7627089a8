# Multi-stage build: a static warren binary on a distroless base, run as a
# non-root user. Build: docker build --build-arg VERSION=$(git describe --always) -t warren .
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/warren ./cmd/warren \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/warren /usr/local/bin/warren
COPY --from=build --chown=65532:65532 /out/data /var/lib/warren
USER 65532:65532
VOLUME /var/lib/warren
# AMQP, and the management HTTP API.
EXPOSE 5672 15672
# guest may log in only from loopback, as on RabbitMQ: set WARREN_DEFAULT_USER
# and WARREN_DEFAULT_PASS to reach the broker from outside the container.
ENV WARREN_LISTEN=0.0.0.0:5672 WARREN_DATA_DIR=/var/lib/warren
ENTRYPOINT ["/usr/local/bin/warren"]
