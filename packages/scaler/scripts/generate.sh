#!/usr/bin/env bash
# Generates the TypeScript for proto/ into the directory given as $1 (src/gen for the real thing).
# npm-only: buf (from @bufbuild/buf, a binary shipped in the npm package) compiles the protos and
# runs ts-proto as a local plugin, so no system protoc is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: generate.sh OUTDIR}"
mkdir -p "$out"
template='{"version":"v2","plugins":[{"local":"node_modules/.bin/protoc-gen-ts_proto","out":".","opt":["outputServices=grpc-js","env=node","esModuleInterop=true","enumsAsLiterals=true","importSuffix=.js","outputJsonMethods=false","useExactTypes=false","forceLong=number","useOptionals=none","exportCommonSymbols=false"]}]}'
node_modules/.bin/buf generate proto --template "$template" --output "$out"
