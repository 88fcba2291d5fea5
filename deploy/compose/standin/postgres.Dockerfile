# Stand-in for postgres:15, for deploy/check_compose.py where no image
# registry is reachable: Debian's PostgreSQL 15 and an entrypoint that keeps
# the official image's documented contract for what the compose file uses:
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB make the superuser and the
# database at the first start, data in /var/lib/postgresql/data, password
# authentication from other hosts, port 5432.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
