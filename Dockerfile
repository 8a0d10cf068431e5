# syntax=docker/dockerfile:1
#
# swift-model-server as a container: `serve` and `archiver` built with the official Swift image
# for Debian 12, run on debian:bookworm-slim with only the runtime libraries (Debian's libtorch
# 1.13 CPU, libpng16, libjpeg62-turbo, zlib, jemalloc, libcurl). No Python, no compiler, no Swift
# toolchain in the final image: the Swift runtime is linked in (--static-swift-stdlib).
#
#   docker build -t swift-model-server .
#   docker run --rm -p 8080:8080 -p 8081:8081 -p 8082:8082 swift-model-server
#   docker run --rm -v "$PWD/model_store:/home/model-server/model-store:ro" -p 8080:8080 \
#       -e TS_DISABLE_TOKEN_AUTHORIZATION=true swift-model-server
#
# No Docker engine runs on the development machine: scripts/deploy/check-dockerfile runs this
# file's build steps there, checks the runtime libraries against the packages of the runtime
# stage, and starts the result the way ENTRYPOINT and CMD do.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build

# libcurl4-openssl-dev: --static-swift-stdlib links FoundationNetworking statically, and it
# needs -lcurl at link time (the Swift image ships it; listed so the step says what it needs).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libtorch-dev libpng-dev libjpeg-dev zlib1g-dev libjemalloc-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Dependencies first, so that a source change does not fetch them again (Package.resolved is
# optional: the bracket keeps COPY from failing when a checkout has none).
COPY Package.swift Package.resolve[d] ./
RUN swift package resolve

COPY . .
RUN swift build -c release --static-swift-stdlib --product serve \
 && swift build -c release --static-swift-stdlib --product archiver
RUN mkdir -p /staging/bin \
 && cp "$(swift build -c release --static-swift-stdlib --show-bin-path)/serve" /staging/bin/serve \
 && cp "$(swift build -c release --static-swift-stdlib --show-bin-path)/archiver" /staging/bin/archiver \
 && strip /staging/bin/serve /staging/bin/archiver

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

# libtorch1.13 brings libtorch.so, libtorch_cpu.so and libc10.so (and, through Debian's
# packaging, OpenCV, FFmpeg and the reference BLAS, which libopenblas0-pthread replaces as
# libblas.so.3: see BENCHMARKS.md, "BLAS matrix"); libjemalloc2 is serve's malloc (docs/design.md,
# Host memory); libcurl4 is for FoundationNetworking (model URLs).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libtorch1.13 libopenblas0-pthread libpng16-16 libjpeg62-turbo zlib1g libjemalloc2 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 model-server \
 && useradd --system --uid 10001 --gid model-server --create-home --home-dir /home/model-server --shell /usr/sbin/nologin model-server

COPY --from=build /staging/bin/ /usr/local/bin/
COPY deploy/docker/entrypoint.sh /usr/local/bin/serve-entrypoint
COPY --chown=10001:10001 deploy/docker/config.properties /home/model-server/config.properties
COPY --chown=10001:10001 model_store/ /home/model-server/model-store/

USER 10001:10001
WORKDIR /home/model-server
# Archives (.mar, .tar.gz, folders); the sample models are its default content.
VOLUME ["/home/model-server/model-store"]
# inference (also /v2 and /invocations), management, Prometheus metrics
EXPOSE 8080 8081 8082

# serve drains on SIGTERM: readiness 503 at once, drain_delay, then in-flight work finishes
# within graceful_shutdown_timeout (5 s + 20 s by default, under Kubernetes' 30 s grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/serve-entrypoint"]
CMD ["--ncs"]
