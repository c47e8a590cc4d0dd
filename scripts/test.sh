#!/usr/bin/env bash
# Runs the whole test suite: every store test on SQLite and PostgreSQL,
# the API and the black-box tests of the `stratum` binary, and a smoke pass
# of the benchmark harness.
set -euo pipefail
cd "$(dirname "$0")/.."
export STRATUM_TEST_POSTGRES_URL="${STRATUM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export STRATUM_TEST_MYSQL_URL="${STRATUM_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
bash scripts/ensure-postgres.sh
bash scripts/ensure-mariadb.sh
# The benchmark harness in smoke mode (2k items on SQLite) ...
cargo test --workspace --benches "$@"
# ... then every unit, integration and black-box test.
cargo test --workspace --lib --bins --tests "$@"
