// validate.mjs FILE... - schema check of rendered Kubernetes manifests.
//
// Every object in every FILE (multi-document YAML, as `kubectl kustomize`
// prints it) is checked against its API schema with the validators of the
// npm packages kubernetes-models (the Kubernetes OpenAPI schemas compiled
// for ajv) and @kubernetes-models/keda (KEDA's CRDs).  An object of a kind
// neither carries is an error: nothing passes unchecked.  On top of the
// schemas, one project rule: a pod's terminationGracePeriodSeconds covers
// its preStop sleep, its own drain (the gateway's limits.shutdown_grace_ms
// from the ConfigMap, an agent's --grace-ms) and 5 s.
//
// Prints one line per file ("ok FILE: N objects (kinds)") or one per error
// ("FILE: doc N KIND/NAME: message"); exits 1 when anything failed.
import { readFileSync } from "node:fs";
import { parseAllDocuments, parse } from "yaml";

const MARGIN_S = 5;

async function modelFor(apiVersion, kind) {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
	const path = group === "keda.sh"
		? `@kubernetes-models/keda/keda.sh/${version}/${kind}`
		: group ? `kubernetes-models/${group}/${version}/${kind}`
			: `kubernetes-models/${version}/${kind}`;
	try {
		const mod = await import(path);
		return mod[kind] ?? null;
	} catch {
		return null;
	}
}

// The drain a container needs, in seconds: from its args or the gateway's config.
function drainSeconds(container, gatewayCfg) {
	const args = [...(container.command ?? []), ...(container.args ?? [])];
	const i = args.indexOf("--grace-ms");
	if (i >= 0)
		return Number(args[i + 1]) / 1000;
	if (args.includes("infergw") && gatewayCfg)
		return (gatewayCfg.limits?.shutdown_grace_ms ?? 10000) / 1000;
	return null;
}

function preStopSeconds(container) {
	const cmd = container.lifecycle?.preStop?.exec?.command ?? [];
	return cmd[0] === "sleep" ? Number(cmd[1]) : 0;
}

function checkGrace(obj, gatewayCfg, errs) {
	const spec = obj.spec?.template?.spec;
	if (!spec)
		return;
	const grace = spec.terminationGracePeriodSeconds ?? 30;
	for (const c of spec.containers ?? []) {
		const drain = drainSeconds(c, gatewayCfg);
		if (drain === null)
			continue;
		const need = preStopSeconds(c) + drain + MARGIN_S;
		if (grace < need)
			errs.push(`container ${c.name}: terminationGracePeriodSeconds ${grace} < preStop ` +
				  `${preStopSeconds(c)} + drain ${drain} + ${MARGIN_S} = ${need}`);
	}
}

let failed = false;
for (const file of process.argv.slice(2)) {
	const docs = parseAllDocuments(readFileSync(file, "utf8"));
	const objs = [];
	for (const d of docs) {
		if (d.errors.length) {
			console.log(`${file}: YAML: ${d.errors[0].message}`);
			failed = true;
			continue;
		}
		const o = d.toJS();
		if (o)
			objs.push(o);
	}
	let gatewayCfg = null;
	for (const o of objs)
		if (o.kind === "ConfigMap" && o.data?.["gateway.yaml"])
			gatewayCfg = parse(o.data["gateway.yaml"]);
	const kinds = new Set();
	let bad = 0;
	for (const [n, o] of objs.entries()) {
		const what = `doc ${n + 1} ${o.kind}/${o.metadata?.name}`;
		const errs = [];
		const Model = o.apiVersion && o.kind ? await modelFor(o.apiVersion, o.kind) : null;
		if (!Model) {
			errs.push(`no schema for apiVersion ${o.apiVersion} kind ${o.kind}`);
		} else {
			try {
				new Model(o).validate();
			} catch (e) {
				errs.push(e.message);
			}
		}
		if (o.kind === "Deployment")
			checkGrace(o, gatewayCfg, errs);
		for (const e of errs)
			console.log(`${file}: ${what}: ${e}`);
		bad += errs.length > 0;
		kinds.add(o.kind);
	}
	if (objs.length === 0) {
		console.log(`${file}: no objects`);
		bad++;
	}
	if (bad)
		failed = true;
	else
		console.log(`ok ${file}: ${objs.length} objects (${[...kinds].sort().join(", ")})`);
}
process.exit(failed ? 1 : 0);
