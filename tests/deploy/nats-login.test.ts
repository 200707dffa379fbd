/**
 * The NATS login of deploy/k8s. `deploy/image.sh nats-secret` writes a login that kustomize turns
 * into a Secret, and without one nothing renders; the rules of nats-login.ts each catch a manifest
 * broken on purpose; and the rendered nats.conf, run in a real nats-server with the environment the
 * StatefulSet gives it, refuses a client without the login and admits the NATS_URL a service's pod
 * composes, while the readiness probe's /healthz still answers without one.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNatsServer, freePort, NatsBus, NatsConnectError } from '@rlmesh/mesh';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Obj } from './k8s-objects';
import { K8S, k8sWithLogin, missingKubectl, NATS_AUTH_ENV, ROOT, render } from './manifests';
import { containerEnvironment, natsLoginErrors } from './nats-login';

const missing = missingKubectl();
const natsServer = findNatsServer();
if (!natsServer && process.env.CI === 'true') throw new Error('the NATS login test needs nats-server');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const find = (objects: Obj[], kind: string, name: string) => {
  // Generated ConfigMaps and Secrets carry a content hash after their name.
  const o = objects.find((x) => x.kind === kind && new RegExp(`^${name}(-[a-z0-9]{10})?$`).test(x.metadata?.name));
  if (!o) throw new Error(`no ${kind}/${name} in the render`);
  return o;
};
const container = (objects: Obj[], kind: string, name: string) => find(objects, kind, name).spec.template.spec.containers[0];
const envEntry = (c: Obj, name: string) => c.env.find((e: Obj) => e.name === name);
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe.skipIf(missing !== null)('deploy/k8s NATS login', () => {
  let k8s: ReturnType<typeof k8sWithLogin>;
  let dev: Obj[];
  beforeAll(() => {
    k8s = k8sWithLogin();
    dev = render(join(k8s.dir, 'overlays', 'dev'));
  });
  afterAll(() => k8s?.remove());

  it('deploy/image.sh nats-secret writes a private login that git ignores, and keeps an existing one', () => {
    const text = readFileSync(k8s.envFile, 'utf8');
    expect(statSync(k8s.envFile).mode & 0o777).toBe(0o600);
    expect(text).toMatch(/^NATS_USER=rlmesh$/m);
    expect(text).toMatch(/^NATS_PASSWORD=nats[0-9a-f]{64}$/m);
    const before = text;
    expect(() =>
      execFileSync('bash', [join(ROOT, 'deploy', 'image.sh'), 'nats-secret', k8s.envFile], { stdio: ['ignore', 'ignore', 'pipe'] }),
    ).toThrow(/exists; remove it first/);
    expect(readFileSync(k8s.envFile, 'utf8')).toBe(before);
    // The file the secretGenerator reads may never be committed.
    execFileSync('git', ['check-ignore', '--quiet', '--no-index', join('deploy', 'k8s', 'base', NATS_AUTH_ENV)], { cwd: ROOT });
  });

  it('renders nothing without the login, so NATS is never deployed open', () => {
    const bare = mkdtempSync(join(tmpdir(), 'rlmesh-k8s-bare-'));
    try {
      cpSync(k8s.dir, bare, { recursive: true });
      unlinkSync(join(bare, 'base', NATS_AUTH_ENV));
      expect(() => render(join(bare, 'overlays', 'dev'))).toThrow(/nats-auth\.env/);
      // The committed example, copied as it is, has no password: the rules (and the kubelet) refuse it.
      copyFileSync(join(K8S, 'base', `${NATS_AUTH_ENV}.example`), join(bare, 'base', NATS_AUTH_ENV));
      expect(natsLoginErrors(render(join(bare, 'overlays', 'dev')))).toContainEqual(
        expect.stringMatching(/^StatefulSet\/nats: .*\.valueFrom\.secretKeyRef: Secret\/rlmesh-nats-auth-\w+ has no key NATS_PASSWORD$/),
      );
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it('holds in every overlay: the services present the login nats-server requires', () => {
    expect(natsLoginErrors(dev)).toEqual([]);
    for (const name of ['rlmesh-learner', 'rlmesh-policy', 'rlmesh-env', 'rlmesh-evaluator', 'rlmesh-sae']) {
      const c = container(dev, 'Deployment', name);
      expect(envEntry(c, 'NATS_URL').value).toBe('nats://$(NATS_USER):$(NATS_PASSWORD)@$(NATS_ADDRESS)');
      expect(c.args.join(' ')).not.toMatch(/nats:\/\//);
    }
  });

  const broken: [string, (objects: Obj[]) => void, RegExp][] = [
    [
      'a NATS_URL with the password written out',
      (o) => (envEntry(container(o, 'Deployment', 'rlmesh-env'), 'NATS_URL').value = 'nats://rlmesh:hunter2hunter2@nats:4222'),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.env\[\d+\]\.value: a URL with a literal login/,
    ],
    [
      'NATS_URL from a ConfigMap',
      (o) => {
        const c = container(o, 'Deployment', 'rlmesh-policy');
        c.env = c.env.filter((e: Obj) => e.name !== 'NATS_URL');
        find(o, 'ConfigMap', 'rlmesh-mesh').data.NATS_URL = 'nats://nats:4222';
      },
      /^Deployment\/rlmesh-policy: spec\.template\.spec\.containers\[0\]\.envFrom: NATS_URL comes from ConfigMap\/rlmesh-mesh-\w+, in the clear/,
    ],
    [
      'a service without NATS_URL',
      (o) => {
        const c = container(o, 'Deployment', 'rlmesh-learner');
        c.env = c.env.filter((e: Obj) => e.name !== 'NATS_URL');
      },
      /^Deployment\/rlmesh-learner: spec\.template\.spec\.containers\[0\]\.env: an rlmesh service needs NATS_URL/,
    ],
    [
      'a password variable that is not from a Secret',
      (o) => Object.assign(envEntry(container(o, 'Deployment', 'rlmesh-env'), 'NATS_PASSWORD'), { valueFrom: undefined, value: 'x' }),
      /^Deployment\/rlmesh-env: spec\.template\.spec\.containers\[0\]\.env\[\d+\]\.value: \$\(NATS_PASSWORD\) is not a variable from a secretKeyRef/,
    ],
    [
      'a key the Secret lacks',
      (o) => (envEntry(container(o, 'Deployment', 'rlmesh-evaluator'), 'NATS_PASSWORD').valueFrom.secretKeyRef.key = 'NATS_PASS'),
      /^Deployment\/rlmesh-evaluator: spec\.template\.spec\.containers\[0\]\.env\[\d+\]\.valueFrom\.secretKeyRef: Secret\/rlmesh-nats-auth-\w+ has no key NATS_PASS$/,
    ],
    [
      'a client that logs in with another key than the server requires',
      (o) => (envEntry(container(o, 'Deployment', 'rlmesh-learner'), 'NATS_USER').valueFrom.secretKeyRef.key = 'NATS_PASSWORD'),
      /^Deployment\/rlmesh-learner: .*: logs in with Secret\/rlmesh-nats-auth-\w+ key NATS_PASSWORD as user; StatefulSet\/nats requires Secret\/rlmesh-nats-auth-\w+ key NATS_USER/,
    ],
    [
      'a NATS_URL naming no Service',
      (o) => (find(o, 'ConfigMap', 'rlmesh-mesh').data.NATS_ADDRESS = 'nats-0:4222'),
      /^Deployment\/rlmesh-env: .*\.value: "nats-0:4222" is not HOST:PORT of a Service port/,
    ],
    [
      'nats.conf without an authorization block',
      (o) => {
        const cm = find(o, 'ConfigMap', 'nats-config');
        cm.data['nats.conf'] = cm.data['nats.conf'].replace(/authorization \{[^}]*\}/, '');
      },
      /^ConfigMap\/nats-config-\w+: data\.nats\.conf: has no authorization block: NATS admits any client/,
    ],
    [
      'a literal password in nats.conf',
      (o) => {
        const cm = find(o, 'ConfigMap', 'nats-config');
        cm.data['nats.conf'] = cm.data['nats.conf'].replace('$NATS_PASSWORD', 'hunter2');
      },
      /^ConfigMap\/nats-config-\w+: data\.nats\.conf: authorization\.password must be \$VAR/,
    ],
    [
      'a quoted "$VAR" in nats.conf (taken literally by nats-server)',
      (o) => {
        const cm = find(o, 'ConfigMap', 'nats-config');
        cm.data['nats.conf'] = cm.data['nats.conf'].replace('$NATS_PASSWORD', '"$NATS_PASSWORD"');
      },
      /^ConfigMap\/nats-config-\w+: data\.nats\.conf: authorization\.password must be \$VAR/,
    ],
    [
      'nats-server started without its config',
      (o) => (container(o, 'StatefulSet', 'nats').args = []),
      /^StatefulSet\/nats: spec\.template\.spec\.containers\[0\]\.args: nats-server needs --config from a mounted ConfigMap \(none given\)/,
    ],
    [
      'a password nats-server would parse as a number',
      (o) => (find(o, 'Secret', 'rlmesh-nats-auth').data.NATS_PASSWORD = b64('3e4f0a9c1b2d3e4f5a6b7c8d9e0f1a2b')),
      /^Secret\/rlmesh-nats-auth-\w+: data\.NATS_PASSWORD: must be letters and digits starting with a letter/,
    ],
    [
      "the Secret's password copied into a ConfigMap",
      (o) => {
        const password = Buffer.from(find(o, 'Secret', 'rlmesh-nats-auth').data.NATS_PASSWORD, 'base64').toString();
        find(o, 'ConfigMap', 'rlmesh-mesh').data.DEBUG_PASSWORD = password;
      },
      /^ConfigMap\/rlmesh-mesh-\w+: data\.DEBUG_PASSWORD: holds the value of Secret\/rlmesh-nats-auth-\w+ key NATS_PASSWORD in the clear/,
    ],
    [
      "NATS's client port open to another namespace",
      (o) => find(o, 'NetworkPolicy', 'nats').spec.ingress[0].from.push({ namespaceSelector: {} }),
      /^NetworkPolicy\/nats: spec\.ingress\[0\]\.from\[5\]: admits sources outside this namespace's pods to NATS's client port 4222/,
    ],
    [
      "NATS's client port open to every pod of the namespace",
      (o) => find(o, 'NetworkPolicy', 'nats').spec.ingress[0].from.push({ podSelector: {} }),
      /^NetworkPolicy\/nats: spec\.ingress\[0\]\.from\[5\]\.podSelector: \{\} admits every pod of the namespace, login or not/,
    ],
    [
      "a pod without the login admitted to NATS's client port",
      (o) => {
        const c = container(o, 'Deployment', 'rlmesh-evaluator');
        c.env = c.env.filter((e: Obj) => !e.name.startsWith('NATS_'));
        c.args = ['sleep'];
      },
      /^NetworkPolicy\/nats: spec\.ingress\[0\]\.from\[3\]\.podSelector: admits Deployment\/rlmesh-evaluator, which has no NATS login/,
    ],
    [
      'a service that NetworkPolicy keeps from NATS',
      (o) => find(o, 'NetworkPolicy', 'nats').spec.ingress[0].from.shift(),
      /^Deployment\/rlmesh-learner: .*\.env\[\d+\]: no NetworkPolicy admits it to StatefulSet\/nats's client port 4222/,
    ],
  ];

  it.each(broken)('catches %s', (_rule, breakIt, message) => {
    const objects = structuredClone(dev);
    breakIt(objects);
    const errors = natsLoginErrors(objects);
    expect(
      errors.some((e) => message.test(e)),
      `${message} among:\n${errors.join('\n')}`,
    ).toBe(true);
  });

  describe.skipIf(!natsServer)("the rendered nats.conf in a real nats-server, with the StatefulSet's environment", () => {
    let dir: string;
    let server: ChildProcess;
    let port: number;
    let monitor: number;
    let url: string;
    let log = '';
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'rlmesh-nats-login-'));
      const sts = find(dev, 'StatefulSet', 'nats');
      const nats = sts.spec.template.spec.containers[0];
      const env = containerEnvironment(dev, sts, nats, { 'metadata.name': 'nats-0' });
      // The pod's mounts (/data, /tmp) become directories here; port and monitor port are free ones.
      let conf: string = find(dev, 'ConfigMap', 'nats-config').data['nats.conf'];
      for (const m of nats.volumeMounts.filter((v: Obj) => !v.readOnly)) {
        mkdirSync(join(dir, m.name));
        conf = conf.split(m.mountPath).join(join(dir, m.name));
      }
      writeFileSync(join(dir, 'nats.conf'), conf);
      [port, monitor] = [await freePort(), await freePort()];
      server = spawn(natsServer as string, ['-c', join(dir, 'nats.conf'), '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor)], {
        env: { PATH: process.env.PATH, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      server.stderr?.on('data', (d) => (log += d));
      server.stdout?.on('data', (d) => (log += d));
      const t0 = Date.now();
      while (!log.includes('Server is ready')) {
        if (server.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`nats-server did not start:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // What a service's pod composes, pointed at this server instead of the Service's name.
      const learner = find(dev, 'Deployment', 'rlmesh-learner');
      const composed = new URL(containerEnvironment(dev, learner, learner.spec.template.spec.containers[0]).NATS_URL);
      composed.host = `127.0.0.1:${port}`;
      url = composed.toString();
    });
    afterAll(async () => {
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('refuses a client without the login or with a wrong password', async () => {
      for (const servers of [`nats://127.0.0.1:${port}`, url.replace(/:nats[0-9a-f]+@/, ':nats0000@')]) {
        const e = await NatsBus.connect({ servers, logger: quiet, name: 'k8s-login-test' }).then(
          async (bus) => {
            await bus.close();
            return null;
          },
          (err) => err,
        );
        expect(e).toBeInstanceOf(NatsConnectError);
        expect((e as NatsConnectError).kind).toBe('login');
      }
    });

    it("admits the NATS_URL a service's pod composes, as a working bus", async () => {
      const bus = await NatsBus.connect({ servers: url, logger: quiet, name: 'k8s-login-test' });
      try {
        await bus.kv.put('k8s-login', new TextEncoder().encode('ok'));
        expect(new TextDecoder().decode((await bus.kv.get('k8s-login')) ?? new Uint8Array())).toBe('ok');
      } finally {
        await bus.close();
      }
    });

    it("answers the readiness probe's /healthz without a login", async () => {
      const sts = find(dev, 'StatefulSet', 'nats');
      const path = sts.spec.template.spec.containers[0].readinessProbe.httpGet.path;
      const res = await fetch(`http://127.0.0.1:${monitor}${path}`);
      expect(res.status, await res.text()).toBe(200);
    });
  });
});
