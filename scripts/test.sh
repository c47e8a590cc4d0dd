#!/usr/bin/env bash
# Runs the whole test suite: every store test on SQLite and PostgreSQL,
# the API and the black-box tests of the `stratum` binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export STRATUM_TEST_POSTGRES_URL="${STRATUM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
bash scripts/ensure-postgres.sh
cargo test --workspace --all-targets "$@"
