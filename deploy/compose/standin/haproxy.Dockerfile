# Stand-in for haproxy:2.6, for deploy/check_compose.py where no image
# registry is reachable: Debian's haproxy (2.6 in bookworm), reading the
# configuration where the official image reads it, as the haproxy user, in
# master-worker mode in the foreground as the official entrypoint starts it.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /usr/local/etc/haproxy
USER haproxy
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
