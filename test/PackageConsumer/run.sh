#!/usr/bin/env bash
# Package consumer check: the Microsoft.ML.LabelCompletion package works in a project of its own, outside this repository.
#   1. packs the library (Release) into a temporary feed, under a version no NuGet cache holds (0.1.0-consumer.<time>.<pid>);
#   2. creates a console project in a temporary folder outside the repository whose NuGet.Config points at that feed,
#      with an empty global packages folder (other packages are read from the machine's NuGet cache as a fallback
#      folder, or restored from the configured sources);
#   3. without a libtorch package: restore brings no libtorch-* package (none is pinned by the library package) and the
#      build fails with LMAE001;
#   4. with a libtorch package (default libtorch-cpu-linux-x64; `run.sh TorchSharp-cpu` checks that one, and a
#      version may follow the id): builds, runs Program.cs "train" (tiny synthetic PNGs -> LoadSegmentationPairs ->
#      CompleteLabels Tiny, 1 epoch -> Fit -> Transform -> Evaluate -> Model.Save) from the build folder, publishes, and
#      runs "load" (Model.Load, Transform, outputs identical to the first process's) from the publish folder.
# On a host whose libstdc++ lacks GLIBCXX_3.4.32 (Debian 12) step 4 runs only if the package's buildTransitive targets
# marked that version need of libLibTorchSharp.so weak in both folders; the script checks the flag with readelf too.
# Prints "consumer check: passed" or "consumer check: FAILED (<reason>)"; exit code 0 or 1. Took 23 s on the 2-core
# Debian 12 VM when idle and 52 s when shared with other builds (2026-12-07).
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
work=$(mktemp -d "${TMPDIR:-/tmp}/lmae-consumer.XXXXXX")
keep=${LMAE_CONSUMER_KEEP:-0}
cleanup() { if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
fail() { echo "consumer check: FAILED ($*)"; exit 1; }
case "$work/" in "$repo"/*) fail "the temporary folder $work is inside the repository";; esac
started=$SECONDS

version="0.1.0-consumer.$(date +%s).$$"
# The backend package and its version: the argument, else the version pinned in Directory.Packages.props (TorchSharp's
# for the TorchSharp-* combination packages).
backend=${1:-libtorch-cpu-linux-x64}
backend_version=${2:-}
pinned() { sed -nE "s/.*PackageVersion Include=\"$1\" Version=\"\[?([^]\"]+)\]?\".*/\1/p" "$repo/Directory.Packages.props"; }
[ -n "$backend_version" ] || backend_version=$(pinned "$backend")
case "$backend" in TorchSharp-*) [ -n "$backend_version" ] || backend_version=$(pinned TorchSharp);; esac
[ -n "$backend_version" ] || fail "no version for $backend: pass one after the package id"
# The machine's NuGet cache, read as a fallback folder; the consumer's own global packages folder starts empty.
cache=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')
unset NUGET_PACKAGES

echo "== pack Microsoft.ML.LabelCompletion $version into $work/feed"
dotnet build "$repo/src/Microsoft.ML.LabelCompletion" -c Release -v q -nologo > "$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log"; fail "the library does not build"; }
dotnet pack "$repo/src/Microsoft.ML.LabelCompletion" -c Release --no-build --no-restore -o "$work/feed" \
  -p:PackageVersion="$version" -v q -nologo > "$work/pack.log" 2>&1 \
  || { tail -n 30 "$work/pack.log"; fail "dotnet pack failed"; }
[ -f "$work/feed/Microsoft.ML.LabelCompletion.$version.nupkg" ] || fail "no package in the feed"

app="$work/consumer"
mkdir -p "$app"
# The consumer sees none of this repository's build files; these stop MSBuild's upward search at its own folder.
for f in Directory.Build.props Directory.Build.targets Directory.Packages.props; do echo '<Project />' > "$app/$f"; done
cat > "$app/NuGet.Config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$work/packages" />
  </config>
  <packageSources>
    <add key="lmae-consumer-feed" value="$work/feed" />
  </packageSources>
  <fallbackPackageFolders>
    <add key="machine-cache" value="$cache" />
  </fallbackPackageFolders>
</configuration>
EOF
write_project() { # $1: extra PackageReference lines
  cat > "$app/consumer.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Microsoft.ML.LabelCompletion" Version="$version" />
$1
  </ItemGroup>
</Project>
EOF
}
cp "$repo/test/PackageConsumer/Program.cs" "$app/Program.cs"

echo "== consumer without a libtorch package: restore, then the build must stop with LMAE001"
write_project ""
dotnet restore "$app" -v q -nologo > "$work/restore0.log" 2>&1 || { tail -n 30 "$work/restore0.log"; fail "restore without libtorch failed"; }
[ -d "$work/packages/microsoft.ml.labelcompletion/$version" ] \
  || fail "the package was not restored into the consumer's empty global packages folder"
if grep -q -i -E '"libtorch-[^"/]*/' "$app/obj/project.assets.json"; then
  fail "the library package brings a libtorch package: $(grep -o -i -E '"libtorch-[^"/]*/[^"]*"' "$app/obj/project.assets.json" | sort -u | tr '\n' ' ')"
fi
grep -q 'buildTransitive/Microsoft.ML.LabelCompletion.targets' "$app/obj/consumer.csproj.nuget.g.targets" \
  || fail "NuGet does not import the package's buildTransitive targets"
if dotnet build "$app" -c Release --no-restore -nologo > "$work/build0.log" 2>&1; then
  fail "a consumer without any libtorch package builds (expected error LMAE001)"
fi
grep -q 'error LMAE001' "$work/build0.log" || { tail -n 20 "$work/build0.log"; fail "the build failed, but not with LMAE001"; }

echo "== consumer with $backend $backend_version: build, train in one process"
write_project "    <PackageReference Include=\"$backend\" Version=\"$backend_version\" />"
dotnet build "$app" -c Release -nologo > "$work/build1.log" 2>&1 || { tail -n 30 "$work/build1.log"; fail "the consumer does not build"; }
out="$app/bin/Release/net10.0"
needs_weak=0
if [ "$(uname -s)" = Linux ] && ! grep -q -a 'GLIBCXX_3.4.32' /usr/lib/x86_64-linux-gnu/libstdc++.so.6 2>/dev/null; then needs_weak=1; fi
check_weak() { # $1: folder
  local so
  so=$(find "$1" -name libLibTorchSharp.so | head -n 1)
  [ -n "$so" ] || fail "no libLibTorchSharp.so under $1"
  if [ "$needs_weak" = 1 ] && command -v readelf > /dev/null; then
    readelf -V "$so" | grep -E 'Name: GLIBCXX_3\.4\.32' | grep -q 'Flags: WEAK' \
      || fail "GLIBCXX_3.4.32 is not marked weak in $so"
  fi
}
check_weak "$out"
dotnet "$out/consumer.dll" train "$work/run" || fail "train/evaluate/save in the consumer failed"

echo "== publish the consumer, load the model in a second process from the publish folder"
dotnet publish "$app" -c Release --no-build -o "$app/publish" -nologo > "$work/publish.log" 2>&1 \
  || { tail -n 30 "$work/publish.log"; fail "dotnet publish failed"; }
check_weak "$app/publish"
dotnet "$app/publish/consumer.dll" load "$work/run" || fail "Model.Load in a second process failed"

echo "consumer check: passed ($((SECONDS - started)) s)"
