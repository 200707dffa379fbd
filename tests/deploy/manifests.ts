/**
 * Offline validation of the Kubernetes manifests in deploy/k8s. No API server or scheduler can run
 * here, so what they would refuse is approximated in three layers:
 *   1. schema: each object against the Kubernetes OpenAPI models (kubernetes-models);
 *   2. unknown fields: a walk over @kubernetes/client-node's model type map (an API server drops or,
 *      with strict field validation, refuses fields its schema lacks; a typo would be silently lost);
 *   3. the cross-object rules below, which neither checks: selectors, names, ports, what Services,
 *      NetworkPolicies, PodDisruptionBudgets and autoscalers point at, GPUs, images, probes, security;
 *   4. the NATS login: server, clients, Secret and NetworkPolicy agree (nats-login.ts).
 * Every finding names the object (Kind/name) and the field, e.g.
 *   `Deployment/rlmesh-env: spec.selector.matchLabels: {"app":"x"} does not select spec.template.metadata.labels`.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { matches, nsOf, type Obj, type PodTemplate, podHasPort, podTemplates, ref, selects } from './k8s-objects';
import { natsLoginErrors } from './nats-login';

export { type Obj, ref } from './k8s-objects';

export const ROOT = join(__dirname, '..', '..');
export const K8S = join(ROOT, 'deploy', 'k8s');
export const OVERLAYS = ['dev', 'gpu', 'scale'] as const;
export type Overlay = (typeof OVERLAYS)[number];

/** Why the manifest tests cannot run here, or null. Under CI nothing may be missing. */
export function missingKubectl(): string | null {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return null;
  } catch {
    if (process.env.CI === 'true') throw new Error('the manifest tests need kubectl (with its built-in kustomize)');
    return 'kubectl';
  }
}

/** The NATS login file the base's secretGenerator reads; never committed (deploy/k8s/base/.gitignore). */
export const NATS_AUTH_ENV = 'nats-auth.env';

/**
 * deploy/k8s copied to a temporary directory with a fresh login written by `deploy/image.sh
 * nats-secret`, to render from: the real login is not in the repository, and a developer's own
 * nats-auth.env is left out of the copy so that the tests neither depend on it nor print it.
 */
export function k8sWithLogin(): { dir: string; envFile: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-k8s-'));
  cpSync(K8S, dir, { recursive: true, filter: (src) => basename(src) !== NATS_AUTH_ENV });
  const envFile = join(dir, 'base', NATS_AUTH_ENV);
  execFileSync('bash', [join(ROOT, 'deploy', 'image.sh'), 'nats-secret', envFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { dir, envFile, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `kubectl kustomize <dir>`, parsed: the objects `kubectl apply -k` would send. */
export function render(dir: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

// ---------------------------------------------------------------------------------------------
// 1. Schema: kubernetes-models validates an object against its OpenAPI definition.

export async function schemaErrors(o: Obj): Promise<string[]> {
  // kubernetes-models lays its classes out by apiVersion: v1, apps/v1, networking.k8s.io/v1, ...
  let mod: Record<string, new (data: Obj) => { validate(): void }>;
  try {
    mod = await import(`kubernetes-models/${o.apiVersion}`);
  } catch {
    return [`${ref(o)}: apiVersion: ${o.apiVersion} is not a Kubernetes API version`];
  }
  const Model = mod[o.kind];
  if (!Model) return [`${ref(o)}: kind: ${o.kind} does not exist in ${o.apiVersion}`];
  try {
    new Model(apiServerView(o)).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!errors) return [`${ref(o)}: ${(e as Error).message}`];
    return errors.map((x) => `${ref(o)}: ${dotted(x.instancePath) || '(root)'}: ${x.message}`);
  }
}

/**
 * The object as the API server decodes it where that differs from the OpenAPI format: kustomize
 * wraps a Secret's long base64 values at 70 characters, and Go's base64 decoder skips the newlines,
 * while the schema's "byte" format does not allow them.
 */
function apiServerView(o: Obj): Obj {
  if (o.kind !== 'Secret' || !o.data) return o;
  const data = Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, typeof v === 'string' ? v.replace(/\r?\n/g, '') : v]));
  return { ...o, data };
}

/** JSON pointer /spec/template/spec/containers/0/name -> spec.template.spec.containers[0].name */
function dotted(pointer: string): string {
  return pointer
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

// ---------------------------------------------------------------------------------------------
// 2. Unknown fields: every key must be an attribute of the client-node model at that place.

interface Attribute {
  baseName: string;
  type: string;
}
type ModelClass = { getAttributeTypeMap(): Attribute[] };
const MODELS = k8s as unknown as Record<string, ModelClass | undefined>;

/** client-node names models by version and kind: apps/v1 Deployment -> V1Deployment. */
function modelName(o: Obj): string {
  const version = String(o.apiVersion).split('/').pop() ?? '';
  return version.charAt(0).toUpperCase() + version.slice(1) + o.kind;
}

export function unknownFields(o: Obj): string[] {
  const root = modelName(o);
  if (!MODELS[root]?.getAttributeTypeMap) return [`${ref(o)}: kind: no model ${root} in @kubernetes/client-node`];
  const found: string[] = [];
  walk(o, root, '', (path, type) => found.push(`${ref(o)}: ${path}: unknown field (not in ${type})`));
  return found;
}

function walk(value: unknown, type: string, path: string, report: (path: string, type: string) => void): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) for (const [i, v] of value.entries()) walk(v, array[1], `${path}[${i}]`, report);
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, map[1], `${path}.${k}`, report);
    return;
  }
  const model = MODELS[type];
  // Primitives, IntOrString, quantities and free-form objects have no attribute map to check against.
  if (!model?.getAttributeTypeMap || typeof value !== 'object' || Array.isArray(value)) return;
  const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as Obj)) {
    const at = path ? `${path}.${k}` : k;
    const t = attributes.get(k);
    if (t === undefined) report(at, type);
    else walk(v, t, at, report);
  }
}

// ---------------------------------------------------------------------------------------------
// 3. What an API server's admission and a scheduler would catch, and our own conventions.

export interface Expectations {
  /** The image every rlmesh container must run: the tag deploy/image.sh builds (or the GPU variant). */
  image: string;
  /** Whether GPUs may be requested (the gpu overlay only). */
  gpu: boolean;
  /** gRPC services the protos declare (rlmesh.v1.EnvService, ...), plus grpc.health.v1.Health. */
  grpcServices: ReadonlySet<string>;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const GPU = 'nvidia.com/gpu';
/** Label keys that select pods made outside these manifests (clients such as a `kubectl run` shell). */
const EXTERNAL_SELECTOR_KEYS = new Set(['rlmesh.dev/client']);
const RLMESH_REPO = 'rlmesh';

/** The gRPC services declared in proto/rlmesh/v1, as `package.Service`. */
export function declaredGrpcServices(): Set<string> {
  const dir = join(ROOT, 'proto', 'rlmesh', 'v1');
  const names = new Set(['grpc.health.v1.Health']);
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.proto'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    const pkg = /^package\s+([\w.]+);/m.exec(text)?.[1];
    for (const m of text.matchAll(/^service\s+(\w+)\s*\{/gm)) names.add(`${pkg}.${m[1]}`);
  }
  return names;
}

function portInRange(port: unknown): boolean {
  return Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535;
}

export function projectErrors(objects: Obj[], expect: Expectations): string[] {
  const errors: string[] = [];
  const err = (o: Obj, field: string, rule: string) => errors.push(`${ref(o)}: ${field}: ${rule}`);
  const pods = podTemplates(objects);
  const podsIn = (ns: string) => pods.filter((p) => p.namespace === ns);

  for (const o of objects) {
    const name = o.metadata?.name ?? '';
    const labelOnly = o.kind === 'Service' || o.kind === 'Namespace';
    if (!(labelOnly ? DNS1123_LABEL : DNS1123_SUBDOMAIN).test(name) || name.length > (labelOnly ? 63 : 253))
      err(o, 'metadata.name', `${JSON.stringify(name)} is not a DNS-1123 ${labelOnly ? 'label' : 'subdomain'}`);
  }

  for (const p of pods) {
    const o = p.owner;
    const sel = o.spec.selector;
    if (!sel || !selects(sel, p.labels))
      err(o, 'spec.selector', `${JSON.stringify(sel ?? null)} does not select spec.template.metadata.labels ${JSON.stringify(p.labels)}`);
    const podSc = p.spec.securityContext ?? {};
    if (podSc.runAsNonRoot !== true) err(o, `${p.at}.spec.securityContext.runAsNonRoot`, 'must be true');
    (p.spec.containers ?? []).forEach((c: Obj, i: number) => {
      const at = `${p.at}.spec.containers[${i}]`;
      if (!DNS1123_LABEL.test(c.name ?? '')) err(o, `${at}.name`, `${JSON.stringify(c.name)} is not a DNS-1123 label`);
      (c.ports ?? []).forEach((port: Obj, j: number) => {
        if (!portInRange(port.containerPort)) err(o, `${at}.ports[${j}].containerPort`, `${port.containerPort} is not in 1-65535`);
        if (port.name !== undefined && (!IANA_SVC_NAME.test(port.name) || port.name.length > 15))
          err(o, `${at}.ports[${j}].name`, `${JSON.stringify(port.name)} is not an IANA service name (15 characters, a-z0-9-)`);
      });
      // Security: what the restricted Pod Security Standard and our image require.
      const sc = c.securityContext ?? {};
      if (sc.readOnlyRootFilesystem !== true) err(o, `${at}.securityContext.readOnlyRootFilesystem`, 'must be true');
      if (sc.allowPrivilegeEscalation !== false) err(o, `${at}.securityContext.allowPrivilegeEscalation`, 'must be false');
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) err(o, `${at}.securityContext.capabilities.drop`, 'must drop ALL');
      for (const kind of ['requests', 'limits'])
        for (const r of ['cpu', 'memory'])
          if (c.resources?.[kind]?.[r] === undefined) err(o, `${at}.resources.${kind}.${r}`, 'must be set');
      // Images: ours at the built tag, others pinned.
      const image = String(c.image ?? '');
      const repo = image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
      if (repo === RLMESH_REPO || repo.endsWith(`/${RLMESH_REPO}`)) {
        if (image !== expect.image) err(o, `${at}.image`, `${JSON.stringify(image)} is not the built image ${expect.image}`);
      } else if (!/@sha256:|:[^/:]+$/.test(image) || image.endsWith(':latest')) {
        err(o, `${at}.image`, `${JSON.stringify(image)} must name a pinned tag or digest`);
      }
      // GPUs: whole devices, only where the overlay allows them, and with the NVIDIA toleration.
      const limit = c.resources?.limits?.[GPU];
      const request = c.resources?.requests?.[GPU];
      if (limit !== undefined || request !== undefined) {
        if (!expect.gpu) err(o, `${at}.resources.limits.${GPU}`, 'GPUs are requested only in the gpu overlay');
        if (limit === undefined) err(o, `${at}.resources.limits.${GPU}`, 'extended resources need a limit');
        else if (!/^[1-9]\d*$/.test(String(limit)))
          err(o, `${at}.resources.limits.${GPU}`, `${JSON.stringify(limit)} is not a whole number of GPUs`);
        if (request !== undefined && String(request) !== String(limit))
          err(o, `${at}.resources.requests.${GPU}`, `${JSON.stringify(request)} must equal the limit ${JSON.stringify(limit)}`);
        if (!(p.spec.tolerations ?? []).some((t: Obj) => t.key === GPU))
          err(o, `${p.at}.spec.tolerations`, `a pod with ${GPU} must tolerate the ${GPU} taint`);
      }
      // --device cuda and a GPU go together: CUDA without a GPU refuses to start, a GPU without CUDA idles.
      const args: string[] = (c.args ?? []).map(String);
      const device = args[args.indexOf('--device') + 1];
      if (args.includes('--device')) {
        if ((device === 'cuda') !== (limit !== undefined))
          err(o, `${at}.args`, `--device ${device} ${device === 'cuda' ? 'without' : 'with'} a ${GPU} limit`);
      }
      // Probes: native gRPC health on a declared port, naming a service that exists (and the one served).
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const pr = c[probe];
        if (!pr) continue;
        const port = pr.grpc?.port ?? pr.httpGet?.port ?? pr.tcpSocket?.port;
        if (port !== undefined && !podHasPort({ containers: [c] }, port))
          err(o, `${at}.${probe}`, `port ${JSON.stringify(port)} is not a port of container ${c.name}`);
        const svc = pr.grpc?.service;
        if (svc === undefined || svc === '') continue;
        if (!expect.grpcServices.has(svc))
          err(o, `${at}.${probe}.grpc.service`, `${JSON.stringify(svc)} is not a service the protos declare`);
        const served = args[0] === 'serve' ? args[1] : undefined;
        const own = served && `rlmesh.v1.${served.charAt(0).toUpperCase()}${served.slice(1)}Service`;
        if (own && svc !== own)
          err(o, `${at}.${probe}.grpc.service`, `${JSON.stringify(svc)} is not what \`serve ${served}\` serves (${own})`);
      }
      if (repo.endsWith(RLMESH_REPO) && !c.readinessProbe?.grpc)
        err(o, `${at}.readinessProbe.grpc`, 'rlmesh services are probed on grpc.health.v1');
    });
  }

  for (const o of objects.filter((x) => x.kind === 'Service')) {
    const sel = o.spec?.selector;
    const targets = podsIn(nsOf(o)).filter((p) => sel && matches(sel, p.labels));
    if (!sel || targets.length === 0) err(o, 'spec.selector', `${JSON.stringify(sel ?? null)} selects no pod template`);
    (o.spec?.ports ?? []).forEach((port: Obj, i: number) => {
      if (!portInRange(port.port)) err(o, `spec.ports[${i}].port`, `${port.port} is not in 1-65535`);
      const target = port.targetPort ?? port.port;
      if (typeof target === 'number' && !portInRange(target)) err(o, `spec.ports[${i}].targetPort`, `${target} is not in 1-65535`);
      else if (targets.length && !targets.every((p) => podHasPort(p.spec, target)))
        err(o, `spec.ports[${i}].targetPort`, `${JSON.stringify(target)} is not a port of every selected pod`);
    });
  }

  for (const o of objects.filter((x) => x.kind === 'PodDisruptionBudget')) {
    if (!podsIn(nsOf(o)).some((p) => selects(o.spec?.selector, p.labels))) err(o, 'spec.selector', 'selects no pod template');
  }

  for (const o of objects.filter((x) => x.kind === 'NetworkPolicy')) {
    const ns = nsOf(o);
    const subjects = podsIn(ns).filter((p) => selects(o.spec?.podSelector, p.labels));
    if (subjects.length === 0) err(o, 'spec.podSelector', `${JSON.stringify(o.spec?.podSelector)} selects no pod template`);
    for (const dir of ['ingress', 'egress'] as const) {
      (o.spec?.[dir] ?? []).forEach((rule: Obj, i: number) => {
        const peersField = dir === 'ingress' ? 'from' : 'to';
        const peers: Obj[] = rule[peersField] ?? [];
        const local: PodTemplate[] = [];
        peers.forEach((peer, j) => {
          if (!peer.podSelector || peer.namespaceSelector) return; // another namespace: not ours to check
          const keys = Object.keys(peer.podSelector.matchLabels ?? {});
          if (keys.length > 0 && keys.every((k) => EXTERNAL_SELECTOR_KEYS.has(k))) return;
          const hit = podsIn(ns).filter((p) => selects(peer.podSelector, p.labels));
          if (hit.length === 0)
            err(o, `spec.${dir}[${i}].${peersField}[${j}].podSelector`, `${JSON.stringify(peer.podSelector)} selects no pod template`);
          local.push(...hit);
        });
        // Ingress ports are the subject's, egress ports the peers'.
        const owners = dir === 'ingress' ? subjects : local;
        (rule.ports ?? []).forEach((port: Obj, j: number) => {
          if (port.port === undefined || owners.length === 0) return;
          if (typeof port.port === 'number' && !portInRange(port.port))
            err(o, `spec.${dir}[${i}].ports[${j}].port`, `${port.port} is not in 1-65535`);
          else if (!owners.every((p) => podHasPort(p.spec, port.port)))
            err(o, `spec.${dir}[${i}].ports[${j}].port`, `${JSON.stringify(port.port)} is not a port of the pods it applies to`);
        });
      });
    }
  }

  for (const o of objects.filter((x) => x.kind === 'HorizontalPodAutoscaler')) {
    const t = o.spec?.scaleTargetRef ?? {};
    const target = objects.find((x) => x.kind === t.kind && x.metadata?.name === t.name && nsOf(x) === nsOf(o));
    if (!target) err(o, 'spec.scaleTargetRef', `${t.kind}/${t.name} does not exist`);
    else if (target.spec?.replicas !== undefined)
      err(target, 'spec.replicas', `is set while HorizontalPodAutoscaler/${o.metadata.name} owns it (every apply would reset the count)`);
    const min = o.spec?.minReplicas ?? 1;
    if (!(min <= o.spec?.maxReplicas)) err(o, 'spec.minReplicas', `${min} is above spec.maxReplicas ${o.spec?.maxReplicas}`);
  }
  return errors;
}

/** Every check on one rendered overlay. */
export async function validateAll(objects: Obj[], expect: Expectations): Promise<string[]> {
  const errors: string[] = [];
  for (const o of objects) errors.push(...(await schemaErrors(o)), ...unknownFields(o));
  return [...errors, ...projectErrors(objects, expect), ...natsLoginErrors(objects)];
}

/** The tag deploy/image.sh builds by default: the manifests must run exactly that image. */
export function builtImage(): string {
  const script = readFileSync(join(ROOT, 'deploy', 'image.sh'), 'utf8');
  const tag = /^IMAGE=\$\{RLMESH_IMAGE:-([^}]+)\}/m.exec(script)?.[1];
  if (!tag) throw new Error('deploy/image.sh: no default image tag (the IMAGE= line)');
  return tag;
}

export function expectations(overlay: Overlay): Expectations {
  const image = builtImage();
  // The GPU variant is the same repository, tagged gpu (ORT_INSTALL=cuda12 RLMESH_IMAGE=...:gpu).
  return {
    image: overlay === 'gpu' ? image.replace(/:[^:/]+$/, ':gpu') : image,
    gpu: overlay === 'gpu',
    grpcServices: declaredGrpcServices(),
  };
}
