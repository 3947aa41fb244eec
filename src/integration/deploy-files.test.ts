/**
 * The files under deploy/ and the Dockerfile, checked with the tools made for them:
 * systemd-analyze (security exposure score, kept equal to the one in docs/deploy.md),
 * dockerfile-utils (lint rules) plus our container policy where it has no rule, the
 * Kubernetes API schemas from kubernetes-models (ajv validators generated from the
 * Kubernetes OpenAPI spec; a field the schema does not define is an error too), promtool
 * (rule syntax and the rule unit tests), and the Grafana dashboard's queries against the
 * live metric registry.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser } from 'dockerfile-ast';
import { validate as lintDockerfile, ValidationSeverity } from 'dockerfile-utils';
import postgres from 'postgres';
import { parseAllDocuments, stringify } from 'yaml';
import { configSchema } from '../config/schema.js';
import { createMetrics } from '../observability/metrics.js';
import { checkPolicyFiles } from '../stages/policy/policy-set.js';
import { BIN } from '../testing/harness.js';
import { needPostgres, POSTGRES_URL } from '../testing/services.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

function needTool(t: TestContext, cmd: string, args: string[], pkg: string): boolean {
  if (spawnSync(cmd, args).status === 0) return true;
  const reason = `${cmd} not found (Debian package ${pkg}; .ci/run installs it)`;
  if (process.env.CI) throw new Error(`${reason} (required in CI)`);
  console.log(`# skipping: ${reason}`);
  t.skip(reason);
  return false;
}

describe('systemd unit', () => {
  it('systemd-analyze security --offline scores it as docs/deploy.md says, and the unit has the essentials', (t) => {
    if (!needTool(t, 'systemd-analyze', ['--version'], 'systemd')) return;
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', join(ROOT, 'deploy/systemd/gatehouse.service')], { encoding: 'utf8' });
    const m = /Overall exposure level for gatehouse\.service: (\d+\.\d+)/.exec(r.stdout + r.stderr);
    assert.ok(m, r.stdout + r.stderr);
    const documented = /exposure level (\d+\.\d+)/.exec(read('docs/deploy.md'));
    assert.ok(documented, 'docs/deploy.md states the exposure level');
    assert.equal(m[1], documented[1], 'the score changed: update docs/deploy.md (and keep it low)');
    assert.ok(Number(m[1]) <= 2, `exposure ${m[1]} is above 2.0`);
    const unit = read('deploy/systemd/gatehouse.service');
    for (const line of ['User=gatehouse', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'NoNewPrivileges=yes', 'ExecReload=/bin/kill -HUP $MAINPID', 'ProtectSystem=strict', 'LoadCredential=admin-token:']) {
      assert.ok(unit.includes(line), `missing ${line}`);
    }
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=yes/m, 'V8 needs JIT');
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', join(ROOT, 'deploy/systemd/gatehouse.service')], { encoding: 'utf8' });
    assert.doesNotMatch(verify.stderr, /Unknown (key|section)|Invalid|Failed to parse/i, verify.stderr);
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  it('passes the dockerfile-utils lint rules at error severity', () => {
    const diagnostics = lintDockerfile(text, {
      deprecatedMaintainer: ValidationSeverity.ERROR,
      directiveCasing: ValidationSeverity.ERROR,
      emptyContinuationLine: ValidationSeverity.ERROR,
      instructionCasing: ValidationSeverity.ERROR,
      instructionCmdMultiple: ValidationSeverity.ERROR,
      instructionEntrypointMultiple: ValidationSeverity.ERROR,
      instructionHealthcheckMultiple: ValidationSeverity.ERROR,
      instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
      instructionWorkdirRelative: ValidationSeverity.ERROR,
    });
    assert.deepEqual(diagnostics.map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  });

  it('follows our container policy: pinned bases, multi-stage, distroless runtime as 65532, exec-form entrypoint, no ADD, state in a volume', () => {
    const df = DockerfileParser.parse(text);
    const froms = df.getFROMs();
    assert.ok(froms.length >= 2, 'multi-stage');
    for (const f of froms) {
      const tag = f.getImageTag();
      assert.ok(f.getImageDigest() !== null || (tag !== null && tag !== 'latest'), `${f.getImage()} is pinned by tag or digest`);
    }
    const final = froms[froms.length - 1];
    assert.match(final?.getImage() ?? '', /^gcr\.io\/distroless\//, 'the runtime has no shell');
    const stages = df.getInstructions();
    const finalStart = final?.getRange().start.line ?? 0;
    const runtime = stages.filter((i) => i.getRange().start.line > finalStart);
    assert.deepEqual(runtime.filter((i) => i.getKeyword() === 'RUN').map((i) => i.toString()), [], 'nothing runs in the runtime stage (no shell there)');
    assert.equal(runtime.filter((i) => i.getKeyword() === 'USER').at(-1)?.getArgumentsContent(), '65532:65532');
    assert.deepEqual(stages.filter((i) => i.getKeyword() === 'ADD').map((i) => i.toString()), [], 'COPY only (no ADD of URLs or archives)');
    const entry = runtime.find((i) => i.getKeyword() === 'ENTRYPOINT');
    assert.match(entry?.getArgumentsContent() ?? '', /^\[".*"\]$/, 'exec form');
    assert.match(runtime.find((i) => i.getKeyword() === 'VOLUME')?.getArgumentsContent() ?? '', /\/var\/lib\/gatehouse/);
    assert.match(read('.dockerignore'), /^\*\*\/\*\.key$/m, 'keys never enter the build context');
  });
});

/** Records which properties the schema's validator reads on each object, to find fields it does not define. */
function tracker() {
  const infos = new Map<object, { read: Set<string>; iterated: boolean; path: string }>();
  const proxies = new WeakMap<object, object>();
  const track = (value: unknown, path: string): unknown => {
    if (value === null || typeof value !== 'object') return value;
    const cached = proxies.get(value);
    if (cached) return cached;
    const info = { read: new Set<string>(), iterated: false, path };
    infos.set(value, info);
    const proxy = new Proxy(value, {
      get(t, k, r) {
        if (typeof k === 'string') info.read.add(k);
        const v: unknown = Reflect.get(t, k, r);
        return typeof k === 'string' && Object.hasOwn(t, k) ? track(v, `${path}.${k}`) : v;
      },
      has(t, k) {
        if (typeof k === 'string') info.read.add(k);
        return Reflect.has(t, k);
      },
      ownKeys(t) {
        // A map (labels, data, matchLabels): the schema walks every key itself.
        info.iterated = true;
        return Reflect.ownKeys(t);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  const unknown = () => {
    const out: string[] = [];
    for (const [obj, info] of infos) {
      if (info.iterated || Array.isArray(obj)) continue;
      for (const k of Object.keys(obj)) if (!info.read.has(k)) out.push(`${info.path}.${k}`);
    }
    return out;
  };
  return { track, unknown };
}

async function kubeValidate(doc: Record<string, unknown>): Promise<string[]> {
  const apiVersion = String(doc.apiVersion);
  const kind = String(doc.kind);
  const mod = (await import(`kubernetes-models/${apiVersion.includes('/') ? apiVersion : `v1`}/${kind}`)) as Record<string, { prototype: { validate(): void } }>;
  const model = mod[kind];
  assert.ok(model, `no schema for ${apiVersion} ${kind}`);
  const t = tracker();
  const errors: string[] = [];
  try {
    model.prototype.validate.call(t.track(doc, kind));
  } catch (e) {
    errors.push((e as Error).message);
  }
  return [...errors, ...t.unknown().map((p) => `${p}: not a field of the ${apiVersion} ${kind} schema`)];
}

function manifests(): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const f of readdirSync(join(ROOT, 'deploy/kubernetes')).filter((x) => x.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(read(`deploy/kubernetes/${f}`))) {
      assert.deepEqual(d.errors, [], f);
      out.push(d.toJS() as Record<string, unknown>);
    }
  }
  return out;
}

describe('Kubernetes manifests', () => {
  it('validate against the Kubernetes API schemas (kubernetes-models), unknown fields included', async () => {
    const docs = manifests();
    assert.ok(docs.length >= 8);
    for (const d of docs) assert.deepEqual(await kubeValidate(d), [], `${String(d.kind)} ${JSON.stringify((d.metadata as { name?: string }).name)}`);
  });

  it('the schema check catches a misspelled security field and a wrong type (the check is not vacuous)', async () => {
    const dep = manifests().find((d) => d.kind === 'Deployment') as Record<string, unknown>;
    const broken = JSON.parse(JSON.stringify(dep).replace('"readOnlyRootFilesystem":true', '"readOnlyRootFileSystem":true').replace('"runAsUser":65532', '"runAsUser":"65532"')) as Record<string, unknown>;
    const problems = await kubeValidate(broken);
    assert.ok(problems.some((p) => /readOnlyRootFileSystem: not a field/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /runAsUser must be integer/.test(p)), problems.join('\n'));
  });

  it('the Deployment is locked down as ATOM requires; the embedded config and policies are valid', () => {
    const docs = manifests();
    const dep = docs.find((d) => d.kind === 'Deployment') as { spec: { template: { spec: Record<string, unknown> } } };
    const pod = dep.spec.template.spec as { securityContext: Record<string, unknown>; containers: Array<Record<string, unknown>>; volumes: Array<Record<string, unknown>>; automountServiceAccountToken: boolean };
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.automountServiceAccountToken, false);
    const c = pod.containers[0] as { securityContext: Record<string, unknown>; readinessProbe: { httpGet: { path: string; port: string } }; livenessProbe: { httpGet: { path: string; port: string } }; env?: unknown; envFrom?: unknown };
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.deepEqual([c.livenessProbe.httpGet.path, c.readinessProbe.httpGet.path, c.readinessProbe.httpGet.port], ['/healthz', '/readyz', 'admin']);
    assert.equal(c.env, undefined, 'no secrets in the environment');
    assert.equal(c.envFrom, undefined);
    assert.ok(pod.volumes.some((v) => (v.secret as { secretName?: string } | undefined)?.secretName === 'gatehouse-secrets'), 'secrets as a volume');
    assert.ok(pod.volumes.some((v) => (v.configMap as { name?: string } | undefined)?.name === 'gatehouse-policies'), 'policies as a ConfigMap');
    const np = docs.find((d) => d.kind === 'NetworkPolicy' && (d.metadata as { name: string }).name === 'only-gatehouse') as { metadata: { namespace: string } };
    assert.equal(np.metadata.namespace, 'apps');

    const cm = docs.find((d) => d.kind === 'ConfigMap' && (d.metadata as { name: string }).name === 'gatehouse-config') as { data: Record<string, string> };
    assert.doesNotMatch(JSON.stringify(docs.filter((d) => d.kind === 'ConfigMap')), /password:|secret:|token:|BEGIN .*PRIVATE KEY/i, 'no secret values in ConfigMaps');
    const parsed = configSchema.safeParse(parseAllDocuments(cm.data['gatehouse.yaml'] as string)[0]?.toJS());
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
    const policies = docs.find((d) => d.kind === 'ConfigMap' && (d.metadata as { name: string }).name === 'gatehouse-policies') as { data: Record<string, string> };
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-k8s-policies-'));
    const files = Object.entries(policies.data).map(([name, text]) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    });
    assert.equal(checkPolicyFiles(files), null);
  });
});

describe('Kubernetes: the audit migrate Job', () => {
  const docs = () => manifests().filter((d) => (d.metadata as { labels?: Record<string, string> }).labels?.['app.kubernetes.io/name'] === 'gatehouse-audit-migrate' || (d.metadata as { name: string }).name === 'gatehouse-audit-migrate');
  const ownerConfig = () => (docs().find((d) => d.kind === 'ConfigMap') as { data: Record<string, string> }).data['gatehouse.yaml'] as string;

  it('runs `audit migrate` locked down like the gateway, with the owner\'s secret and the CA root only — none of the gateway\'s secrets', () => {
    const job = docs().find((d) => d.kind === 'Job') as { spec: { backoffLimit: number; template: { spec: Record<string, unknown> } } };
    assert.ok(job, 'a Job named gatehouse-audit-migrate');
    const pod = job.spec.template.spec as { securityContext: Record<string, unknown>; containers: Array<Record<string, unknown>>; volumes: Array<Record<string, unknown>>; automountServiceAccountToken: boolean; restartPolicy: string };
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.restartPolicy, 'Never');
    const c = pod.containers[0] as { args: string[]; securityContext: Record<string, unknown>; env?: unknown; envFrom?: unknown; volumeMounts: Array<{ name: string; mountPath: string }> };
    assert.deepEqual(c.args.slice(0, 3), ['audit', 'migrate', '--config']);
    const configMount = c.volumeMounts.find((m) => m.name === 'config') as { mountPath: string };
    assert.equal(c.args[3], `${configMount.mountPath}/gatehouse.yaml`);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
    assert.equal(c.env, undefined, 'no secrets in the environment');
    assert.equal(c.envFrom, undefined);
    const secrets = pod.volumes.filter((v) => v.secret !== undefined).map((v) => v.secret as { secretName: string; items?: Array<{ key: string }> });
    assert.deepEqual(secrets.map((x) => x.secretName).sort(), ['gatehouse-audit-owner', 'gatehouse-ca']);
    assert.deepEqual((secrets.find((x) => x.secretName === 'gatehouse-ca') as { items: Array<{ key: string }> }).items.map((i) => i.key), ['root.crt'], 'the CA root certificate only, never a key');
    assert.ok(pod.volumes.some((v) => (v.configMap as { name?: string } | undefined)?.name === 'gatehouse-audit-migrate-config'));
    const np = docs().find((d) => d.kind === 'NetworkPolicy') as { spec: { ingress: unknown[]; policyTypes: string[] } };
    assert.deepEqual(np.spec.ingress, []);
    assert.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
    // Its config holds the store settings and nothing of the gateway's.
    const cfg = parseAllDocuments(ownerConfig())[0]?.toJS() as Record<string, unknown>;
    assert.deepEqual(Object.keys(cfg).sort(), ['audit', 'state']);
    assert.deepEqual(cfg.audit, { store: 'postgres' });
    assert.doesNotMatch(ownerConfig(), /password:|secret:|token:|BEGIN .*PRIVATE KEY/i);
  });

  it('its config, pointed at the test PostgreSQL, migrates a fresh schema through the CLI (no sites, keys or other secrets needed)', async (t) => {
    if (!(await needPostgres(t))) return;
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-k8s-migrate-'));
    writeFileSync(join(dir, 'postgres-owner-password'), 'unused-with-trust-auth\n', { mode: 0o600 });
    const schema = `audit_job_${randomBytes(5).toString('hex')}`;
    const cfg = parseAllDocuments(ownerConfig())[0]?.toJS() as { state: { dir: string; postgres: Record<string, unknown> }; audit: unknown };
    // The test server: plain TCP on loopback, so no TLS block; the rest as shipped.
    cfg.state.dir = join(dir, 'state');
    cfg.state.postgres = { url: POSTGRES_URL, password_file: join(dir, 'postgres-owner-password'), schema };
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, stringify(cfg));
    const sql = postgres(POSTGRES_URL, { max: 1, onnotice: () => undefined });
    try {
      const r = spawnSync(process.execPath, [BIN, 'audit', 'migrate', '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`audit store migrated \\(PostgreSQL schema ${schema}, schema version \\d+\\)`));
      const roles = await sql<Array<{ rolname: string }>>`SELECT rolname FROM pg_roles WHERE rolname LIKE ${`${schema}_audit_%`} ORDER BY rolname`;
      assert.deepEqual(roles.map((x) => x.rolname), [`${schema}_audit_pruner`, `${schema}_audit_reader`, `${schema}_audit_writer`]);
      // Idempotent: the Job's retries (and the next upgrade's run) do no harm.
      assert.equal(spawnSync(process.execPath, [BIN, 'audit', 'migrate', '--config', file], { encoding: 'utf8' }).status, 0);
      // A section it reads is still validated.
      writeFileSync(file, stringify({ ...cfg, audit: { store: 'mysql' } }));
      const bad = spawnSync(process.execPath, [BIN, 'audit', 'migrate', '--config', file], { encoding: 'utf8' });
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /audit\.store/);
    } finally {
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      for (const role of ['writer', 'reader', 'pruner']) await sql.unsafe(`DROP ROLE IF EXISTS ${schema}_audit_${role}`);
      await sql.end({ timeout: 2 });
    }
  });
});

describe('Prometheus rules', () => {
  it('promtool check rules and promtool test rules pass', (t) => {
    if (!needTool(t, 'promtool', ['--version'], 'prometheus')) return;
    const check = spawnSync('promtool', ['check', 'rules', join(ROOT, 'deploy/prometheus/gatehouse-rules.yaml')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const tests = readdirSync(join(ROOT, 'deploy/prometheus')).filter((f) => f.endsWith('.test.yaml'));
    assert.ok(tests.length > 0);
    const run = spawnSync('promtool', ['test', 'rules', ...tests.map((f) => join(ROOT, 'deploy/prometheus', f))], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  it('every alert is unit-tested, and every fail-closed refusal code has an alert', () => {
    const rules = read('deploy/prometheus/gatehouse-rules.yaml');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1] as string);
    const tests = readdirSync(join(ROOT, 'deploy/prometheus')).filter((f) => f.endsWith('.test.yaml')).map((f) => read(`deploy/prometheus/${f}`)).join('\n');
    for (const a of alerts) assert.match(tests, new RegExp(`alertname: ${a}\\b`), `${a} has no promtool test`);
    for (const code of ['rate_limit_unavailable', 'revocation_unavailable', 'identity_registry_unavailable', 'token_keys_unavailable', 'audit_unavailable', 'policy evaluation errors']) {
      assert.ok(rules.includes(code), `no alert mentions ${code}`);
    }
    for (const a of ['GatehouseDown', 'GatehouseCertificateExpiring', 'GatehouseDiskFilling']) assert.ok(alerts.includes(a), `Atlas alert ${a}`);
  });
});

/** Names of the series a metric exposes (histograms: _bucket, _sum, _count), from the live registry. */
async function seriesNames(): Promise<Set<string>> {
  const m = createMetrics({ version: 'test' });
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
    if (String(metric.type) === 'summary') for (const s of ['_sum', '_count']) names.add(metric.name + s);
  }
  return names;
}

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group']);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords or label names. */
function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '{}').replace(/\[[^\]]*\]/g, '[]').replace(/(?<![a-zA-Z0-9_:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, '0');
  const names: string[] = [];
  for (const m of noStrings.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = noStrings.slice((m.index ?? 0) + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // a function or aggregation
    const before = noStrings.slice(0, m.index).trimEnd();
    if (/(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) continue; // label list
    if (AGGREGATIONS.has(m[0])) continue;
    if (['by', 'without', 'on', 'ignoring', 'and', 'or', 'unless', 'bool', 'offset', 'group_left', 'group_right', 'e', 'time'].includes(m[0])) continue;
    names.push(m[0]);
  }
  return names;
}

describe('Grafana dashboard', () => {
  it('every query names only metrics that gatehouse exports (read from the live registry)', async () => {
    const known = await seriesNames();
    const dash = JSON.parse(read('deploy/grafana/gatehouse-dashboard.json')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    assert.ok(dash.panels.length >= 10);
    for (const p of dash.panels) {
      for (const t of p.targets) {
        const names = metricNames(t.expr.replace(/\$\w+/g, 'x'));
        assert.ok(names.length > 0, `${p.title}: no metric in ${t.expr}`);
        for (const n of names) assert.ok(known.has(n), `${p.title}: ${n} is not a gatehouse metric (${t.expr})`);
      }
    }
  });

  it('the extraction finds a misspelled metric (the check is not vacuous); the alert rules name real metrics too', async () => {
    const known = await seriesNames();
    assert.deepEqual(metricNames('sum by (site) (rate(gatehouse_http_request_total{status=~"5.."}[5m]))'), ['gatehouse_http_request_total']);
    assert.ok(!known.has('gatehouse_http_request_total'));
    const rules = read('deploy/prometheus/gatehouse-rules.yaml');
    for (const m of rules.matchAll(/expr: (?:\|\n)?([\s\S]*?)\n\s+(?:for|labels):/g)) {
      for (const n of metricNames(m[1] as string)) if (n.startsWith('gatehouse_')) assert.ok(known.has(n), `rule names ${n}`);
    }
  });
});
