#!/bin/sh
# Run by the postgres image once, when its volume is first initialised, as the
# superuser (POSTGRES_USER): wxretain's own login role, which owns the database
# POSTGRES_DB and so everything its migrations create there, and nothing else:
# no superuser, no CREATEDB, no CREATEROLE. (WXRETAIN_DB_USER renames the role
# for tests/it/deploy_host.rs, which runs this on a shared server; leave it unset.)
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner="${WXRETAIN_DB_USER:-wxretain}" -v db="$POSTGRES_DB" \
     -v password="$WXRETAIN_DB_PASSWORD" <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'password';
ALTER DATABASE :"db" OWNER TO :"owner";
-- Postgres 15 and later give the public schema to the database's owner; older
-- ones keep it the superuser's, where the owner could not create tables.
ALTER SCHEMA public OWNER TO :"owner";
SQL
