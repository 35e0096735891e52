// Renders deploy/helm/mergeloom with `helm template` and checks the resulting objects. Needs the
// helm binary, so it is not in the default suite (its name does not end in .test.ts); run it with
//   node --import tsx --test test/deploy/helm-render.helm-test.ts
// The default-values render includes the official NATS chart: it is taken from
// deploy/helm/mergeloom/charts/ (after `helm dependency update`), from MERGELOOM_NATS_CHART (a
// chart directory or .tgz), or fetched by `helm dependency update` here (needs network).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { parse, parseAllDocuments, stringify } from "yaml";
import { REPO_ROOT } from "../harness/repo-root.js";

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- rendered manifests are untyped YAML

const HELM = process.env.HELM ?? "helm";
const RELEASE = "rel";
const NAMESPACE = "ml";

const chartSrc = join(REPO_ROOT, "deploy", "helm", "mergeloom");

function helm(args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(HELM, args, { cwd, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
    assert.fail(`run helm-render test: '${HELM}' not found; install helm (https://helm.sh/docs/intro/install/) or set HELM to its path`);
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let work = "";

/** Runs `f` on first use; later calls return its result or rethrow its failure, so each test reports it. */
function once<T>(f: () => T): () => T {
  let done: { ok: true; value: T } | { ok: false; err: unknown } | undefined;
  return () => {
    if (!done) {
      try {
        done = { ok: true, value: f() };
      } catch (err) {
        done = { ok: false, err };
      }
    }
    if (!done.ok) throw done.err;
    return done.value;
  };
}
function copyChart(name: string): string {
  const dir = join(work, name, "mergeloom");
  cpSync(chartSrc, dir, { recursive: true });
  return dir;
}

/** A copy whose NATS dependency is present in charts/, or an assertion failure saying how to get it. */
function chartWithNats(): string {
  const dir = copyChart("with-nats");
  const charts = join(dir, "charts");
  const present = () => existsSync(charts) && readdirSync(charts).some((n) => n.startsWith("nats"));
  const local = process.env.MERGELOOM_NATS_CHART;
  if (!present() && local) cpSync(local, join(charts, local.endsWith(".tgz") ? basename(local) : "nats"), { recursive: true });
  if (!present()) {
    const r = helm(["dependency", "update", dir]);
    assert.equal(
      r.status,
      0,
      `helm dependency update: could not fetch the NATS chart (${r.stderr.trim()}); ` +
        "run it where https://nats-io.github.io/k8s/helm/charts/ is reachable, or set MERGELOOM_NATS_CHART to a local nats chart",
    );
  }
  return dir;
}

/** A copy without the NATS dependency, for values that disable it (helm requires declared dependencies to be present). */
function chartWithoutNats(): string {
  const dir = copyChart("without-nats");
  const chartYaml = join(dir, "Chart.yaml");
  const chart = parse(readFileSync(chartYaml, "utf8")) as Obj;
  delete chart.dependencies;
  writeFileSync(chartYaml, stringify(chart));
  return dir;
}

function render(dir: string, extra: string[] = []): Obj[] {
  const r = helm(["template", RELEASE, dir, "--namespace", NAMESPACE, ...extra]);
  assert.equal(r.status, 0, `helm template failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj)
    .filter((o) => o && o.kind);
}

const one = (objs: Obj[], kind: string, nameSuffix = ""): Obj => {
  const found = objs.filter((o) => o.kind === kind && String(o.metadata.name).endsWith(nameSuffix));
  assert.equal(found.length, 1, `expected one ${kind} named *${nameSuffix}, found ${found.map((o) => o.metadata.name).join(", ") || "none"}`);
  return found[0];
};
const podSpec = (o: Obj): Obj => o.spec.template.spec;
const container = (o: Obj): Obj => podSpec(o).containers[0];
const envOf = (c: Obj): Map<string, Obj> => new Map((c.env as Obj[]).map((e) => [e.name, e]));
const argAfter = (c: Obj, flag: string): string | undefined => {
  const i = (c.args as string[]).indexOf(flag);
  return i === -1 ? undefined : c.args[i + 1];
};
const claimOf = (o: Obj): string => (podSpec(o).volumes as Obj[]).find((v) => v.name === "models")!.persistentVolumeClaim.claimName;
const mountOf = (c: Obj, name: string): Obj | undefined => (c.volumeMounts as Obj[]).find((m) => m.name === name);

before(() => {
  work = mkdtempSync(join(tmpdir(), "mergeloom-helm-"));
});
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("helm template with the default values", () => {
  const rendered = once(() => render(chartWithNats()));

  test("renders the worker Deployment, coordinator Job, config, volume claim, metrics Service and the NATS StatefulSet", () => {
    const objs = rendered();
    const kinds = new Set(objs.map((o) => o.kind));
    for (const k of ["Deployment", "Job", "ConfigMap", "PersistentVolumeClaim", "Service", "ServiceAccount", "StatefulSet"]) {
      assert.ok(kinds.has(k), `${k} not rendered`);
    }
    assert.ok(!kinds.has("ScaledObject") && !kinds.has("ServiceMonitor"), "KEDA and ServiceMonitor are off by default");
  });

  test("coordinator and workers run the same image, the chart's appVersion", () => {
    const objs = rendered();
    const chart = parse(readFileSync(join(chartSrc, "Chart.yaml"), "utf8")) as Obj;
    const image = `ghcr.io/mergeloom/mergeloom:${chart.appVersion}`;
    assert.equal(container(one(objs, "Deployment", "-worker")).image, image);
    assert.equal(container(one(objs, "Job")).image, image);
  });

  test("coordinator and workers point at the bundled NATS Service, which runs JetStream on file storage", () => {
    const objs = rendered();
    const w = envOf(container(one(objs, "Deployment", "-worker"))).get("MERGELOOM_NATS_URL")!.value;
    const c = envOf(container(one(objs, "Job"))).get("MERGELOOM_NATS_URL")!.value;
    assert.equal(w, c);
    assert.equal(w, `nats://${RELEASE}-nats.${NAMESPACE}.svc:4222`);
    const svc = objs.find((o) => o.kind === "Service" && o.metadata.name === `${RELEASE}-nats`);
    assert.ok(svc, `NATS Service ${RELEASE}-nats not rendered`);
    assert.ok((svc.spec.ports as Obj[]).some((p) => p.port === 4222));
    const natsConfig = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === `${RELEASE}-nats-config`);
    assert.ok(natsConfig, "NATS ConfigMap not rendered");
    assert.match(JSON.stringify(natsConfig.data), /jetstream.*store_dir/);
  });

  test("coordinator and workers mount the same new ReadWriteMany claim at /models", () => {
    const objs = rendered();
    const worker = one(objs, "Deployment", "-worker");
    const job = one(objs, "Job");
    const pvc = one(objs, "PersistentVolumeClaim", "-models");
    assert.equal(claimOf(worker), pvc.metadata.name);
    assert.equal(claimOf(job), pvc.metadata.name);
    assert.deepEqual(pvc.spec.accessModes, ["ReadWriteMany"]);
    assert.equal(pvc.metadata.annotations["helm.sh/resource-policy"], "keep");
    assert.equal(mountOf(container(worker), "models")!.mountPath, "/models");
    assert.equal(mountOf(container(job), "models")!.mountPath, "/models");
    assert.equal(argAfter(container(worker), "--storage-root"), "/models");
  });

  test("workers request one GPU and probe /healthz and /readyz on the --http-port", () => {
    const objs = rendered();
    const worker = one(objs, "Deployment", "-worker");
    const c = container(worker);
    assert.equal(worker.spec.replicas, 4);
    assert.equal(c.resources.limits["nvidia.com/gpu"], 1);
    assert.equal(c.resources.requests["nvidia.com/gpu"], 1);
    assert.equal(c.args[0], "worker");
    const port = (c.ports as Obj[]).find((p) => p.name === "http-metrics")!.containerPort;
    assert.equal(String(port), argAfter(c, "--http-port"));
    assert.deepEqual(c.livenessProbe.httpGet, { path: "/healthz", port: "http-metrics" });
    assert.deepEqual(c.readinessProbe.httpGet, { path: "/readyz", port: "http-metrics" });
    assert.equal(worker.spec.template.metadata.annotations["prometheus.io/scrape"], "true");
    assert.equal(worker.spec.template.metadata.annotations["prometheus.io/port"], String(port));
    assert.equal(podSpec(worker).terminationGracePeriodSeconds, 600);
  });

  test("the coordinator Job runs `mergeloom merge` on the ConfigMap's config and restarts in place to resume", () => {
    const objs = rendered();
    const job = one(objs, "Job");
    const c = container(job);
    assert.deepEqual(c.args.slice(0, 6), ["merge", "/etc/mergeloom/config/config.yml", "-o", "/models/merged/out", "--nats", "$(MERGELOOM_NATS_URL)"]);
    assert.equal(podSpec(job).restartPolicy, "OnFailure");
    const cm = one(objs, "ConfigMap", "mergeloom-config");
    assert.equal((podSpec(job).volumes as Obj[]).find((v) => v.name === "config")!.configMap.name, cm.metadata.name);
    assert.match(cm.data["config.yml"], /merge_method: linear/);
    assert.equal(mountOf(c, "config")!.mountPath, "/etc/mergeloom/config");
  });

  test("pods run as the image's non-root uid", () => {
    const objs = rendered();
    for (const o of [one(objs, "Deployment", "-worker"), one(objs, "Job")]) {
      assert.equal(podSpec(o).securityContext.runAsNonRoot, true);
      assert.equal(podSpec(o).securityContext.runAsUser, 10001);
    }
  });
});

describe("helm template with ci/full-values.yaml", () => {
  const rendered = once(() => render(chartWithoutNats(), ["-f", join(chartSrc, "ci", "full-values.yaml")]));

  test("renders the ScaledObject and ServiceMonitor, uses the existing claim and no bundled NATS", () => {
    const objs = rendered();
    const kinds = objs.map((o) => o.kind);
    assert.ok(kinds.includes("ScaledObject") && kinds.includes("ServiceMonitor"));
    assert.ok(!kinds.includes("PersistentVolumeClaim") && !kinds.includes("StatefulSet"));
    assert.equal(claimOf(one(objs, "Deployment", "-worker")), "llm-checkpoints");
    assert.equal(claimOf(one(objs, "Job")), "llm-checkpoints");
  });

  test("coordinator and workers share the external URL, credentials from the Secret, TLS files and the OTLP endpoint", () => {
    const objs = rendered();
    const envs = [envOf(container(one(objs, "Deployment", "-worker"))), envOf(container(one(objs, "Job")))];
    for (const env of envs) {
      assert.equal(env.get("MERGELOOM_NATS_URL")!.value, "tls://nats.messaging.svc:4222");
      assert.deepEqual(env.get("NATS_USER")!.valueFrom.secretKeyRef, { name: "mergeloom-nats", key: "user" });
      assert.deepEqual(env.get("NATS_PASSWORD")!.valueFrom.secretKeyRef, { name: "mergeloom-nats", key: "password" });
      assert.ok(!env.has("NATS_TOKEN") && !env.has("NATS_NKEY_SEED"), "unset keys must not become env vars");
      assert.equal(env.get("NATS_CREDS")!.value, "/etc/mergeloom/nats-auth/mergeloom.creds");
      assert.equal(env.get("NATS_TLS_CA")!.value, "/etc/mergeloom/nats-tls/ca.crt");
      assert.equal(env.get("NATS_TLS_CERT")!.value, "/etc/mergeloom/nats-tls/tls.crt");
      assert.equal(env.get("NATS_TLS_KEY")!.value, "/etc/mergeloom/nats-tls/tls.key");
      assert.equal(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")!.value, "http://otel-collector.observability.svc:4318");
    }
    assert.equal(envs[0].get("OTEL_SERVICE_NAME")!.value, "mergeloom-worker");
    assert.equal(envs[1].get("OTEL_SERVICE_NAME")!.value, "mergeloom-coordinator");
    const worker = one(objs, "Deployment", "-worker");
    const vols = podSpec(worker).volumes as Obj[];
    assert.equal(vols.find((v) => v.name === "nats-auth")!.secret.secretName, "mergeloom-nats");
    assert.equal(vols.find((v) => v.name === "nats-tls")!.secret.secretName, "mergeloom-nats-tls");
    assert.equal(mountOf(container(worker), "nats-auth")!.readOnly, true);
  });

  test("workers get GPU scheduling, concurrency, threads and extra storage roots; KEDA owns the replica count", () => {
    const objs = rendered();
    const worker = one(objs, "Deployment", "-worker");
    const c = container(worker);
    assert.equal(worker.spec.replicas, undefined);
    assert.equal(podSpec(worker).nodeSelector["nvidia.com/gpu.product"], "NVIDIA-H100-80GB-HBM3");
    assert.equal(podSpec(worker).tolerations[0].key, "nvidia.com/gpu");
    assert.ok(podSpec(worker).affinity.podAntiAffinity);
    assert.equal(c.resources.limits["nvidia.com/gpu"], 1);
    assert.equal(c.resources.limits.memory, "96Gi");
    assert.equal(argAfter(c, "--concurrency"), "2");
    assert.equal(argAfter(c, "--threads"), "16");
    assert.equal(argAfter(c, "--http-port"), "9500");
    assert.deepEqual(
      (c.args as string[]).filter((_, i) => c.args[i - 1] === "--storage-root"),
      ["/models", "/scratch"],
    );
    assert.equal(podSpec(worker).terminationGracePeriodSeconds, 900);
    assert.equal(c.image, "registry.example.com/ml/mergeloom:0.1.0-cuda");
  });

  test("the ScaledObject watches the workers' JetStream consumer and targets the worker Deployment", () => {
    const objs = rendered();
    const so = one(objs, "ScaledObject");
    assert.equal(so.spec.scaleTargetRef.name, one(objs, "Deployment", "-worker").metadata.name);
    const t = so.spec.triggers[0];
    assert.equal(t.type, "nats-jetstream");
    assert.deepEqual(
      { ...t.metadata },
      {
        natsServerMonitoringEndpoint: "nats.messaging.svc:8222",
        account: "MERGE",
        stream: "MERGELOOM_TASKS",
        consumer: "mergeloom_v1_task_merge",
        lagThreshold: "4",
        activationLagThreshold: "1",
        useHttps: "false",
      },
    );
  });

  test("the ServiceMonitor selects the worker metrics Service by its port name", () => {
    const objs = rendered();
    const sm = one(objs, "ServiceMonitor");
    const svc = one(objs, "Service", "-worker-metrics");
    assert.equal(sm.spec.endpoints[0].port, svc.spec.ports[0].name);
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels[k], v);
    assert.equal(sm.metadata.labels.release, "kube-prometheus-stack");
  });

  test("the coordinator passes shard size and seed and is named after its run id", () => {
    const objs = rendered();
    const job = one(objs, "Job");
    const c = container(job);
    assert.equal(job.metadata.name, "ml-merge-r2");
    assert.equal(argAfter(c, "--out-shard-size"), "5000000000");
    assert.equal(argAfter(c, "--random-seed"), "42");
    assert.equal(c.args[1], "/etc/mergeloom/config/ties-70b.yml");
    assert.equal(job.spec.activeDeadlineSeconds, 172800);
  });
});

describe("helm template rejects bad values", () => {
  test("an external NATS without a URL fails before anything is rendered", () => {
    const r = helm(["template", RELEASE, chartWithoutNats(), "--set", "nats.enabled=false"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /natsConnection|url/);
  });

  test("evolve with resume renders `mergeloom evolve ... --resume`", () => {
    const objs = render(chartWithoutNats(), [
      "--set",
      "nats.enabled=false",
      "--set",
      "natsConnection.url=nats://n:4222",
      "--set",
      "coordinator.command=evolve",
    ]);
    const c = container(one(objs, "Job", "-evolve"));
    assert.equal(c.args[0], "evolve");
    assert.ok(c.args.includes("--resume"));
    assert.ok(!c.args.includes("--random-seed"));
  });
});
