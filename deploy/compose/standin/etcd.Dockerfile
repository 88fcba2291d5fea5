# Stand-in for quay.io/coreos/etcd, for deploy/check_compose.py where no
# image registry is reachable: Debian's etcd server and etcdctl. The compose
# file gives etcd's whole command line, so nothing else is needed.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/*
ENV ETCDCTL_API=3
CMD ["etcd"]
