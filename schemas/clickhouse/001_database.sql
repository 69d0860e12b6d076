-- neonblue ClickHouse schema (SPEC 6.4), for current ClickHouse releases.
-- Optional: the database the sink writes to by default. Every other file uses
-- unqualified table names, so the sink (or `clickhouse-client --database`, or
-- the HTTP `database=` parameter) chooses the database at apply time.
-- One statement per file: the HTTP interface takes one statement per request.
CREATE DATABASE IF NOT EXISTS neonblue;
