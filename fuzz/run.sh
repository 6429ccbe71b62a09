#!/usr/bin/env bash
# Builds the libFuzzer harness for the safetensors header / index parsers and runs it.
# Usage: fuzz/run.sh [seconds=60] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"; shift || true
out=.build-fuzz
mkdir -p "$out/corpus" "$out/artifacts"
swiftc -sanitize=fuzzer,address -parse-as-library -g -O -module-name SlothFuzz \
    fuzz/SafeTensorsFuzz.swift Sources/SlothCore/DType.swift Sources/SlothFormats/*.swift \
    -o "$out/safetensors-fuzz"
# Seed with the committed fixtures (small .safetensors files and index JSON).
find Tests/Fixtures/safetensors -name '*.safetensors' -size -8k -exec cp {} "$out/corpus/" \;
cp Tests/Fixtures/safetensors/sharded2/model.safetensors.index.json "$out/corpus/index.json"
"$out/safetensors-fuzz" "$out/corpus" -max_total_time="$secs" -max_len=4096 \
    -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$@"
