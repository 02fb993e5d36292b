#!/usr/bin/env bash
# test_k8s.sh - deploy/k8s, client side only (no cluster):
#  - every kustomization (base, overlays/*, autoscaling/*) renders with
#    `kubectl kustomize` from Debian's kubernetes-client (kubectl 1.20,
#    kustomize v2: the oldest the manifests promise to render with).  The
#    package is fetched with `apt-get download` (no root, no install: an
#    installed kubectl stays as it is) and unpacked under build/k8s-tools;
#  - every rendered object passes its Kubernetes API schema (npm packages
#    kubernetes-models and @kubernetes-models/keda: the OpenAPI schemas
#    compiled for ajv; installed with `npm ci` from the committed lock into
#    build/k8s-validate), and pods' grace periods cover their drain;
#  - what the manifests must say (probes, headless agent Services, GPU
#    limits, affinity and the cloud's spot label and taint, ...);
#  - the gateway config in the ConfigMap loads (infergw --check-config);
#  - broken manifests (a field of the wrong type, a grace period shorter
#    than the drain) are rejected.
# Prints one line per check and ends with "k8s: N passed, N failed, N skipped".
# Exit status: 0 unless a check failed.  Missing tools (no apt-get or npm,
# no network) skip with the reason.
set -u
cd "$(dirname "$0")/../.."
root=$PWD
tools=$root/build/k8s-tools
val=$root/build/k8s-validate
out=$root/build/k8s-rendered
pass=0 fail=0 skip=0
mkdir -p "$tools" "$val" "$out"

ok() { echo "k8s: $1: passed"; pass=$((pass + 1)); }
bad() { echo "k8s: $1: FAILED${2:+: $2}"; fail=$((fail + 1)); }
skipped() { echo "k8s: $1: skipped: $2"; skip=$((skip + 1)); }
finish() { echo "k8s: $pass passed, $fail failed, $skip skipped"; [ "$fail" -eq 0 ]; exit; }

# kubectl from Debian's kubernetes-client, cached under build/k8s-tools.
kubectl=$tools/root/usr/bin/kubectl
fetch_kubectl() {
	(cd "$tools" && rm -f kubernetes-client_*.deb &&
	 timeout 300 apt-get download kubernetes-client >download.log 2>&1 &&
	 dpkg-deb -x kubernetes-client_*.deb root)
}
if [ ! -x "$kubectl" ] && ! fetch_kubectl && [ "$(id -u)" -eq 0 ]; then
	# a fresh machine may have no package lists yet (as root: read them once)
	timeout 300 apt-get update -q >"$tools/update.log" 2>&1 && fetch_kubectl
fi
if [ ! -x "$kubectl" ] || ! "$kubectl" version --client >/dev/null 2>&1; then
	skipped all "no kubectl: apt-get download kubernetes-client failed ($(tail -1 "$tools/download.log" 2>/dev/null))"
	finish
fi

# The validator: npm ci when the committed lock changed since the last one.
for f in package.json package-lock.json validate.mjs checks.mjs; do
	cp tests/deploy/k8s-validate/$f "$val/"
done
stamp=$(sha256sum tests/deploy/k8s-validate/package-lock.json | cut -c1-16)
if [ "$(cat "$val/.stamp" 2>/dev/null)" != "$stamp" ] || [ ! -d "$val/node_modules" ]; then
	if ! command -v npm >/dev/null 2>&1; then
		skipped all "no npm (the schema validator is an npm package)"
		finish
	fi
	if (cd "$val" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
		echo "$stamp" >"$val/.stamp"
	else
		skipped all "npm ci of the validator failed: $(grep -m1 -i err "$val/npm.log")"
		finish
	fi
fi

# render NAME DIR: kubectl kustomize DIR > $out/NAME.yaml; 0 when it rendered.
render() {
	"$kubectl" kustomize "$2" >"$out/$1.yaml" 2>"$out/$1.err"
}

# Every kustomization renders and validates.
for dir in deploy/k8s/base deploy/k8s/overlays/* deploy/k8s/autoscaling/*; do
	name=$(echo "${dir#deploy/k8s/}" | tr / -)
	if ! render "$name" "$dir"; then
		bad "render $dir" "$(head -3 "$out/$name.err")"
	elif msg=$(node "$val/validate.mjs" "$out/$name.yaml" 2>&1); then
		ok "render + schema $dir (${msg#*: })"
	else
		bad "schema $dir" "$msg"
	fi
done

# What the manifests say: base, and each cloud's spot preference/taint.
while read -r name args; do
	[ -s "$out/$name.yaml" ] || { bad "checks $name" "not rendered"; continue; }
	# shellcheck disable=SC2086
	if msg=$(node "$val/checks.mjs" "$out/$name.yaml" $args 2>&1); then
		ok "checks $name${args:+ ($args)}"
	else
		bad "checks $name" "$msg"
	fi
done <<'LIST'
base
overlays-gke-spot cloud.google.com/gke-spot=true tainted
overlays-eks-spot eks.amazonaws.com/capacityType=SPOT
overlays-aks-spot kubernetes.azure.com/scalesetpriority=spot tainted
LIST

# The gateway's config in the ConfigMap is one the gateway loads (the
# image's model path swapped for the checkout's, the Secret's token file for
# one made here).
if [ ! -x build/infergw ]; then
	skipped "gateway config" "build/infergw not built (make)"
else
	# node -e resolves imports from the cwd: run it in the validator's folder
	(cd "$val" && node --input-type=module -e '
			import { readFileSync } from "node:fs";
			import { parseAllDocuments } from "yaml";
			for (const d of parseAllDocuments(readFileSync(process.argv[1], "utf8"))) {
				const o = d.toJS();
				if (o?.kind === "ConfigMap" && o.data?.["gateway.yaml"])
					process.stdout.write(o.data["gateway.yaml"]);
			}' "$out/base.yaml") | sed -e "s|/opt/infergw/models|$root/config/models|" \
			-e "s|/etc/infergw-admin/token|$out/admin.token|" \
			-e "s|/etc/infergw-agent/token|$out/agent.token|" >"$out/gateway.yaml"
	# the Secrets' tokens, as `openssl rand -hex 32` makes them (docs/deploy.md)
	for t in admin agent; do
		od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$out/$t.token"
	done
	if msg=$(timeout 60 build/infergw --check-config "$out/gateway.yaml" 2>/dev/null) &&
	   echo "$msg" | grep -q "ok: 1 model(s), 2 backend(s)"; then
		ok "gateway config in the ConfigMap loads"
	else
		bad "gateway config in the ConfigMap loads" "$msg"
	fi
fi

# Negative checks: each renders, and the validator rejects it for its reason.
while read -r name want; do
	dir=tests/deploy/k8s-broken/$name
	if ! render "broken-$name" "$dir"; then
		bad "broken $name renders" "$(head -3 "$out/broken-$name.err")"
		continue
	fi
	if msg=$(node "$val/validate.mjs" "$out/broken-$name.yaml" 2>&1); then
		bad "broken $name rejected" "the validator accepted it"
	elif echo "$msg" | grep -q -- "$want"; then
		ok "broken $name rejected ($(echo "$msg" | grep -m1 -- "$want" | sed 's/.*: doc/doc/'))"
	else
		bad "broken $name rejected" "for another reason than \"$want\": $msg"
	fi
done <<'LIST'
wrong-type spec/replicas must be integer
short-grace terminationGracePeriodSeconds 10 < preStop 5 + drain 20 + 5
LIST

finish
