#!/usr/bin/env bash
# The project's two entry points:
#   ./conveyor.sh run [silo args…]   start a single-node Conveyor (HTTP API on http://127.0.0.1:8080)
#   ./conveyor.sh test               run the whole test suite; ends with "N passed, N failed, N skipped"
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
cd "$root"

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

ensure_servers() {
  local missing=()
  have nats-server || missing+=(nats-server)
  have redis-server || missing+=(redis-server)
  # Extra packages a command needs (the test suite's failover tests run Redis Sentinel).
  for extra in "$@"; do have "$extra" || missing+=("$extra"); done
  # Schedules read cron expressions in IANA time zones, which .NET on Linux takes from tzdata.
  [ -d /usr/share/zoneinfo ] || missing+=(tzdata)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} from Debian packages..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Conveyor needs ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

ensure_dotnet() {
  command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required (dotnet not found)." >&2; exit 1; }
}

case "${1:-}" in
  run)
    shift
    ensure_servers
    ensure_dotnet
    # Run from the silo's folder so its appsettings.json applies; keep data at the repository root.
    cd src/Conveyor.Silo
    exec dotnet run -c Release --no-launch-profile -- --Conveyor:DataDirectory="${CONVEYOR_DATA:-$root/conveyor-data}" "$@"
    ;;
  test)
    shift
    ensure_servers redis-sentinel
    ensure_dotnet
    # The form CI caching examples use (no trailing slash); the build must not depend on the slash.
    export NUGET_PACKAGES="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
    export NUGET_PACKAGES="${NUGET_PACKAGES%/}"
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    dotnet build Conveyor.sln -c Release -nologo -v q
    set +e
    dotnet test Conveyor.sln -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    # One line summed over every test project, e.g. "Passed!  - Failed: 0, Passed: 41, Skipped: 0, Total: 41".
    awk '/(Passed|Failed)! +- +Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+/ {
           for (i = 1; i <= NF; i++) {
             if ($i == "Failed:") { gsub(",", "", $(i+1)); f += $(i+1) }
             if ($i == "Passed:") { gsub(",", "", $(i+1)); p += $(i+1) }
             if ($i == "Skipped:") { gsub(",", "", $(i+1)); s += $(i+1) }
           }
           n++
         }
         END { if (n == 0) { print "0 passed, 0 failed, 0 skipped"; exit 1 } printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log" || status=1
    exit "$status"
    ;;
  *)
    echo "usage: ./conveyor.sh run [--Urls=http://127.0.0.1:8080 …]   start a single-node Conveyor" >&2
    echo "       ./conveyor.sh test                                   run the whole test suite" >&2
    exit 2
    ;;
esac
