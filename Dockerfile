# syntax=docker/dockerfile:1
# A small static image holding only the geode binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/geode ./cmd/geode

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/geode /usr/local/bin/geode
USER nonroot:nonroot
# outbound, inbound, admin
EXPOSE 15001 15006 15000
ENTRYPOINT ["/usr/local/bin/geode"]
CMD ["sidecar", "--config", "/etc/geode/sidecar.yaml"]
