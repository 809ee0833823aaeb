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
