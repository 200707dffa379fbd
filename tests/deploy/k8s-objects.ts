/**
 * Rendered Kubernetes objects as the deploy tests read them: pod templates, label selectors and
 * ports. Shared by the general manifest rules (manifests.ts) and the NATS login rules (nats-login.ts).
 */

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are untyped JSON until validated.
export type Obj = Record<string, any>;

export const ref = (o: Obj) => `${o.kind}/${o.metadata?.name ?? '(unnamed)'}`;

export const nsOf = (o: Obj): string => o.metadata?.namespace ?? 'default';

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

export interface PodTemplate {
  owner: Obj;
  namespace: string;
  labels: Record<string, string>;
  spec: Obj;
  at: string;
}

export function podTemplates(objects: Obj[]): PodTemplate[] {
  return objects
    .filter((o) => WORKLOADS.has(o.kind) && o.spec?.template)
    .map((o) => ({
      owner: o,
      namespace: nsOf(o),
      labels: o.spec.template.metadata?.labels ?? {},
      spec: o.spec.template.spec ?? {},
      at: 'spec.template',
    }));
}

export const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);

/** A LabelSelector (matchLabels and matchExpressions) against labels. */
export function selects(sel: Obj | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  if (!matches(sel.matchLabels, labels)) return false;
  return (sel.matchExpressions ?? []).every((e: Obj) => {
    const has = e.key in labels;
    if (e.operator === 'In') return has && e.values.includes(labels[e.key]);
    if (e.operator === 'NotIn') return !has || !e.values.includes(labels[e.key]);
    if (e.operator === 'Exists') return has;
    return !has;
  });
}

function containerPorts(spec: Obj): Obj[] {
  return (spec.containers ?? []).flatMap((c: Obj) => c.ports ?? []);
}

/** A port (number or name) that one of the pods exposes. */
export function podHasPort(spec: Obj, port: number | string): boolean {
  return containerPorts(spec).some((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port));
}

/** The container port a port reference (number or name) means in a pod, or undefined. */
export function podPortNumber(spec: Obj, port: number | string): number | undefined {
  if (typeof port === 'number') return podHasPort(spec, port) ? port : undefined;
  return containerPorts(spec).find((p) => p.name === port)?.containerPort;
}
