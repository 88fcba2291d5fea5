# Stand-in for rust:1.95-slim-bookworm, for deploy/check_compose.py where no
# image registry is reachable: the Debian base plus this machine's own Rust
# toolchain (its bin/, lib/ and libexec/ are the build context), laid out as
# the official image lays it out (CARGO_HOME=/usr/local/cargo). The host's
# CA bundle comes too (host-ca.crt): where the machine reaches crates.io
# through an intercepting proxy, cargo in the build must trust what the host
# trusts.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY bin/ /usr/local/rust/bin/
COPY lib/ /usr/local/rust/lib/
COPY libexec/ /usr/local/rust/libexec/
COPY host-ca.crt /usr/local/share/host-ca.crt
ENV CARGO_HOME=/usr/local/cargo \
    CARGO_HTTP_CAINFO=/usr/local/share/host-ca.crt \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin && cargo --version && rustc --version
