# Shared by scripts/*: install Debian packages whose programs are missing.
# ensure_packages PROGRAM:PACKAGE ...
ensure_packages() {
  local missing=()
  for pair in "$@"; do
    local prog=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$prog" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$prog" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing ${missing[*]} from Debian's packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The driver runtimes of the driver tests (crates/cutover/tests/it/drivers.rs) and the browser
# of the report tests (reports.rs): Connector/J,
# HikariCP and SLF4J from Debian; PyMySQL and mysql-connector-python (pinned) in a venv under
# target/; mysql2 from the lockfile (npm ci). Each step is skipped when already in place, so
# a second run costs a few checks.
install_driver_runtimes() {
  local drivers=crates/cutover/tests/drivers
  local jars=(mariadb-java-client HikariCP slf4j-api slf4j-nop)
  local missing_jar=0
  for j in "${jars[@]}"; do [ -f "/usr/share/java/$j.jar" ] || missing_jar=1; done
  if [ "$missing_jar" -eq 1 ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing libmariadb-java libhikaricp-java libslf4j-java from Debian's packages" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      libmariadb-java libhikaricp-java libslf4j-java >/dev/null
  fi
  ensure_packages java:default-jre-headless python3:python3 node:nodejs npm:npm
  # Headless Chromium opens the HTML reports (crates/cutover/tests/it/reports.rs).
  ensure_packages chromium:chromium
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ensure_packages_always python3-venv
  fi
  local venv=target/drivers-venv
  local req=$drivers/python/requirements.txt
  if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
    echo "installing the Python drivers into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.requirements"
  fi
  local node=$drivers/node
  if ! cmp -s "$node/package-lock.json" "$node/node_modules/.installed-lock" 2>/dev/null; then
    echo "installing the Node drivers (npm ci)" >&2
    (cd "$node" && npm ci --no-audit --no-fund --silent)
    cp "$node/package-lock.json" "$node/node_modules/.installed-lock"
  fi
}

# Installs Debian packages unconditionally (for ones without a program to look for).
ensure_packages_always() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
