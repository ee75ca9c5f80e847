#!/usr/bin/env bash
# Every example must be formatted and valid against the provider's schema (built from
# this checkout, through a dev_overrides CLI config; no registry access needed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tf="$("$root/scripts/tf-binary")"
target="${CARGO_TARGET_DIR:-$root/target}/debug"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/dev.tfrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/dokaseca/kargo" = "$target"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
"$tf" fmt -check -recursive -diff "$root/examples"
status=0
while IFS= read -r dir; do
  copy="$work/$(echo "${dir#"$root"/}" | tr / _)"
  mkdir -p "$copy"
  cp "$dir"/*.tf "$copy/"
  if out="$("$tf" -chdir="$copy" validate -no-color 2>&1)"; then
    echo "ok: ${dir#"$root"/}"
  else
    echo "FAILED: ${dir#"$root"/}"; echo "$out"; status=1
  fi
done < <(find "$root/examples" -name '*.tf' -exec dirname {} \; | sort -u)
exit $status
