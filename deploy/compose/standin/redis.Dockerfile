# Stand-in for redis:7.0, for deploy/check_compose.py where no image
# registry is reachable: Debian's redis-server (7.0 in bookworm). The compose
# file gives the whole command line.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
CMD ["redis-server", "--protected-mode", "no"]
