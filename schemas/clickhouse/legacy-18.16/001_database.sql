-- neonblue ClickHouse schema adapted for ClickHouse 18.16 (Debian bookworm's
-- clickhouse-server). See README.md for every difference from ../*.sql.
CREATE DATABASE IF NOT EXISTS neonblue;
