// tests/integration/k8s_validate.mjs -- validates Kubernetes manifests against the API's OpenAPI
// schemas (npm package kubernetes-models, and @kubernetes-models/prometheus-operator for the
// monitoring.coreos.com kinds), then checks what a schema cannot see.
//
//   node k8s_validate.mjs --modules DIR [--kustomize DIR]... [FILE]...
//   node k8s_validate.mjs --modules DIR --json FILE        print the file's documents as JSON
//
// DIR for --modules is a node_modules folder holding kubernetes-models and js-yaml. Every YAML
// document must be an object whose apiVersion/kind has a model class; it fails when:
//   * the model's validate() rejects it (types, required fields, enums, formats);
//   * it has a field the schema does not define (a typo that kubectl would silently drop): found
//     by running the same validator over a Proxy that records which properties it read;
// and, for a kustomization (a folder with kustomization.yaml, resources resolved like kustomize
// does, folders recursively), when the objects it builds do not fit together: duplicates, a
// missing namespace, a StatefulSet's serviceName, ServiceAccount, ConfigMap, probe or Service
// port that names nothing, a Service or ServiceMonitor selector that matches nothing.
//
// Prints one "ok ..." or "FAIL ..." line per document and check, then "N passed, N failed";
// exits 1 when anything failed, 2 on a usage or setup error.
import { readFileSync, existsSync, statSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

let passed = 0;
let failed = 0;
const ok = (msg) => {
  passed++;
  console.log(`ok    ${msg}`);
};
const fail = (msg) => {
  failed++;
  console.log(`FAIL  ${msg}`);
};

function usage(msg) {
  console.error(`k8s_validate: ${msg}`);
  console.error("usage: node k8s_validate.mjs --modules DIR [--kustomize DIR]... [FILE]...");
  process.exit(2);
}

const args = process.argv.slice(2);
let modules = null;
const kustomizations = [];
const files = [];
let jsonFile = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--modules" || a === "--kustomize" || a === "--json") {
    if (i + 1 >= args.length) usage(`${a} needs an argument`);
    const v = args[++i];
    if (a === "--modules") modules = v;
    else if (a === "--kustomize") kustomizations.push(v);
    else jsonFile = v;
  } else if (a.startsWith("--")) {
    usage(`unknown option ${a}`);
  } else {
    files.push(a);
  }
}
if (!modules) usage("--modules is required");
if (!existsSync(path.join(modules, "kubernetes-models")) || !existsSync(path.join(modules, "js-yaml")))
  usage(`${modules} does not hold kubernetes-models and js-yaml (npm install them first)`);

const yaml = (await import(pathToFileURL(path.join(modules, "js-yaml", "index.js")).href)).default;

function loadDocs(file) {
  const text = readFileSync(file, "utf8");
  // Kubernetes' YAML is 1.2-ish; js-yaml's default schema reads "yes"/"on" as strings, like it.
  return yaml.loadAll(text).filter((d) => d !== null && d !== undefined);
}

if (jsonFile) {
  process.stdout.write(JSON.stringify(loadDocs(jsonFile)) + "\n");
  process.exit(0);
}

// ---- Model classes -----------------------------------------------------------------------------

const modCache = new Map();
async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (!/^[a-z0-9.-]*\/?v[0-9a-z]+$/.test(apiVersion)) return null;
  const pkg = apiVersion.startsWith("monitoring.coreos.com/")
    ? path.join(modules, "@kubernetes-models", "prometheus-operator", apiVersion)
    : path.join(modules, "kubernetes-models", apiVersion);
  const file = path.join(pkg, "index.mjs");
  if (!modCache.has(file)) {
    modCache.set(file, existsSync(file) ? await import(pathToFileURL(file).href) : null);
  }
  const mod = modCache.get(file);
  const cls = mod && Object.prototype.hasOwnProperty.call(mod, kind) ? mod[kind] : null;
  if (!cls || cls.kind !== kind || cls.apiVersion !== apiVersion) return null;
  return cls;
}

// ---- Unknown fields ---------------------------------------------------------------------------

// Copies v, wrapping every plain object in a Proxy that records the property names read from it.
function track(v, where, recs) {
  if (Array.isArray(v)) return v.map((x, i) => track(x, `${where}/${i}`, recs));
  if (v !== null && typeof v === "object") {
    const rec = { where, keys: Object.keys(v), seen: new Set() };
    recs.push(rec);
    const copy = {};
    for (const k of rec.keys) copy[k] = track(v[k], `${where}/${k}`, recs);
    return new Proxy(copy, {
      get(t, k, r) {
        if (typeof k === "string") rec.seen.add(k);
        return Reflect.get(t, k, r);
      },
    });
  }
  return v;
}

// The generated validators test every property their schema defines (`data.x === undefined`) and
// iterate the keys of maps, so a key of an object the validator entered that it never read is not
// in the schema. Objects it never looked into (free-form fields) are skipped.
function unknownFields(cls, obj) {
  const recs = [];
  const proxy = track(obj, "", recs);
  try {
    cls.prototype.validate.call(proxy);
  } catch {
    return []; // reported by the plain validation
  }
  const out = [];
  for (const r of recs) {
    if (r.seen.size === 0) continue;
    for (const k of r.keys) if (!r.seen.has(k)) out.push(`${r.where}/${k}`);
  }
  return out;
}

// ---- One document ------------------------------------------------------------------------------

async function validateDoc(doc, label) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    fail(`${label}: not a mapping`);
    return false;
  }
  const name = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
  const cls = await modelFor(doc.apiVersion, doc.kind);
  if (!cls) {
    fail(`${label} ${name}: no schema for apiVersion "${doc.apiVersion}" kind "${doc.kind}"`);
    return false;
  }
  try {
    new cls(doc).validate();
  } catch (e) {
    fail(`${label} ${name}: ${String(e.message).split("\n").join("; ")}`);
    return false;
  }
  const extra = unknownFields(cls, doc);
  if (extra.length) {
    fail(`${label} ${name}: field(s) not in the ${doc.apiVersion} ${doc.kind} schema: ${extra.join(", ")}`);
    return false;
  }
  if (!doc.metadata || typeof doc.metadata.name !== "string" || doc.metadata.name === "") {
    fail(`${label} ${name}: metadata.name is missing`);
    return false;
  }
  ok(`${label} ${name}`);
  return true;
}

async function validateFile(file) {
  let docs;
  try {
    docs = loadDocs(file);
  } catch (e) {
    fail(`${file}: YAML: ${String(e.message).split("\n")[0]}`);
    return null;
  }
  if (docs.length === 0) {
    fail(`${file}: no documents`);
    return null;
  }
  const good = [];
  for (let i = 0; i < docs.length; i++) {
    if (await validateDoc(docs[i], `${file}#${i}`)) good.push(docs[i]);
  }
  return good.length === docs.length ? good : null;
}

// ---- Kustomizations -------------------------------------------------------------------------------

const KUSTOMIZE_KEYS = new Set([
  "apiVersion", "kind", "metadata", "namespace", "namePrefix", "nameSuffix", "resources",
  "components", "images", "labels", "commonLabels", "commonAnnotations", "patches",
  "configMapGenerator", "secretGenerator", "generatorOptions", "replicas", "buildMetadata",
]);

// Returns the objects a kustomization builds (its resources, with its namespace applied), or null.
async function buildKustomization(dir, depth) {
  const kfile = path.join(dir, "kustomization.yaml");
  if (depth > 8) {
    fail(`${kfile}: resources nest too deep`);
    return null;
  }
  if (!existsSync(kfile)) {
    fail(`${dir}: no kustomization.yaml`);
    return null;
  }
  let k;
  try {
    const docs = loadDocs(kfile);
    if (docs.length !== 1) throw new Error(`${docs.length} documents, expected 1`);
    k = docs[0];
  } catch (e) {
    fail(`${kfile}: ${String(e.message).split("\n")[0]}`);
    return null;
  }
  let good = true;
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization") {
    fail(`${kfile}: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization`);
    good = false;
  }
  const unknown = Object.keys(k).filter((x) => !KUSTOMIZE_KEYS.has(x));
  if (unknown.length) {
    fail(`${kfile}: unknown key(s) ${unknown.join(", ")}`);
    good = false;
  }
  if (!Array.isArray(k.resources) || k.resources.length === 0) {
    fail(`${kfile}: resources must be a non-empty list`);
    return null;
  }
  for (const img of k.images || []) {
    if (!img || typeof img.name !== "string" || !(img.newTag || img.newName || img.digest)) {
      fail(`${kfile}: images entries need a name and newName, newTag or digest`);
      good = false;
    }
  }
  const objs = [];
  for (const r of k.resources) {
    if (typeof r !== "string" || /^[a-z]+:\/\//.test(r)) {
      fail(`${kfile}: resource ${JSON.stringify(r)} is not a local path`);
      good = false;
      continue;
    }
    const p = path.join(dir, r);
    if (!existsSync(p)) {
      fail(`${kfile}: resource ${r} does not exist`);
      good = false;
      continue;
    }
    const got = statSync(p).isDirectory() ? await buildKustomization(p, depth + 1) : await validateFile(p);
    if (!got) {
      good = false;
      continue;
    }
    objs.push(...got);
  }
  if (!good) return null;
  if (typeof k.namespace === "string") {
    for (const o of objs) {
      if (o.kind === "Namespace") continue;
      o.metadata.namespace = k.namespace;
    }
  }
  ok(`${kfile}: ${k.resources.length} resource(s), ${objs.length} object(s)`);
  return objs;
}

// ---- Cross-object checks ------------------------------------------------------------------------

const matches = (sel, labels) =>
  sel && Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => (labels || {})[k] === v);

function crossCheck(where, objs) {
  const errs = [];
  const key = (o) => `${o.kind}/${o.metadata.namespace || ""}/${o.metadata.name}`;
  const seen = new Set();
  for (const o of objs) {
    if (seen.has(key(o))) errs.push(`duplicate ${key(o)}`);
    seen.add(key(o));
  }
  const namespaces = new Set(objs.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name));
  const find = (kind, ns, name) =>
    objs.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace || "") === (ns || ""));
  for (const o of objs) {
    if (o.kind !== "Namespace" && !namespaces.has(o.metadata.namespace))
      errs.push(`${key(o)}: namespace "${o.metadata.namespace}" is not created by this kustomization`);
  }
  const services = objs.filter((o) => o.kind === "Service");
  for (const sts of objs.filter((o) => o.kind === "StatefulSet")) {
    const ns = sts.metadata.namespace;
    const tpl = sts.spec.template;
    const pod = tpl.spec;
    const label = key(sts);
    if (!matches(sts.spec.selector.matchLabels, tpl.metadata && tpl.metadata.labels))
      errs.push(`${label}: selector does not match the pod template's labels`);
    const svc = find("Service", ns, sts.spec.serviceName);
    if (!svc) errs.push(`${label}: serviceName "${sts.spec.serviceName}" names no Service`);
    else if (svc.spec.clusterIP !== "None") errs.push(`${label}: serviceName "${sts.spec.serviceName}" is not headless`);
    if (pod.serviceAccountName && !find("ServiceAccount", ns, pod.serviceAccountName))
      errs.push(`${label}: serviceAccountName "${pod.serviceAccountName}" names no ServiceAccount`);
    const volumes = new Set((pod.volumes || []).map((v) => v.name));
    for (const t of sts.spec.volumeClaimTemplates || []) volumes.add(t.metadata.name);
    for (const v of pod.volumes || []) {
      if (v.configMap && !find("ConfigMap", ns, v.configMap.name))
        errs.push(`${label}: volume "${v.name}" names ConfigMap "${v.configMap.name}", which does not exist`);
    }
    const ports = new Set();
    for (const c of pod.containers) {
      for (const p of c.ports || []) {
        if (p.name) ports.add(p.name);
        ports.add(p.containerPort);
      }
      for (const m of c.volumeMounts || [])
        if (!volumes.has(m.name)) errs.push(`${label}: container ${c.name} mounts unknown volume "${m.name}"`);
      for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const h = c[probe] && c[probe].httpGet;
        if (h && !ports.has(h.port)) errs.push(`${label}: ${probe} port "${h.port}" is not a container port`);
      }
    }
    for (const s of services) {
      if (s.metadata.namespace !== ns || !matches(s.spec.selector, tpl.metadata.labels)) continue;
      for (const p of s.spec.ports)
        if (!ports.has(p.targetPort === undefined ? p.port : p.targetPort))
          errs.push(`${key(s)}: targetPort "${p.targetPort}" is not a port of ${label}`);
    }
  }
  const pods = objs.filter((o) => o.kind === "StatefulSet").map((o) => o.spec.template.metadata.labels);
  for (const s of services) {
    if (!pods.some((l) => matches(s.spec.selector, l))) errs.push(`${key(s)}: selector matches no pod template`);
  }
  for (const sm of objs.filter((o) => o.kind === "ServiceMonitor")) {
    const ns = (sm.spec.namespaceSelector && sm.spec.namespaceSelector.matchNames) || [sm.metadata.namespace];
    const hit = services.filter(
      (s) => ns.includes(s.metadata.namespace) && matches(sm.spec.selector.matchLabels, s.metadata.labels),
    );
    if (hit.length !== 1) errs.push(`${key(sm)}: selector matches ${hit.length} Services, expected 1`);
    for (const ep of sm.spec.endpoints || [])
      for (const s of hit)
        if (!s.spec.ports.some((p) => p.name === ep.port))
          errs.push(`${key(sm)}: endpoint port "${ep.port}" is not a port of ${key(s)}`);
  }
  if (errs.length) for (const e of errs) fail(`${where}: ${e}`);
  else ok(`${where}: objects reference each other consistently`);
}

// ---- Main --------------------------------------------------------------------------------------------

for (const dir of kustomizations) {
  const objs = await buildKustomization(dir, 0);
  if (objs) crossCheck(path.join(dir, "kustomization.yaml"), objs);
}
for (const f of files) await validateFile(f);
if (kustomizations.length === 0 && files.length === 0) usage("nothing to validate");
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
