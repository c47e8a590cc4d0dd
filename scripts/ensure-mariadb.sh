#!/usr/bin/env bash
# Makes sure a MariaDB (MySQL) server answers on 127.0.0.1:3306 for `root`
# with an empty password (the SQL scraper's MySQL tests): starts the local
# server, or installs one with apt. An unreachable server is a failure.
set -uo pipefail

client() { if command -v mariadb >/dev/null 2>&1; then mariadb "$@"; else mysql "$@"; fi; }

# Up and letting root in over TCP (`ping` alone succeeds on access denied).
ping_server() {
  client --protocol=tcp -h 127.0.0.1 -P 3306 -uroot -e 'SELECT 1' >/dev/null 2>&1
}

start_server() {
  service mariadb start >/dev/null 2>&1 \
    || service mysql start >/dev/null 2>&1 \
    || (command -v mysqld_safe >/dev/null 2>&1 && (setsid mysqld_safe >/dev/null 2>&1 &))
}

# Root over TCP with an empty password, as on the CI machines (a fresh
# Debian install only lets root in over the socket).
open_root() {
  client -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test;" 2>/dev/null || true
}

if ping_server; then
  exit 0
fi
echo "MariaDB is not answering on 127.0.0.1:3306; starting it" >&2
if ! command -v mariadbd >/dev/null 2>&1 && ! command -v mysqld >/dev/null 2>&1; then
  echo "installing MariaDB with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null
fi
start_server
for _ in $(seq 1 30); do
  ping_server && exit 0
  open_root
  sleep 1
done
echo "error: MariaDB is unreachable on 127.0.0.1:3306 as root" >&2
exit 1
