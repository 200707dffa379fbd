/**
 * deploy/k8s, validated offline: kubectl's kustomize renders every overlay, every object passes the
 * Kubernetes OpenAPI schema, has no unknown field, and the cross-object rules of manifests.ts hold.
 * Each rule is then shown to catch a deliberately broken manifest, with a message naming the object
 * and the field. Server-side validation is approximated: no API server runs here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseRunConfig } from '@rlmesh/learner';
import { TRAJ_STREAM } from '@rlmesh/mesh';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  expectations,
  K8S,
  k8sWithLogin,
  missingKubectl,
  type Obj,
  OVERLAYS,
  type Overlay,
  ROOT,
  ref,
  render,
  validateAll,
} from './manifests';

const missing = missingKubectl();

describe.skipIf(missing !== null)('deploy/k8s manifests', () => {
  const rendered = {} as Record<Overlay, Obj[]>;
  // The overlays render from a copy with a fresh NATS login: the real one is never committed.
  let k8s: ReturnType<typeof k8sWithLogin>;
  beforeAll(() => {
    k8s = k8sWithLogin();
    for (const o of OVERLAYS) rendered[o] = render(join(k8s.dir, 'overlays', o));
  });
  afterAll(() => k8s?.remove());

  const find = (objects: Obj[], kind: string, name: string) => {
    const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
    if (!o) throw new Error(`no ${kind}/${name} in the render`);
    return o;
  };
  const container = (objects: Obj[], kind: string, name: string) => find(objects, kind, name).spec.template.spec.containers[0];
  const clone = (overlay: Overlay): Obj[] => structuredClone(rendered[overlay]);

  it.each(OVERLAYS)('%s renders and passes every check', async (overlay) => {
    const objects = rendered[overlay];
    const kinds = new Set(objects.map(ref));
    for (const o of [
      'Namespace/rlmesh',
      'StatefulSet/nats',
      'Deployment/rlmesh-learner',
      'Deployment/rlmesh-policy',
      'Deployment/rlmesh-env',
    ])
      expect(kinds).toContain(o);
    expect(kinds).toContain('Deployment/rlmesh-evaluator');
    expect(kinds).toContain('Deployment/rlmesh-sae');
    expect(await validateAll(objects, expectations(overlay))).toEqual([]);
  });

  it('puts learner and policy on GPU nodes only in the gpu overlay, with the CUDA provider', () => {
    for (const name of ['rlmesh-learner', 'rlmesh-policy']) {
      const gpu = find(rendered.gpu, 'Deployment', name).spec.template.spec;
      expect(gpu.containers[0].resources.limits['nvidia.com/gpu']).toBe(1);
      expect(gpu.containers[0].args).toEqual(expect.arrayContaining(['--device', 'cuda']));
      expect(gpu.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
      expect(gpu.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
      expect(container(rendered.dev, 'Deployment', name).args).toEqual(expect.arrayContaining(['--device', 'cpu']));
    }
    expect(container(rendered.gpu, 'Deployment', 'rlmesh-env').resources.limits['nvidia.com/gpu']).toBeUndefined();
  });

  it('scales env replicas with an autoscaler in the scale overlay; the KEDA alternative names what exists', () => {
    const hpa = find(rendered.scale, 'HorizontalPodAutoscaler', 'rlmesh-env');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'rlmesh-env' });
    expect(find(rendered.scale, 'Deployment', 'rlmesh-env').spec.replicas).toBeUndefined();
    expect(rendered.dev.some((o) => o.kind === 'HorizontalPodAutoscaler')).toBe(false);
    const keda = parseYaml(readFileSync(join(K8S, 'overlays', 'scale', 'keda-scaledobject.yaml'), 'utf8'));
    find(rendered.scale, keda.spec.scaleTargetRef.kind ?? 'Deployment', keda.spec.scaleTargetRef.name);
    const trigger = keda.spec.triggers[0].metadata;
    expect(trigger.stream).toBe(TRAJ_STREAM);
    // The learner's durable consumer of a run is learner-<run id> (services/learner/src/mesh/mesh-run.ts).
    expect(trigger.consumer).toMatch(/^learner-/);
    expect(trigger.natsServerMonitoringEndpoint).toMatch(/^nats-headless\.rlmesh\.svc\.cluster\.local:8222$/);
    expect(keda.spec.minReplicaCount).toBeLessThanOrEqual(keda.spec.maxReplicaCount);
  });

  it('ships run configs that the learner accepts, identical to configs/', () => {
    const cm = find(
      rendered.dev,
      'ConfigMap',
      find(rendered.dev, 'Deployment', 'rlmesh-learner').spec.template.spec.volumes[1].configMap.name,
    );
    expect(Object.keys(cm.data).length).toBeGreaterThan(0);
    for (const [file, text] of Object.entries(cm.data as Record<string, string>)) {
      expect(text, file).toBe(readFileSync(join(ROOT, 'configs', file), 'utf8'));
      expect(() => parseRunConfig(parseYaml(text)), file).not.toThrow();
    }
  });

  // Each rule, broken on purpose: the message must name the object and the field.
  const broken: [string, Overlay, (objects: Obj[]) => void, RegExp][] = [
    [
      'schema: a string where an integer belongs',
      'dev',
      (o) => (find(o, 'Deployment', 'rlmesh-env').spec.replicas = 'two'),
      /^Deployment\/rlmesh-env: spec\.replicas: must be integer/,
    ],
    [
      'unknown field: a misspelt key',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-learner').imagePullPolicyy = 'Always'),
      /^Deployment\/rlmesh-learner: spec\.template\.spec\.containers\[0\]\.imagePullPolicyy: unknown field/,
    ],
    [
      'selector does not match the template labels',
      'dev',
      (o) => (find(o, 'Deployment', 'rlmesh-policy').spec.selector.matchLabels['app.kubernetes.io/name'] = 'rlmesh-polcy'),
      /^Deployment\/rlmesh-policy: spec\.selector: .* does not select spec\.template\.metadata\.labels/,
    ],
    [
      'a name that is not DNS-1123',
      'dev',
      (o) => (find(o, 'Service', 'rlmesh-env').metadata.name = 'rlmesh_env'),
      /^Service\/rlmesh_env: metadata\.name: "rlmesh_env" is not a DNS-1123 label/,
    ],
    [
      'a port out of range',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-env').ports[1].containerPort = 70000),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.ports\[1\]\.containerPort: 70000 is not in 1-65535/,
    ],
    [
      'a Service that selects no pod',
      'dev',
      (o) => (find(o, 'Service', 'rlmesh-policy').spec.selector['app.kubernetes.io/name'] = 'rlmesh-policies'),
      /^Service\/rlmesh-policy: spec\.selector: .* selects no pod template/,
    ],
    [
      'a Service port that no pod exposes',
      'dev',
      (o) => (find(o, 'Service', 'rlmesh-learner').spec.ports[0].targetPort = 'grcp'),
      /^Service\/rlmesh-learner: spec\.ports\[0\]\.targetPort: "grcp" is not a port of every selected pod/,
    ],
    [
      'a NetworkPolicy that applies to no pod',
      'dev',
      (o) => (find(o, 'NetworkPolicy', 'rlmesh-env').spec.podSelector.matchLabels['app.kubernetes.io/name'] = 'rlmesh-envs'),
      /^NetworkPolicy\/rlmesh-env: spec\.podSelector: .* selects no pod template/,
    ],
    [
      'a NetworkPolicy peer that selects no pod',
      'dev',
      (o) => (find(o, 'NetworkPolicy', 'rlmesh-env').spec.egress[1].to[0].podSelector.matchLabels['app.kubernetes.io/name'] = 'policy'),
      /^NetworkPolicy\/rlmesh-env: spec\.egress\[1\]\.to\[0\]\.podSelector: .* selects no pod template/,
    ],
    [
      'a NetworkPolicy port the peer does not expose',
      'dev',
      (o) => (find(o, 'NetworkPolicy', 'rlmesh-env').spec.egress[1].ports[0].port = 50052),
      /^NetworkPolicy\/rlmesh-env: spec\.egress\[1\]\.ports\[0\]\.port: 50052 is not a port of the pods it applies to/,
    ],
    [
      'a PodDisruptionBudget that selects no pod',
      'dev',
      (o) => (find(o, 'PodDisruptionBudget', 'rlmesh-env').spec.selector.matchLabels['app.kubernetes.io/name'] = 'env'),
      /^PodDisruptionBudget\/rlmesh-env: spec\.selector: selects no pod template/,
    ],
    [
      'an autoscaler whose target does not exist',
      'scale',
      (o) => (find(o, 'HorizontalPodAutoscaler', 'rlmesh-env').spec.scaleTargetRef.name = 'rlmesh-actors'),
      /^HorizontalPodAutoscaler\/rlmesh-env: spec\.scaleTargetRef: Deployment\/rlmesh-actors does not exist/,
    ],
    [
      'an autoscaler with min above max',
      'scale',
      (o) => (find(o, 'HorizontalPodAutoscaler', 'rlmesh-env').spec.minReplicas = 40),
      /^HorizontalPodAutoscaler\/rlmesh-env: spec\.minReplicas: 40 is above spec\.maxReplicas 32/,
    ],
    [
      'a replica count on an autoscaled Deployment',
      'scale',
      (o) => (find(o, 'Deployment', 'rlmesh-env').spec.replicas = 3),
      /^Deployment\/rlmesh-env: spec\.replicas: is set while HorizontalPodAutoscaler\/rlmesh-env owns it/,
    ],
    [
      'a fraction of a GPU',
      'gpu',
      (o) => (container(o, 'Deployment', 'rlmesh-learner').resources.limits['nvidia.com/gpu'] = '0.5'),
      /^Deployment\/rlmesh-learner: spec\.template\.spec\.containers\[0\]\.resources\.limits\.nvidia\.com\/gpu: "0\.5" is not a whole number of GPUs/,
    ],
    [
      'a GPU outside the gpu overlay',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-policy').resources.limits['nvidia.com/gpu'] = 1),
      /^Deployment\/rlmesh-policy: spec\.template\.spec\.containers\[0\]\.resources\.limits\.nvidia\.com\/gpu: GPUs are requested only in the gpu overlay/,
    ],
    [
      'a GPU pod without the NVIDIA toleration',
      'gpu',
      (o) => delete find(o, 'Deployment', 'rlmesh-policy').spec.template.spec.tolerations,
      /^Deployment\/rlmesh-policy: spec\.template\.spec\.tolerations: a pod with nvidia\.com\/gpu must tolerate/,
    ],
    [
      '--device cuda without a GPU',
      'dev',
      (o) => {
        const args = container(o, 'Deployment', 'rlmesh-learner').args;
        args[args.indexOf('--device') + 1] = 'cuda';
      },
      /^Deployment\/rlmesh-learner: spec\.template\.spec\.containers\[0\]\.args: --device cuda without a nvidia\.com\/gpu limit/,
    ],
    [
      'an image other than the built tag',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-env').image = 'localhost/rlmesh:latest'),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.image: "localhost\/rlmesh:latest" is not the built image localhost\/rlmesh:dev/,
    ],
    [
      'an unpinned third-party image',
      'dev',
      (o) => (container(o, 'StatefulSet', 'nats').image = 'nats'),
      /^StatefulSet\/nats: spec\.template\.spec\.containers\[0\]\.image: "nats" must name a pinned tag or digest/,
    ],
    [
      'a probe naming a service that does not exist',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-env').readinessProbe.grpc.service = 'rlmesh.v1.EnvServices'),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.readinessProbe\.grpc\.service: "rlmesh\.v1\.EnvServices" is not a service the protos declare/,
    ],
    [
      'a probe naming another service than the one served',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-env').readinessProbe.grpc.service = 'rlmesh.v1.PolicyService'),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.readinessProbe\.grpc\.service: "rlmesh\.v1\.PolicyService" is not what `serve env` serves/,
    ],
    [
      'a probe on a port the container does not expose',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-policy').livenessProbe.grpc.port = 50052),
      /^Deployment\/rlmesh-policy: spec\.template\.spec\.containers\[0\]\.livenessProbe: port 50052 is not a port of container policy/,
    ],
    [
      'a writable root filesystem',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-evaluator').securityContext.readOnlyRootFilesystem = false),
      /^Deployment\/rlmesh-evaluator: spec\.template\.spec\.containers\[0\]\.securityContext\.readOnlyRootFilesystem: must be true/,
    ],
    [
      'capabilities not dropped',
      'dev',
      (o) => (container(o, 'Deployment', 'rlmesh-env').securityContext.capabilities.drop = ['NET_RAW']),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.securityContext\.capabilities\.drop: must drop ALL/,
    ],
    [
      'a pod that may run as root',
      'dev',
      (o) => delete find(o, 'Deployment', 'rlmesh-learner').spec.template.spec.securityContext.runAsNonRoot,
      /^Deployment\/rlmesh-learner: spec\.template\.spec\.securityContext\.runAsNonRoot: must be true/,
    ],
    [
      'a container without a memory limit',
      'dev',
      (o) => delete container(o, 'Deployment', 'rlmesh-env').resources.limits.memory,
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.resources\.limits\.memory: must be set/,
    ],
  ];

  it.each(broken)('catches %s', async (_rule, overlay, breakIt, message) => {
    const objects = clone(overlay);
    breakIt(objects);
    const errors = await validateAll(objects, expectations(overlay));
    expect(
      errors.some((e) => message.test(e)),
      `${message} among:\n${errors.join('\n')}`,
    ).toBe(true);
  });

  describe('a broken kustomization', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rlmesh-kustomize-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    it('fails to render, naming what it could not find', () => {
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        // A patch for a Deployment the base lacks (a target selector matching nothing is silently skipped instead).
        `resources:\n  - ${relative(dir, join(k8s.dir, 'base'))}\npatches:\n  - patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: rlmesh-actors\n      spec:\n        replicas: 3\n`,
      );
      expect(() => render(dir)).toThrow(/rlmesh-actors/);
    });
  });
});
