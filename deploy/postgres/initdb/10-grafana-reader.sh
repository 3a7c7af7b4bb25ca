#!/bin/sh
# Run by the postgres image once, when its volume is first initialised (after
# 05-wxretain-owner.sh): the role Grafana logs in with may read every table and
# view wxretain creates (now or in later migrations, as the owner role) and
# change nothing. (GRAFANA_DB_USER and WXRETAIN_DB_USER rename the roles for
# tests/it/deploy_host.rs, which runs this on a shared server; leave them unset.)
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader="${GRAFANA_DB_USER:-grafana}" -v owner="${WXRETAIN_DB_USER:-wxretain}" \
     -v db="$POSTGRES_DB" -v password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
ALTER ROLE :"reader" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
-- Tables and views that wxretain's migrations create later, as the owner role.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
