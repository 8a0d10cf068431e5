#!/bin/sh
# The container's ENTRYPOINT: `serve --foreground` as PID 1 (exec), so SIGTERM reaches it and
# starts the graceful drain. The arguments (CMD, default `--ncs`) are passed on; a leading
# `serve` is dropped, because SageMaker starts a container as `docker run IMAGE serve`.
set -eu
if [ "${1:-}" = "serve" ]; then
  shift
  set -- --ncs "$@"
fi
exec /usr/local/bin/serve --foreground --ts-config "${TS_CONFIG_FILE:-/home/model-server/config.properties}" "$@"
