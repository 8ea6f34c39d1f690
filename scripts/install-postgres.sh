#!/usr/bin/env bash
# The PostgreSQL server the cluster tests start as a throwaway instance (tests/cluster/postgres.py):
# Debian's `postgresql` package, installed when missing. Without root or apt-get it says why and
# leaves the Postgres tests to skip with that reason; it never fails the build.
set -uo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgres: no PostgreSQL server here and no way to install one (needs root and" \
    "apt-get); the Postgres tests will be skipped" >&2
  exit 0
fi
# the tests start their own server: no default cluster, no service on port 5432
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/raising-dagster.conf
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; then
  echo "install-postgres: apt-get install postgresql failed; the Postgres tests will be skipped" >&2
fi
exit 0
