#!/bin/bash
# First-start initialisation of the postgres container (docker-compose.yml):
# applies schemas/postgres/*.sql (mounted at /neonblue/schemas/postgres) in
# file-name order to $POSTGRES_DB, then gives the Debezium connector's role
# its password. schemas/postgres/003_cdc_role.sql creates the role without one
# on purpose ("set it out of band"); this is that out-of-band step for the
# local stack. Kafka Connect reads the same password from
# deploy/connect/secrets/postgres.properties (FileConfigProvider), so the two
# must agree: scripts/check_compose.py checks it.
#
# Why not mount schemas/postgres straight into /docker-entrypoint-initdb.d:
# the password step has to run after the role exists, and nothing may be
# added to schemas/postgres for it.
#
# The image's entrypoint runs this only when the data volume is empty, with a
# temporary server on the Unix socket only. No `set -u`: the entrypoint
# sources this file instead of executing it when it lost its executable bit.
set -eo pipefail

nb_dir="${NEONBLUE_POSTGRES_SCHEMA_DIR:-/neonblue/schemas/postgres}"
nb_psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}")

nb_count=0
for nb_file in "$nb_dir"/*.sql; do
    [ -f "$nb_file" ] || continue
    echo "neonblue initdb: applying $nb_file"
    "${nb_psql[@]}" -f "$nb_file"
    nb_count=$((nb_count + 1))
done
echo "neonblue initdb: $nb_count file(s) applied from $nb_dir"

if [ -n "${NEONBLUE_CDC_PASSWORD:-}" ]; then
    echo "neonblue initdb: setting the password of role ${NEONBLUE_CDC_USER:-neonblue_cdc}"
    "${nb_psql[@]}" -v role="${NEONBLUE_CDC_USER:-neonblue_cdc}" -v password="$NEONBLUE_CDC_PASSWORD" <<'SQL'
ALTER ROLE :"role" WITH PASSWORD :'password';
SQL
fi
