# Stand-in for nats:2.9, for deploy/check_compose.py where no image registry
# is reachable: Debian's nats-server (2.9 in bookworm). Like the official
# image, its entrypoint is the server and the compose file gives the flags.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown nats /data
USER nats
ENTRYPOINT ["/usr/sbin/nats-server"]
