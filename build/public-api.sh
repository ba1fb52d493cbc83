#!/usr/bin/env bash
# The public API of each package, as PublicApiAnalyzers guards it (see Directory.Build.targets): a public member
# added, changed or removed without PublicAPI.*.txt saying so is a build error.
#
#   build/public-api.sh [src/X/X.csproj …]   record the current surface in PublicAPI.Unshipped.txt (creating the files
#                                            for a new package); default: every packable library under src/
#   build/public-api.sh --ship               at a release: move every Unshipped entry into PublicAPI.Shipped.txt
#
# Review the diff: an entry that disappears is a breaking change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

projects=()
ship=false
for arg in "$@"; do
  if [ "$arg" = "--ship" ]; then ship=true; else projects+=("$arg"); fi
done
if [ ${#projects[@]} -eq 0 ]; then
  while IFS= read -r p; do
    # Packages that are libraries: packable, and not a dotnet tool.
    if grep -q '<IsPackable>true</IsPackable>' "$p" && ! grep -q '<PackAsTool>true</PackAsTool>' "$p"; then projects+=("$p"); fi
  done < <(find src -name '*.csproj' | sort)
fi

for p in "${projects[@]}"; do
  dir=$(dirname "$p")
  shipped="$dir/PublicAPI.Shipped.txt"
  unshipped="$dir/PublicAPI.Unshipped.txt"
  [ -f "$shipped" ] || printf '#nullable enable\n' > "$shipped"
  [ -f "$unshipped" ] || printf '#nullable enable\n' > "$unshipped"
  if $ship; then
    { cat "$shipped"; grep -v '^#nullable enable$' "$unshipped" || true; } | awk 'NR == 1 || !seen[$0]++' > "$shipped.new"
    mv "$shipped.new" "$shipped"
    printf '#nullable enable\n' > "$unshipped"
  else
    echo "Recording the public API of $p"
    dotnet format analyzers "$p" --diagnostics RS0016 RS0017 --severity info -v q
    # dotnet format leaves source-generated members (a System.Text.Json context's) out: take them from the build.
    dotnet build "$p" -c Release -nologo -v q 2>&1 \
      | grep -oP "error RS0016: Symbol '\K.+?(?=' is not part of the declared public API)" | sort -u >> "$unshipped" || true
  fi
done
