// checks.mjs FILE [SPOT_KEY=VALUE [tainted]] - what the deploy/k8s manifests must
// say, beyond their schemas (tests/deploy/test_k8s.sh).  Prints one line
// per failed check and exits 1, or prints "ok" lines and exits 0.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const [file, spot, tainted] = process.argv.slice(2);
const objs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
const find = (kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const errs = [];
const expect = (cond, msg) => { if (!cond) errs.push(msg); };

const gw = find("Deployment", "infergw-gateway");
const gwc = gw?.spec.template.spec.containers[0];
expect(gwc?.readinessProbe?.httpGet?.path === "/v2/health/ready", "gateway readiness probe is not GET /v2/health/ready");
expect(gwc?.livenessProbe?.httpGet?.path === "/v2/health/live", "gateway liveness probe is not GET /v2/health/live");
expect(gw?.spec.template.spec.securityContext?.runAsNonRoot === true, "gateway pod not runAsNonRoot");
expect(gwc?.resources?.requests && gwc?.resources?.limits, "gateway without resource requests and limits");
expect(!gwc?.volumeMounts?.some((m) => m.subPath), "gateway config mounted with subPath (never updated)");
expect(find("PodDisruptionBudget", "infergw-gateway"), "no PodDisruptionBudget for the gateway");
// The admin listener is on the pod network: its token comes from a Secret
// mounted (not optional) where gateway.yaml's admin.token_file points.
// The file at path is in a Secret mounted (not optional) into container c of pod spec ps.
const inSecret = (ps, c, path) => ps?.volumes?.some((v) => v.secret && v.secret.optional !== true &&
	c?.volumeMounts?.some((m) => m.name === v.name && path?.startsWith(m.mountPath + "/")));
const gwyaml = find("ConfigMap", "infergw-gateway")?.data?.["gateway.yaml"] ?? "";
const tokenFile = /^admin:(?:\n .*)*?\n\s+token_file:\s*(\S+)/m.exec(gwyaml)?.[1];
expect(tokenFile, "gateway.yaml has no admin.token_file (the admin API open to the pod network)");
expect(inSecret(gw?.spec.template.spec, gwc, tokenFile), `admin.token_file ${tokenFile} is not in a mounted, required Secret`);
// Agents listen on the pod network too: each asks for a token (--token-file
// from a Secret), and every remote backend of the gateway shows one.
const remotes = gwyaml.split(/\n\s+- name: /).filter((b) => /\n\s+kind: remote/.test(b));
expect(remotes.length, "gateway.yaml has no remote backends");
for (const b of remotes) {
	const f = /\n\s+token_file:\s*(\S+)/.exec(b)?.[1];
	expect(f && inSecret(gw?.spec.template.spec, gwc, f), `remote backend ${b.split("\n")[0]}: no token_file in a mounted, required Secret`);
}
expect(find("ConfigMap", "infergw-gateway")?.data?.["gateway.yaml"], "no ConfigMap infergw-gateway with gateway.yaml");
for (const pool of ["cpu", "gpu"]) {
	const svc = find("Service", `infergw-agent-${pool}`);
	expect(svc?.spec.clusterIP === "None", `agent Service ${pool} is not headless`);
	expect(find("Deployment", `infergw-agent-${pool}`), `no agent Deployment ${pool}`);
}
for (const pool of ["cpu", "gpu"]) {
	const ps = find("Deployment", `infergw-agent-${pool}`)?.spec.template.spec;
	const args = ps?.containers[0].args ?? [];
	const f = args.includes("--token-file") ? args[args.indexOf("--token-file") + 1] : undefined;
	expect(f && inSecret(ps, ps?.containers[0], f), `agent ${pool}: no --token-file in a mounted, required Secret`);
}
const gpu = find("Deployment", "infergw-agent-gpu")?.spec.template.spec;
const gpuc = gpu?.containers[0];
expect(gpuc?.resources?.limits?.["nvidia.com/gpu"] == 1, "GPU agent without an nvidia.com/gpu limit of 1");
const gargs = gpuc?.args ?? [];
expect(gargs[gargs.indexOf("--backend") + 1] === "gpu", "GPU agent does not run --backend gpu");
const na = gpu?.affinity?.nodeAffinity;
expect(na?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.length, "GPU agent without a required GPU node term");
expect(gpu?.tolerations?.some((t) => t.key === "nvidia.com/gpu"), "GPU agent does not tolerate nvidia.com/gpu");
if (spot) {
	const [key, value] = spot.split("=");
	const pref = na?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
	const exprs = pref.flatMap((p) => p.preference.matchExpressions ?? []);
	expect(exprs.some((e) => e.key === key && e.values?.includes(value)), `GPU agent does not prefer ${key}=${value}`);
	expect(exprs.every((e) => e.key === key), `GPU agent prefers other keys too: ${exprs.map((e) => e.key)}`);
	if (tainted)
		expect(gpu?.tolerations?.some((t) => t.key === key && (t.operator === "Exists" || t.value === value)),
		       `GPU agent does not tolerate the spot taint ${key}=${value}`);
	expect(!("karpenter.sh/capacity-type" in Object.fromEntries(exprs.map((e) => [e.key, 1]))), "base preference left in");
}
for (const e of errs)
	console.log(`${file}: ${e}`);
if (!errs.length)
	console.log(`ok ${file}: manifest checks${spot ? ` (spot ${spot})` : ""}`);
process.exit(errs.length ? 1 : 0);
