#!/bin/bash
# First-start initialisation of the clickhouse container (docker-compose.yml):
# creates $CLICKHOUSE_DB and applies neonblue's DDL, schemas/clickhouse/*.sql
# (mounted at /neonblue/schemas/clickhouse), in file-name order.
#
# Why not mount the DDL straight into /docker-entrypoint-initdb.d: the image
# runs *.sql files there without --database, i.e. in `default`, and the DDL
# uses unqualified table names. Here each file runs with --database.
#
# The image's entrypoint runs this only when the data volume is empty, while
# the server still listens on 127.0.0.1 only. The statements are
# CREATE ... IF NOT EXISTS, so running it again is harmless. No `set -u`:
# the entrypoint sources this file instead of executing it when the file has
# lost its executable bit.
set -eo pipefail

nb_db="${CLICKHOUSE_DB:-neonblue}"
nb_dir="${NEONBLUE_CLICKHOUSE_SCHEMA_DIR:-/neonblue/schemas/clickhouse}"
nb_client=(clickhouse client --host 127.0.0.1
    --user "${CLICKHOUSE_USER:-default}" --password "${CLICKHOUSE_PASSWORD:-}")

"${nb_client[@]}" --query "CREATE DATABASE IF NOT EXISTS \`${nb_db}\`"

nb_count=0
for nb_file in "$nb_dir"/*.sql; do
    [ -f "$nb_file" ] || continue
    echo "neonblue initdb: applying $nb_file to database $nb_db"
    "${nb_client[@]}" --database "$nb_db" --multiquery < "$nb_file"
    nb_count=$((nb_count + 1))
done
echo "neonblue initdb: $nb_count DDL file(s) applied from $nb_dir"
