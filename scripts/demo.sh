#!/usr/bin/env bash
# `make demo`: start the sandbox, serve the quickstart's manifests as a Git repository,
# apply the quickstart with the freshly built provider, promote, show the commit the
# promotion pushed, and stop the sandbox. Everything lives under .demo/. Needs git.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v git >/dev/null || { echo "make demo needs git on PATH (the sandbox serves the quickstart's manifests repository with it)" >&2; exit 1; }
tf="$("$root/scripts/tf-binary")"
target="${CARGO_TARGET_DIR:-$root/target}/debug"
demo="$root/.demo"
rm -rf "$demo" && mkdir -p "$demo/quickstart"
cp "$root"/examples/quickstart/*.tf "$demo/quickstart/"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Starting the sandbox (a local Kubernetes API with Kargo's behaviour)"
"$target/kargo-sandbox" serve --kubeconfig "$demo/kubeconfig" 2>"$demo/sandbox.log" &
sandbox_pid=$!
trap 'kill "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$demo/kubeconfig" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$demo/sandbox.log"; echo "sandbox exited" >&2; exit 1; }
  sleep 0.1
done
[ -s "$demo/kubeconfig" ] || { echo "sandbox did not start; see $demo/sandbox.log" >&2; exit 1; }
echo "kubeconfig: $demo/kubeconfig"

step "A manifests repository in the sandbox: examples/quickstart/gitops on branch main"
repo_url="$("$target/kargo-sandbox" git create --kubeconfig "$demo/kubeconfig" guestbook-gitops \
  --from "$root/examples/quickstart/gitops")"
echo "$repo_url"
# Git clients trust the sandbox's CA, the one in the kubeconfig.
sed -n 's/^ *certificate-authority-data: *//p' "$demo/kubeconfig" | head -n1 | base64 -d >"$demo/ca.crt"

cat > "$demo/dev.tfrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/dokaseca/kargo" = "$target"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$demo/dev.tfrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export TF_VAR_kubeconfig="$demo/kubeconfig" TF_VAR_gitops_repo_url="$repo_url" TF_VAR_git_ca_file="$demo/ca.crt"
cd "$demo/quickstart"

step "terraform apply (examples/quickstart): project, warehouse, dev and staging"
"$tf" apply -auto-approve -compact-warnings

step "terraform plan right after apply: nothing to do"
"$tf" plan -detailed-exitcode -compact-warnings

publish() {
  "$target/kargo-sandbox" publish --kubeconfig "$demo/kubeconfig" \
    --project kargo-demo --warehouse guestbook --image "ghcr.io/akuity/guestbook:$1"
}

step "The warehouse discovers guestbook 1.0.0 (kargo-sandbox publish stands in for the registry)"
publish 1.0.0

step "terraform apply -var dev_version=^1.0.0: promote the newest 1.x image into dev and wait"
export TF_VAR_dev_version="^1.0.0"
"$tf" apply -auto-approve -compact-warnings

step "guestbook 1.1.0 is pushed to the registry"
publish 1.1.0

step "terraform plan: the plan-time promotion diff (which freight moves into dev, what changes, and the manifest change it will push)"
"$tf" plan -compact-warnings -out="$demo/promote.tfplan"

step "terraform apply of that plan: Kargo promotes dev and the provider waits for it"
"$tf" apply -compact-warnings "$demo/promote.tfplan"

step "terraform plan right after: nothing to do"
"$tf" plan -detailed-exitcode -compact-warnings

step "dev as Kargo reports it now: terraform apply -refresh-only records the stage's new freight"
"$tf" apply -refresh-only -auto-approve -compact-warnings >/dev/null
"$tf" state show -no-color kargo_stage.dev | sed -n '/current_freight/,/^    }/p'

step "The commit the promotion pushed: git log -1 -p stage/dev"
GIT_SSL_CAINFO="$demo/ca.crt" git clone -q --branch stage/dev "$repo_url" "$demo/guestbook-gitops"
git -C "$demo/guestbook-gitops" --no-pager log -1 -p --format='commit %H%nAuthor: %an <%ae>%n%n%B'

step "What Kargo now holds"
kubectl_bin="$(command -v kubectl || true)"
if [ -n "$kubectl_bin" ]; then
  "$kubectl_bin" --kubeconfig "$demo/kubeconfig" get projects.kargo.akuity.io
  "$kubectl_bin" --kubeconfig "$demo/kubeconfig" -n kargo-demo get warehouses,stages,freight,promotions
else
  "$tf" state list
fi
"$tf" output

step "Done. The sandbox stops now; .demo/ keeps the configuration and logs."
