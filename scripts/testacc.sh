#!/usr/bin/env bash
# `make testacc`: the examples against a real cluster with Kargo installed — apply, an empty
# plan right after, then destroy — when TF_ACC=1 and KUBECONFIG are set; otherwise says why not.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ "${TF_ACC:-}" != "1" ] || [ -z "${KUBECONFIG:-}" ]; then
  echo "testacc: SKIPPED: set TF_ACC=1 and KUBECONFIG (a cluster with Kargo installed) to run it;" \
    "TF_ACC is '${TF_ACC:-}', KUBECONFIG is '${KUBECONFIG:-}'"
  exit 0
fi

tf="$("$root/scripts/tf-binary")"
"${MAKE:-make}" -C "$root" --no-print-directory build
target="${CARGO_TARGET_DIR:-$root/target}/debug"
# KUBECONFIG may list several files; the examples take one path, the first.
kubeconfig="${KUBECONFIG%%:*}"
[ -r "$kubeconfig" ] || { echo "testacc: cannot read the kubeconfig $kubeconfig" >&2; exit 1; }
context="${KUBE_CTX:-}"

work="$(mktemp -d)"
cat > "$work/dev.tfrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/dokaseca/kargo" = "$target"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

status=0
applied=()
cleanup() {
  for dir in ${applied[@]+"${applied[@]}"}; do
    [ -n "$dir" ] || continue
    echo "testacc: destroying what $(basename "$dir") created"
    "$tf" -chdir="$dir" destroy -auto-approve -no-color ${vars[@]+"${vars[@]}"} >/dev/null 2>&1 ||
      echo "testacc: destroy in $dir failed; clean up by hand" >&2
  done
  rm -rf "$work"
}
trap cleanup EXIT

# prepare NAME SOURCE_DIR: copies an example into the work dir and prints the copy's path.
prepare() {
  local dir="$work/$1"
  mkdir -p "$dir"
  cp "$2"/*.tf "$dir/"
  echo "$dir"
}

# tf_empty_plan DIR ARGS...: the plan must be empty.
tf_empty_plan() {
  local dir="$1" code=0; shift
  "$tf" -chdir="$dir" plan -detailed-exitcode -no-color -compact-warnings "$@" >/dev/null || code=$?
  if [ "$code" -ne 0 ]; then
    echo "testacc: $(basename "$dir"): FAILED: the plan is not empty (exit $code)" >&2
    status=1
  fi
}

# The quickstart: apply, empty plan, destroy.
vars=(-var "kubeconfig=$kubeconfig")
dir="$(prepare quickstart "$root/examples/quickstart")"
applied+=("$dir")
echo "testacc: quickstart: apply"
"$tf" -chdir="$dir" apply -auto-approve -no-color -compact-warnings "${vars[@]}"
tf_empty_plan "$dir" "${vars[@]}"
echo "testacc: quickstart: destroy"
"$tf" -chdir="$dir" destroy -auto-approve -no-color -compact-warnings "${vars[@]}"
applied=()
echo "testacc: quickstart: ok"

# The hub cluster: switch enable_kargo on (apply, empty plan), then off (everything goes).
vars=(-var "kubeconfig_path=$kubeconfig")
[ -n "$context" ] && vars+=(-var "kubeconfig_context=$context")
dir="$(prepare hub-cluster "$root/examples/hub-cluster")"
applied+=("$dir")
echo "testacc: hub-cluster: enable_kargo = true"
"$tf" -chdir="$dir" apply -auto-approve -no-color -compact-warnings "${vars[@]}" -var 'addons={ enable_kargo = true }'
tf_empty_plan "$dir" "${vars[@]}" -var 'addons={ enable_kargo = true }'
echo "testacc: hub-cluster: enable_kargo = false"
"$tf" -chdir="$dir" apply -auto-approve -no-color -compact-warnings "${vars[@]}" -var 'addons={ enable_kargo = false }'
tf_empty_plan "$dir" "${vars[@]}" -var 'addons={ enable_kargo = false }'
left="$("$tf" -chdir="$dir" state list)"
if [ -n "$left" ]; then
  echo "testacc: hub-cluster: FAILED: still in state after enable_kargo = false:" >&2
  echo "$left" >&2
  status=1
fi
applied=()
echo "testacc: hub-cluster: ok"

[ "$status" -eq 0 ] && echo "testacc: passed" || echo "testacc: FAILED" >&2
exit $status
