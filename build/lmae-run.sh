# Sourced by the measurement scripts in build/ (reproduce-camvid.sh, ablation-image-features.sh).
# prepare_run DATA OUT: sets repo (this repository), data and out (absolute; out is created), builds lmae in Release and
# sets the array lmae to the command that runs it.
prepare_run() {
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  data=$(cd "$1" && pwd)
  mkdir -p "$2"
  out=$(cd "$2" && pwd)
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  echo "== building lmae"
  dotnet build "$repo/src/Microsoft.ML.LabelCompletion.Cli" -c Release -nologo -v quiet
  lmae=("$repo/src/Microsoft.ML.LabelCompletion.Cli/bin/Release/net10.0/lmae")
  [ -x "${lmae[0]}" ] || lmae=(dotnet "$repo/src/Microsoft.ML.LabelCompletion.Cli/bin/Release/net10.0/lmae.dll")
}
