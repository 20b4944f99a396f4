#!/usr/bin/env bash
# What the tests need beyond Go: gcc (DuckDB is cgo), Debian's postgresql (the PostgreSQL
# tests start a throwaway cluster each), and the clients they check the published schema
# with: python3-psycopg2 and python3-sqlalchemy (what Superset uses), nodejs with npm's pg
# (node-postgres, installed into a cache folder the test finds through DRX_NODE_MODULES).
# Missing Debian packages are installed when this runs as root or with sudo; otherwise it
# says what to install. Source it: it exports DRX_NODE_MODULES.
missing=()
command -v gcc >/dev/null || missing+=(gcc)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
/usr/bin/python3 -c 'import psycopg2, sqlalchemy' >/dev/null 2>&1 || missing+=(python3 python3-psycopg2 python3-sqlalchemy)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  as_root=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      as_root=(sudo -n)
    else
      echo "the tests need these Debian packages: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and run again" >&2
      exit 1
    fi
  fi
  echo "installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_dir="${XDG_CACHE_HOME:-$HOME/.cache}/drextract-ci/node"
if [ ! -f "$node_dir/node_modules/pg/package.json" ]; then
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --no-save pg@8 >/dev/null
fi
export DRX_NODE_MODULES="$node_dir/node_modules"
