#!/usr/bin/env bash
# Installs everything Reelytics needs on a fresh machine, reusing what is already cached:
#   - a virtualenv keyed by the hash of uv.lock, under the cache dir, linked from ./.venv
#   - the Kafka broker jars and Spark's Kafka-connector and Delta jars, fetched by Maven from Maven Central
#   - Redis, Prometheus, wrk, Chromium and a C compiler (the serving benchmarks' load generator, bench/loadgen.c)
#     from Debian's packages, when missing
#   - chart.js (the dashboard's charts) from the npm registry, vegeta (the serving benchmark's comparison) with Go
# The cache dir is $REELYTICS_CACHE_DIR (default ~/.cache/reelytics); nothing expensive lives in the clone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${REELYTICS_CACHE_DIR:-$HOME/.cache/reelytics}"
uv_version="0.13.9"
mkdir -p "$cache"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'install: %s\n' "$*" >&2; exit 1; }

# --- prerequisites -------------------------------------------------------------------------------
command -v python3.11 >/dev/null || command -v python3 >/dev/null || fail "Python 3.11 is required (python3.11 not found)."
py="$(command -v python3.11 || command -v python3)"
"$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || fail "Python 3.11 is required; $py is $("$py" -V 2>&1)."
command -v java >/dev/null || fail "Java 17+ is required for Kafka and Spark: install a JDK (e.g. apt-get install openjdk-17-jdk-headless)."
jv="$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')"
[ "${jv:-0}" -ge 17 ] 2>/dev/null || fail "Java 17+ is required; java -version says ${jv:-unknown}."
command -v javac >/dev/null || fail "A JDK's javac is required (Reelytics compiles its Spark classes): install one (e.g. apt-get install openjdk-17-jdk-headless)."
command -v mvn >/dev/null || fail "Maven is required to fetch the Kafka and Spark jars: apt-get install maven."

# --- uv, the installer ---------------------------------------------------------------------------
uv="$cache/tools/bin/uv"
if [ ! -x "$uv" ] || ! "$uv" --version 2>/dev/null | grep -q " $uv_version"; then
  step "installing uv $uv_version into $cache/tools"
  "$py" -m venv "$cache/tools"
  "$cache/tools/bin/pip" install -q "uv==$uv_version" || fail "could not install uv from PyPI; check that PyPI is reachable."
fi
export UV_CACHE_DIR="$cache/uv"

# --- the virtualenv, keyed by the lock file -----------------------------------------------------
# The third-party packages live in one virtualenv per hash of uv.lock, shared by every clone. Each clone gets
# a small ./.venv of its own that sees those packages and the clone's sources (a .pth file), so two clones
# never fight over one editable install.
lock_hash="$(sha256sum "$here/uv.lock" | cut -c1-16)"
venv="$cache/venv-$lock_hash"
if [ ! -f "$venv/.complete" ]; then
  step "creating the virtualenv $venv from uv.lock"
  rm -rf "$venv"
  UV_PROJECT_ENVIRONMENT="$venv" "$uv" sync --project "$here" --frozen --all-extras --no-install-project \
      --python "$py" || fail "uv sync failed; see above. Run again once PyPI is reachable."
  touch "$venv/.complete"
fi
deps_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
clone_venv="$here/.venv"
if [ -L "$clone_venv" ]; then rm -f "$clone_venv"; fi
[ -x "$clone_venv/bin/python" ] || "$py" -m venv --without-pip "$clone_venv"
clone_site="$("$clone_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\nimport site; site.addsitedir(%s)\n' "$here" "'$deps_site'" > "$clone_site/reelytics.pth"
printf '#!%s\nimport sys\n\nfrom reelytics.cli import main\n\nsys.exit(main())\n' "$clone_venv/bin/python" \
  > "$clone_venv/bin/reelytics"
chmod +x "$clone_venv/bin/reelytics"

# --- jars from Maven Central ---------------------------------------------------------------------
fetch_jars() {  # $1 = pom name under infra/maven, $2 = target dir
  local pom="$here/infra/maven/$1.xml" dest="$2" stamp
  stamp="$(sha256sum "$pom" | cut -c1-16)"
  if [ -f "$dest/.complete" ] && [ "$(cat "$dest/.complete")" = "$stamp" ]; then return 0; fi
  step "fetching $1 jars from Maven Central into $dest"
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  mvn -q -B -f "$pom" -Dmaven.repo.local="$cache/m2" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dest.tmp" \
    || fail "Maven could not fetch the $1 jars; check that Maven Central is reachable, then run again."
  rm -rf "$dest" && mv "$dest.tmp" "$dest" && echo "$stamp" > "$dest/.complete"
}
fetch_jars kafka-broker "$cache/jars/kafka-broker"
fetch_jars spark-connectors "$cache/jars/spark-connectors"
step "compiling Reelytics' Spark classes (speed_layer/jvm)"
(cd "$here" && "$venv/bin/python" -m infra.jvm >/dev/null) || fail "javac could not compile speed_layer/jvm; see the error above."

# --- Debian's packages: Redis, Prometheus, wrk, Chromium (the dashboard test), gcc (bench/loadgen.c) ---------
missing=()
for pair in redis-server:redis-server prometheus:prometheus wrk:wrk chromium:chromium cc:gcc; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} from Debian's packages"
  if [ "$(id -u)" -ne 0 ]; then fail "${missing[*]} missing; install with: sudo apt-get install -y ${missing[*]}"; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get could not install ${missing[*]}; check Debian's package mirror."
  # Debian's packages may start their own servers; Reelytics runs its own, configured from its settings.
  for service in redis-server prometheus; do
    (service "$service" stop || systemctl stop "$service" || true) >/dev/null 2>&1
  done
fi

# --- the dashboard's charting library, from the npm registry (pinned) ------------------------------------
chart_js_version="$(cat "$here/serving/dashboard/chart.js.version")"
if [ ! -f "$cache/npm/chart.js-$chart_js_version/package/dist/chart.umd.js" ]; then
  step "fetching chart.js $chart_js_version from the npm registry"
  command -v npm >/dev/null || fail "npm is required for the dashboard's charts: apt-get install -y npm"
  mkdir -p "$cache/npm/chart.js-$chart_js_version"
  (cd "$cache/npm" && npm pack --silent "chart.js@$chart_js_version" >/dev/null \
    && tar -xzf "chart.js-$chart_js_version.tgz" -C "chart.js-$chart_js_version" && rm "chart.js-$chart_js_version.tgz") \
    || fail "npm could not fetch chart.js@$chart_js_version; check that the npm registry is reachable."
fi

# --- vegeta (the load generator the serving benchmark compares with), from the Go module proxy (pinned) ---------
vegeta_version="v12.13.0"
if [ ! -x "$cache/tools/vegeta-$vegeta_version/vegeta" ]; then
  if command -v go >/dev/null; then
    step "building vegeta $vegeta_version from the Go module proxy"
    GOBIN="$cache/tools/vegeta-$vegeta_version" GOFLAGS=-mod=mod go install "github.com/tsenart/vegeta/v12@$vegeta_version" \
      || fail "go could not build vegeta $vegeta_version; check that the Go module proxy is reachable."
  else
    echo "note: Go is not installed, so vegeta (only \`reelytics bench serving\` needs it) is not built." >&2
  fi
fi

step "ready: $("$venv/bin/python" -V), venv $venv, jars under $cache/jars"
