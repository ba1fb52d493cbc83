#!/usr/bin/env bash
# The release artifacts for linux-x64, into artifacts/release (or the folder given):
#   conveyor-silo-<version>-linux-x64.tar.gz   the standalone silo, self-contained: runs where no .NET is installed
#                                               (it needs nats-server and redis-server on PATH, or external ones)
#   conveyor-<version>-linux-x64               the command line as one self-contained executable file
# The version is MinVer's (from the nearest v-tag); VERSION=1.2.3 overrides it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/artifacts/release}")
rid=linux-x64
cd "$root"
command -v dotnet >/dev/null 2>&1 || { echo "The .NET 10 SDK is required to build a release (dotnet not found)." >&2; exit 1; }

override=()
[ -n "${VERSION:-}" ] && override=("-p:MinVerVersionOverride=$VERSION")
version=$(dotnet msbuild src/Conveyor.Silo/Conveyor.Silo.csproj -nologo -restore -t:MinVer -getProperty:MinVerVersion "${override[@]}")
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$out"

silo="conveyor-silo-$version"
dotnet publish src/Conveyor.Silo/Conveyor.Silo.csproj -c Release -r "$rid" --self-contained -nologo -v q "${override[@]}" -o "$staging/$silo"
cp LICENSE "$staging/$silo/"
cat > "$staging/$silo/README.txt" <<TEXT
Conveyor silo $version ($rid), self-contained: no .NET installation is needed.

  ./conveyor-silo                      single node on http://127.0.0.1:8080; starts nats-server and redis-server
                                       (from PATH) with their data in ./conveyor-data
  ./conveyor-silo --Urls=http://0.0.0.0:8080 --Conveyor:Mode=Cluster \\
      --ConnectionStrings:nats=nats://nats:4222 --ConnectionStrings:redis=redis:6379

Settings come from appsettings.json next to the executable when started from this folder, from environment
variables (Conveyor__Mode=Cluster) and from --Key=value flags. See docs/operations/install.md in the repository.
TEXT
tar -C "$staging" -czf "$out/$silo-$rid.tar.gz" "$silo"

dotnet publish src/Conveyor.Cli/Conveyor.Cli.csproj -c Release -r "$rid" --self-contained -nologo -v q "${override[@]}" \
  -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -o "$staging/cli"
cp "$staging/cli/conveyor" "$out/conveyor-$version-$rid"
chmod +x "$out/conveyor-$version-$rid"

echo "$out/$silo-$rid.tar.gz"
echo "$out/conveyor-$version-$rid"
