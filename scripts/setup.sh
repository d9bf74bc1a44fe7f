#!/usr/bin/env bash
# Installs what the build and tests need and makes sure PostgreSQL and Redis are up on 127.0.0.1. Safe to repeat:
# what is installed is not installed again, what runs is left running, configuration is only added once.
#
#   - Debian packages: gcc, make, pkg-config, zlib, PostgreSQL 15, Redis, kcat, Node.js + npm, Chromium, and
#     Java + Maven (for the real Kafka broker that scripts/kafka.sh fetches from Maven Central);
#   - PostgreSQL: the `test` database, reachable on 127.0.0.1:5432 as user `postgres` without a password (a `trust`
#     rule for that one database on the loopback addresses, added at the top of pg_hba.conf), and TLS with a
#     certificate for 127.0.0.1/localhost signed by a CA made here (/var/lib/postgresql/hule-tls/ca.pem), so the
#     tests can check sslmode=verify-full;
#   - Redis on 127.0.0.1:6379, no persistence;
#   - the AsyncAPI validator's pinned npm packages;
#   - pydantic 2 for Python 3 (the differential test judges records with it), from PyPI.
#   - aiokafka, asyncpg and SQLAlchemy for Python 3 (the bench's model of the original relay), from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sudo -u postgres sh -c "$*"; fi; }

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v kcat >/dev/null || need_apt+=(kcat)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v openssl >/dev/null || need_apt+=(openssl)
# nft black-holes one TCP connection in the half-open fault tests (no FIN, no RST).
command -v nft >/dev/null || need_apt+=(nftables)
command -v python3 >/dev/null || need_apt+=(python3)
command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists of a new machine may be stale: refresh them only when the first attempt fails.
  apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null; }
fi

# The AsyncAPI validator's pinned packages (@asyncapi/specs, ajv), from package-lock.json.
if [ ! -d tools/asyncapi-validate/node_modules ]; then
  say "installing the AsyncAPI validator's npm packages"
  npm ci --prefix tools/asyncapi-validate --no-audit --no-fund --loglevel=error >/dev/null
fi

# pydantic 2, which tools/pydantic-parity/judge.py uses (Debian marks its Python as externally managed).
if ! python3 -c 'import pydantic, sys; sys.exit(0 if pydantic.VERSION.startswith("2.") else 1)' 2>/dev/null; then
  say "installing pydantic 2 from PyPI"
  python3 -m pip install -q --break-system-packages 'pydantic>=2,<3' >/dev/null
fi

# The Python relay model `hule bench` races against (tools/python-relay/relay.py): the original's client libraries.
if ! python3 -c 'import aiokafka, asyncpg, sqlalchemy.ext.asyncio' 2>/dev/null; then
  say "installing aiokafka, asyncpg and SQLAlchemy from PyPI"
  python3 -m pip install -q --break-system-packages 'aiokafka==0.14.*' 'asyncpg>=0.29,<1' 'sqlalchemy[asyncio]>=2,<2.1' >/dev/null
fi

# PostgreSQL: a cluster, the loopback rule for the test database, running, the database present.
pg_version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if [ -z "$(ls /etc/postgresql/"$pg_version" 2>/dev/null)" ]; then
  say "creating PostgreSQL $pg_version cluster main"
  pg_createcluster "$pg_version" main >/dev/null
fi
pg_cluster="$(ls /etc/postgresql/"$pg_version" | head -n1)"
hba="/etc/postgresql/$pg_version/$pg_cluster/pg_hba.conf"
marker="# hule-events: the test database on loopback without a password (scripts/setup.sh)"
reload_pg=0
if ! grep -qF "$marker" "$hba"; then
  say "allowing the test database on 127.0.0.1 and ::1 in $hba"
  { echo "$marker"
    echo "host    test    all    127.0.0.1/32    trust"
    echo "host    test    all    ::1/128         trust"
    cat "$hba"; } >"$hba.new"
  chown --reference="$hba" "$hba.new" && chmod --reference="$hba" "$hba.new" && mv "$hba.new" "$hba"
  reload_pg=1
fi
# TLS for the tests of sslmode=verify-ca/verify-full: a CA and a server certificate for 127.0.0.1/localhost made on
# this machine (never committed), used by the server instead of Debian's self-signed snake-oil certificate.
tls_dir=/var/lib/postgresql/hule-tls
tls_conf="/etc/postgresql/$pg_version/$pg_cluster/conf.d/hule-tls.conf"
if [ ! -f "$tls_dir/server.key" ] || [ ! -f "$tls_conf" ]; then
  say "making a test CA and a TLS certificate for PostgreSQL on 127.0.0.1 ($tls_dir)"
  mkdir -p "$tls_dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hule-events PostgreSQL test CA" \
    -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls_dir/server.key" \
    -out "$tls_dir/server.csr" >/dev/null 2>&1
  echo "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" >"$tls_dir/san.ext"
  openssl x509 -req -in "$tls_dir/server.csr" -CA "$tls_dir/ca.pem" -CAkey "$tls_dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tls_dir/san.ext" -out "$tls_dir/server.crt" >/dev/null 2>&1
  chown -R postgres:postgres "$tls_dir"
  chmod 755 "$tls_dir"; chmod 600 "$tls_dir/server.key" "$tls_dir/ca.key"; chmod 644 "$tls_dir/ca.pem" "$tls_dir/server.crt"
  mkdir -p "$(dirname "$tls_conf")"
  printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\n" "$tls_dir/server.crt" "$tls_dir/server.key" >"$tls_conf"
  reload_pg=1
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL $pg_version/$pg_cluster"
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" start \
    || { say "PostgreSQL did not start; its log:"; tail -n 20 "/var/log/postgresql/postgresql-$pg_version-$pg_cluster.log" >&2; exit 1; }
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
elif [ $reload_pg = 1 ]; then
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" "$pg_cluster" reload
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { say "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
if [ "$(as_postgres "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'test'\"")" != 1 ]; then
  say "creating the test database"
  as_postgres "createdb test"
fi
psql "host=127.0.0.1 port=5432 user=postgres dbname=test" -tAc "SELECT 1" >/dev/null \
  || { say "the test database does not accept user postgres on 127.0.0.1 without a password (see $hba)"; exit 1; }

# Redis.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile "${TMPDIR:-/tmp}/hule-redis.log"
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { say "Redis is not reachable on 127.0.0.1:6379"; exit 1; }
