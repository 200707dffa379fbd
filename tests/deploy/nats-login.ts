/**
 * The NATS login of deploy/k8s, checked on rendered objects: nats-server's config requires a user and
 * password that its container takes from a Secret; every container that has NATS_URL composes it as
 * `nats://$(USER):$(PASSWORD)@HOST:PORT` from the same Secret's keys, HOST:PORT naming a Service of
 * that server; the password is one nats-server and a URL both read as is; no object but a Secret
 * holds a login in the clear; and NetworkPolicies admit to NATS's client port only pods that log in.
 */
import { basename, dirname } from 'node:path';
import { nsOf, type Obj, type PodTemplate, podPortNumber, podTemplates, ref, selects } from './k8s-objects';

interface KeyRef {
  secret: string;
  key: string;
}

const VAR_REF = /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g;
const CLIENT_URL = /^(nats|tls):\/\/\$\(([A-Za-z_]\w*)\):\$\(([A-Za-z_]\w*)\)@(.+)$/;
/** A password nats-server reads as a string where its config says `$VAR`, and a URL carries unescaped. */
const SAFE_PASSWORD = /^[A-Za-z][A-Za-z0-9]*$/;
const CONFIG_BOOLEANS = new Set(['true', 'false', 'yes', 'no', 'on', 'off']);

const find = (objects: Obj[], kind: string, ns: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata?.name === name && nsOf(o) === ns);

/** A Secret's or ConfigMap's value of `key`, decoded, or undefined. */
function dataValue(o: Obj | undefined, key: string): string | undefined {
  if (!o) return undefined;
  if (o.kind === 'Secret') {
    if (o.stringData?.[key] !== undefined) return String(o.stringData[key]);
    return o.data?.[key] === undefined ? undefined : Buffer.from(String(o.data[key]), 'base64').toString('utf8');
  }
  return o.data?.[key] === undefined ? undefined : String(o.data[key]);
}

/** Kubernetes' $(VAR) expansion: defined variables are replaced, others kept, $$ is a literal $. */
function expand(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name?: string) => (name === undefined ? '$' : (vars[name] ?? all)));
}

/**
 * The environment a container of `owner` starts with, as the kubelet builds it: envFrom first, then
 * env in order, each value expanded against what came before. `fields` answers fieldRef paths
 * (metadata.name, ...). Keys a Secret or ConfigMap lacks are left out.
 */
export function containerEnvironment(objects: Obj[], owner: Obj, c: Obj, fields: Record<string, string> = {}): Record<string, string> {
  const ns = nsOf(owner);
  const vars: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const source = from.configMapRef
      ? find(objects, 'ConfigMap', ns, from.configMapRef.name)
      : find(objects, 'Secret', ns, from.secretRef?.name);
    for (const key of Object.keys({ ...source?.data, ...source?.stringData })) {
      const v = dataValue(source, key);
      if (v !== undefined) vars[`${from.prefix ?? ''}${key}`] = v;
    }
  }
  for (const e of c.env ?? []) {
    const vf = e.valueFrom;
    let v: string | undefined;
    if (vf?.secretKeyRef) v = dataValue(find(objects, 'Secret', ns, vf.secretKeyRef.name), vf.secretKeyRef.key);
    else if (vf?.configMapKeyRef) v = dataValue(find(objects, 'ConfigMap', ns, vf.configMapKeyRef.name), vf.configMapKeyRef.key);
    else if (vf?.fieldRef) v = fields[vf.fieldRef.fieldPath];
    else v = expand(String(e.value ?? ''), vars);
    if (v !== undefined) vars[e.name] = v;
  }
  return vars;
}

/** The path of nats-server's config file in its arguments, or undefined. */
function configArg(c: Obj): string | undefined {
  const args: string[] = [...(c.command ?? []), ...(c.args ?? [])].map(String);
  for (const [i, a] of args.entries()) {
    if (a === '--config' || a === '-c') return args[i + 1];
    const eq = /^--?c(?:onfig)?=(.+)$/.exec(a);
    if (eq) return eq[1];
  }
  return undefined;
}

/** The ConfigMap and key that the file at `path` in the pod comes from, or undefined. */
function configMapFile(objects: Obj[], pod: PodTemplate, c: Obj, path: string): { cm: Obj; key: string } | undefined {
  const mount = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === dirname(path) && !m.subPath);
  const volume = mount && (pod.spec.volumes ?? []).find((v: Obj) => v.name === mount.name);
  if (!volume?.configMap) return undefined;
  const cm = find(objects, 'ConfigMap', pod.namespace, volume.configMap.name);
  const item = (volume.configMap.items ?? []).find((i: Obj) => i.path === basename(path));
  return cm && { cm, key: item?.key ?? basename(path) };
}

/** Every string in `value` with its dotted path. */
function strings(value: unknown, path: string, out: [string, string][] = []): [string, string][] {
  if (typeof value === 'string') out.push([path, value]);
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) strings(v, `${path}[${i}]`, out);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) strings(v, path ? `${path}.${k}` : k, out);
  return out;
}

const sameRef = (a: KeyRef, b: KeyRef) => a.secret === b.secret && a.key === b.key;
const showRef = (r: KeyRef) => `Secret/${r.secret} key ${r.key}`;

interface Client {
  pod: PodTemplate;
  at: string;
  user: KeyRef;
  pass: KeyRef;
  server: PodTemplate;
  port: number;
}

export function natsLoginErrors(objects: Obj[]): string[] {
  const errors: string[] = [];
  const err = (o: Obj, field: string, rule: string) => errors.push(`${ref(o)}: ${field}: ${rule}`);
  const pods = podTemplates(objects);
  const clients: Client[] = [];
  // A secretKeyRef at env[j] of a container must name a key its Secret has (else the pod never starts).
  const checkKeyRef = (pod: PodTemplate, at: string, j: number, sk: Obj) => {
    const secret = find(objects, 'Secret', pod.namespace, sk.name);
    if (!secret) err(pod.owner, `${at}.env[${j}].valueFrom.secretKeyRef`, `Secret/${sk.name} does not exist`);
    else if (dataValue(secret, sk.key) === undefined)
      err(pod.owner, `${at}.env[${j}].valueFrom.secretKeyRef`, `Secret/${sk.name} has no key ${sk.key}`);
  };

  for (const pod of pods) {
    const o = pod.owner;
    (pod.spec.containers ?? []).forEach((c: Obj, i: number) => {
      const at = `${pod.at}.spec.containers[${i}]`;
      const env: Obj[] = c.env ?? [];
      const u = env.findIndex((e) => e.name === 'NATS_URL');
      if (u < 0) {
        const cm = (c.envFrom ?? []).find((f: Obj) =>
          dataValue(find(objects, 'ConfigMap', pod.namespace, f.configMapRef?.name), 'NATS_URL'),
        );
        if (cm)
          err(
            o,
            `${at}.envFrom`,
            `NATS_URL comes from ConfigMap/${cm.configMapRef.name}, in the clear; compose it in env from a Secret's login`,
          );
        else if (String(c.args?.[0]) === 'serve') err(o, `${at}.env`, 'an rlmesh service needs NATS_URL, with its login from a Secret');
        return;
      }
      const f = `${at}.env[${u}]`;
      const m = CLIENT_URL.exec(String(env[u].value ?? ''));
      if (!m) {
        err(o, f, 'NATS_URL must be nats://$(USER):$(PASSWORD)@HOST:PORT, its login in variables from a Secret');
        return;
      }
      const login: KeyRef[] = [];
      for (const name of [m[2], m[3]]) {
        const j = env.findIndex((e) => e.name === name);
        const sk = env[j]?.valueFrom?.secretKeyRef;
        if (j < 0 || j > u || !sk) {
          err(o, `${f}.value`, `$(${name}) is not a variable from a secretKeyRef defined before NATS_URL`);
          continue;
        }
        checkKeyRef(pod, at, j, sk);
        login.push({ secret: sk.name, key: sk.key });
      }
      // HOST:PORT after expansion; the host is a Service, short or qualified (name.namespace.svc...).
      const vars = containerEnvironment(objects, o, { ...c, env: env.slice(0, u) });
      const address = expand(m[4], vars);
      const hp = /^([a-z0-9.-]+):(\d+)$/.exec(address);
      const [svcName, svcNs] = hp ? hp[1].split('.') : [];
      const svc = hp ? find(objects, 'Service', svcNs ?? pod.namespace, svcName) : undefined;
      const sp = svc?.spec?.ports?.find((p: Obj) => p.port === Number(hp?.[2]));
      if (!svc || !sp) {
        err(o, `${f}.value`, `${JSON.stringify(address)} is not HOST:PORT of a Service port in these manifests`);
        return;
      }
      const server = pods.find((p) => p.namespace === nsOf(svc) && selects({ matchLabels: svc.spec.selector }, p.labels));
      const port = server && podPortNumber(server.spec, sp.targetPort ?? sp.port);
      if (!server || port === undefined) {
        err(o, `${f}.value`, `Service/${svcName} port ${sp.port} leads to no NATS server pod`);
        return;
      }
      if (login.length === 2) clients.push({ pod, at: f, user: login[0], pass: login[1], server, port });
    });
  }

  // Each NATS server the clients name: its config requires the very login they present.
  for (const server of new Set(clients.map((c) => c.server))) {
    const o = server.owner;
    const i = (server.spec.containers ?? []).findIndex((c: Obj) =>
      (c.ports ?? []).some((p: Obj) => clients.some((x) => x.server === server && x.port === p.containerPort)),
    );
    const c = server.spec.containers[i];
    const at = `${server.at}.spec.containers[${i}]`;
    const path = configArg(c);
    const file = path && configMapFile(objects, server, c, path);
    if (!file) {
      err(o, `${at}.args`, `nats-server needs --config from a mounted ConfigMap (${path ? `${path} is not one` : 'none given'})`);
      continue;
    }
    const text = dataValue(file.cm, file.key) ?? '';
    const block = /^\s*authorization\s*[:=]?\s*\{([^}]*)\}/m.exec(text)?.[1];
    if (block === undefined) {
      err(file.cm, `data.${file.key}`, 'has no authorization block: NATS admits any client');
      continue;
    }
    const required: Record<string, KeyRef | undefined> = {};
    for (const field of ['user', 'password']) {
      const value: string | undefined = new RegExp(`^\\s*${field}\\s*[:=]?\\s*(\\S+)`, 'm').exec(block)?.[1];
      const variable: string | undefined = value ? /^\$([A-Za-z_]\w*)$/.exec(value)?.[1] : undefined;
      const j = variable ? (c.env ?? []).findIndex((e: Obj) => e.name === variable) : -1;
      const sk = c.env?.[j]?.valueFrom?.secretKeyRef;
      if (!sk) {
        err(
          file.cm,
          `data.${file.key}`,
          `authorization.${field} must be $VAR, a variable ${ref(o)} takes from a Secret (not a literal or a quoted string)`,
        );
        continue;
      }
      checkKeyRef(server, at, j, sk);
      required[field] = { secret: sk.name, key: sk.key };
    }
    const pass = required.password;
    const password = pass && dataValue(find(objects, 'Secret', server.namespace, pass.secret), pass.key);
    if (pass && password !== undefined && (!SAFE_PASSWORD.test(password) || CONFIG_BOOLEANS.has(password.toLowerCase())))
      err(
        find(objects, 'Secret', server.namespace, pass.secret) as Obj,
        `data.${pass.key}`,
        'must be letters and digits starting with a letter: NATS_URL carries it unescaped and nats-server parses $VAR as a config value (deploy/image.sh nats-secret makes one)',
      );
    for (const client of clients.filter((x) => x.server === server))
      for (const [field, have] of [
        ['user', client.user],
        ['password', client.pass],
      ] as const) {
        const want = required[field];
        if (want && !sameRef(want, have))
          err(client.pod.owner, `${client.at}.value`, `logs in with ${showRef(have)} as ${field}; ${ref(o)} requires ${showRef(want)}`);
      }
  }

  // Nothing but a Secret holds a login in the clear.
  const secrets = objects.filter((o) => o.kind === 'Secret');
  const secretValues = secrets.flatMap((s) =>
    Object.keys({ ...s.data, ...s.stringData })
      .map((key) => ({ s, key, value: dataValue(s, key) ?? '' }))
      .filter((x) => x.value.length >= 8),
  );
  for (const o of objects.filter((x) => x.kind !== 'Secret'))
    for (const [path, text] of strings(o, '')) {
      for (const x of secretValues) if (text.includes(x.value)) err(o, path, `holds the value of ${ref(x.s)} key ${x.key} in the clear`);
      for (const login of text.matchAll(/\b[a-z][a-z0-9+.-]*:\/\/([^\s/@]+)@/gi))
        if (login[1].replace(VAR_REF, '').replace(':', '') !== '')
          err(o, path, 'a URL with a literal login; take it from a Secret through $(VAR)');
      if (o.kind === 'ConfigMap')
        for (const line of text.matchAll(/^\s*password\s*[:=]?\s*(\S+)/gim))
          if (!/^\$[A-Za-z_]\w*$/.test(line[1])) err(o, path, 'a literal password; take it from the environment ($VAR) and a Secret');
    }

  // Only pods that log in may reach a NATS server's client port.
  for (const server of new Set(clients.map((c) => c.server))) {
    const port = clients.find((c) => c.server === server)?.port as number;
    const policies = objects.filter(
      (o) =>
        o.kind === 'NetworkPolicy' &&
        nsOf(o) === server.namespace &&
        selects(o.spec?.podSelector, server.labels) &&
        (o.spec?.policyTypes ?? ['Ingress']).includes('Ingress'),
    );
    if (policies.length === 0) {
      err(server.owner, 'spec.template.metadata.labels', `no NetworkPolicy limits who reaches NATS's client port ${port}`);
      continue;
    }
    const admitted = new Set<PodTemplate>();
    for (const np of policies)
      (np.spec.ingress ?? []).forEach((rule: Obj, i: number) => {
        const ports: Obj[] = rule.ports ?? [];
        if (ports.length > 0 && !ports.some((p) => p.port === undefined || podPortNumber(server.spec, p.port) === port)) return;
        const from: Obj[] = rule.from ?? [];
        if (from.length === 0) err(np, `spec.ingress[${i}].from`, `admits every source to NATS's client port ${port}`);
        from.forEach((peer, j) => {
          if (peer.ipBlock || peer.namespaceSelector || !peer.podSelector) {
            err(np, `spec.ingress[${i}].from[${j}]`, `admits sources outside this namespace's pods to NATS's client port ${port}`);
            return;
          }
          const sel = peer.podSelector;
          if (Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0) {
            err(np, `spec.ingress[${i}].from[${j}].podSelector`, '{} admits every pod of the namespace, login or not');
            return;
          }
          for (const p of pods.filter((x) => x.namespace === nsOf(np) && selects(peer.podSelector, x.labels))) {
            if (clients.some((c) => c.pod === p && c.server === server)) admitted.add(p);
            else if (p !== server) err(np, `spec.ingress[${i}].from[${j}].podSelector`, `admits ${ref(p.owner)}, which has no NATS login`);
          }
        });
      });
    for (const c of clients.filter((x) => x.server === server && !admitted.has(x.pod)))
      err(c.pod.owner, c.at, `no NetworkPolicy admits it to ${ref(server.owner)}'s client port ${port}`);
  }
  return errors;
}
