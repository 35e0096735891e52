// Checks of deploy/ that need no helm, cluster or Docker engine: the values schema against the
// default and full values files, Chart.yaml's NATS dependency, a regex-level scan of the
// templates, and the Dockerfile's stages, user and CUDA switch. The rendered objects are checked
// by helm-render.helm-test.ts where helm is installed.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { parse } from "yaml";
import ajvModule from "ajv";

// ajv is CommonJS: its class is the module object itself, also exposed as `.default`.
const Ajv = ajvModule.default;
import { lintTemplates, type TemplateFile } from "./chart-lint.js";
import { REPO_ROOT } from "../harness/repo-root.js";

const root = REPO_ROOT;
const chartDir = join(root, "deploy", "helm", "mergeloom");
const readYaml = (p: string): Record<string, unknown> => parse(readFileSync(p, "utf8")) as Record<string, unknown>;
const values = readYaml(join(chartDir, "values.yaml"));
const fullValues = readYaml(join(chartDir, "ci", "full-values.yaml"));
const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")) as object;

/** Helm coalesces user values over values.yaml; a deep merge of maps is the same for these files. */
function coalesce(base: unknown, over: unknown): unknown {
  if (base && over && typeof base === "object" && typeof over === "object" && !Array.isArray(base) && !Array.isArray(over)) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(over)) out[k] = k in out ? coalesce(out[k], v) : v;
    return out;
  }
  return over === undefined ? base : over;
}

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(schema);
}

function errorsOf(v: unknown): string {
  const validate = validator();
  return validate(v) ? "" : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join("; ");
}

function withOverride(over: object): unknown {
  return coalesce(structuredClone(values), over);
}

describe("values.schema.json", () => {
  test("the default values.yaml validates", () => {
    assert.equal(errorsOf(values), "");
  });

  test("the full example values file, coalesced over the defaults, validates", () => {
    assert.equal(errorsOf(coalesce(values, fullValues)), "");
  });

  test("the full example exercises every top-level section of values.yaml", () => {
    const missing = Object.keys(values).filter((k) => !(k in fullValues) && !["nameOverride"].includes(k));
    assert.deepEqual(missing, []);
  });

  test("an external NATS without a URL is rejected", () => {
    assert.match(errorsOf(withOverride({ nats: { enabled: false } })), /\/natsConnection\/url/);
  });

  test("a coordinator command other than merge or evolve is rejected", () => {
    assert.match(errorsOf(withOverride({ coordinator: { command: "train" } })), /\/coordinator\/command/);
  });

  test("unknown keys, negative replicas, zero concurrency and relative mount paths are rejected", () => {
    assert.match(errorsOf(withOverride({ worker: { replica: 3 } })), /must NOT have additional properties/);
    assert.match(errorsOf(withOverride({ worker: { replicas: -1 } })), /\/worker\/replicas/);
    assert.match(errorsOf(withOverride({ worker: { concurrency: 0 } })), /\/worker\/concurrency/);
    assert.match(errorsOf(withOverride({ modelVolume: { mountPath: "models" } })), /\/modelVolume\/mountPath/);
  });

  test("resource quantities must be Kubernetes quantities", () => {
    assert.equal(errorsOf(withOverride({ worker: { resources: { limits: { memory: "80Gi", "nvidia.com/gpu": 1 } } } })), "");
    assert.match(errorsOf(withOverride({ worker: { resources: { limits: { memory: "lots" } } } })), /\/worker\/resources\/limits\/memory/);
  });

  test("options of the NATS subchart pass through unvalidated", () => {
    assert.equal(errorsOf(withOverride({ nats: { config: { cluster: { enabled: true, replicas: 3 } } } })), "");
  });
});

describe("Chart.yaml", () => {
  const chart = readYaml(join(chartDir, "Chart.yaml"));

  test("is an apiVersion v2 application chart named mergeloom", () => {
    assert.equal(chart.apiVersion, "v2");
    assert.equal(chart.name, "mergeloom");
    assert.equal(chart.type, "application");
  });

  test("depends on the official NATS chart, switched by nats.enabled", () => {
    const deps = chart.dependencies as Array<Record<string, string>>;
    const nats = deps.find((d) => d.name === "nats");
    assert.ok(nats, "no nats dependency");
    assert.equal(nats.repository, "https://nats-io.github.io/k8s/helm/charts/");
    assert.equal(nats.condition, "nats.enabled");
    assert.ok(nats.version, "the NATS chart version range is missing");
  });

  test("the bundled NATS runs JetStream on file storage", () => {
    const js = ((values.nats as Record<string, unknown>).config as Record<string, Record<string, unknown>>).jetstream;
    assert.equal(js.enabled, true);
    assert.equal((js.fileStore as Record<string, unknown>).enabled, true);
  });
});

describe("chart templates (regex-level scan, no helm)", () => {
  const templatesDir = join(chartDir, "templates");
  const files: TemplateFile[] = readdirSync(templatesDir)
    .filter((n) => /\.(ya?ml|tpl|txt)$/.test(n))
    .map((n) => ({ name: relative(root, join(templatesDir, n)), text: readFileSync(join(templatesDir, n), "utf8") }));

  test("every template is present: worker, coordinator, volume, metrics, KEDA, notes", () => {
    const names = files.map((f) => f.name.split("/").pop());
    for (const n of [
      "_helpers.tpl",
      "worker-deployment.yaml",
      "coordinator-job.yaml",
      "coordinator-configmap.yaml",
      "model-pvc.yaml",
      "worker-service.yaml",
      "worker-servicemonitor.yaml",
      "worker-scaledobject.yaml",
      "NOTES.txt",
    ]) {
      assert.ok(names.includes(n), `${n} missing`);
    }
  });

  test("actions are closed, blocks end, .Values paths exist and includes resolve", () => {
    assert.deepEqual(lintTemplates(files, values), []);
  });

  test("the scan catches an unclosed action, a missing end, an unknown value and an unknown include", () => {
    const bad: TemplateFile[] = [
      { name: "a.yaml", text: "x: {{ .Values.image.tag }\n" },
      { name: "b.yaml", text: "{{- if .Values.keda.enabled }}\nkind: ScaledObject\n" },
      { name: "c.yaml", text: "{{- $w := .Values.worker }}\nn: {{ $w.replica }}\nm: {{ .Values.wroker.gpu }}\n" },
      { name: "d.yaml", text: '{{ include "mergeloom.nope" . }}' },
    ];
    const problems = lintTemplates(bad, values).join("\n");
    assert.match(problems, /a\.yaml.*not closed/);
    assert.match(problems, /b\.yaml: 1 block\(s\) not closed/);
    assert.match(problems, /c\.yaml: \.Values\.worker\.replica is not defined/);
    assert.match(problems, /c\.yaml: \.Values\.wroker\.gpu is not defined/);
    assert.match(problems, /d\.yaml: include "mergeloom\.nope"/);
  });

  test("the worker wires /healthz and /readyz probes, the scrape annotation and the GPU request", () => {
    const text = files.find((f) => f.name.endsWith("worker-deployment.yaml"))!.text;
    assert.match(text, /livenessProbe:\s*\n\s*httpGet:\s*\n\s*path: \/healthz/);
    assert.match(text, /readinessProbe:\s*\n\s*httpGet:\s*\n\s*path: \/readyz/);
    assert.match(text, /prometheus\.io\/scrape: "true"/);
    assert.match(text, /"nvidia\.com\/gpu"/);
    assert.match(text, /terminationGracePeriodSeconds: \{\{ \$w\.terminationGracePeriodSeconds \}\}/);
  });
});

describe("worker-side scorers in the chart", () => {
  test("worker.scorers renders to the scorers file mergeloom worker --scorers-file reads", async () => {
    const { parseScorersDocument } = await import("@mergeloom/engine/eval");
    const { stringify } = await import("yaml");
    const scorers = (fullValues.worker as { scorers: Record<string, unknown> }).scorers;
    // the ConfigMap's data is `dict "scorers" .Values.worker.scorers | toYaml`
    const parsed = parseScorersDocument(stringify({ scorers }), "scorers.yaml");
    assert.deepEqual(
      parsed.map((x) => [x.name, x.timeoutMs]),
      [
        ["lm-eval", 3600_000],
        ["gsm8k", 3600_000],
      ],
    );
    const cm = readFileSync(join(chartDir, "templates", "worker-scorers-configmap.yaml"), "utf8");
    assert.match(cm, /dict "scorers" \.Values\.worker\.scorers \| toYaml/);
    const dep = readFileSync(join(chartDir, "templates", "worker-deployment.yaml"), "utf8");
    assert.match(dep, /- --scorers-file\s*\n\s*- \/etc\/mergeloom\/scorers\/scorers\.yaml/);
    assert.match(dep, /emptyDir:\s*\n\s*sizeLimit: \{\{ \$w\.scratch\.sizeLimit \}\}/);
  });

  test("scorer names must be subject tokens and entries need a command", () => {
    assert.match(errorsOf(withOverride({ worker: { scorers: { "a.b": { command: "x" } } } })), /property name/);
    assert.match(errorsOf(withOverride({ worker: { scorers: { ok: { timeout: 3 } } } })), /required property 'command'/);
  });
});

describe("Dockerfile", () => {
  const text = readFileSync(join(root, "deploy", "docker", "Dockerfile"), "utf8");
  const instructions = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .filter((l) => l.trim() && !l.trim().startsWith("#"));
  const froms = instructions.filter((l) => /^FROM\s/i.test(l));

  test("builds on Node 20 in several stages and ends in the runtime stage", () => {
    assert.ok(froms.length >= 3, `only ${froms.length} stages`);
    assert.ok(instructions.some((l) => /^ARG NODE_VERSION=20$/.test(l)));
    assert.ok(froms.some((l) => /node:\$\{NODE_VERSION\}-bookworm-slim/.test(l)));
    assert.match(froms[froms.length - 1], /AS runtime$/);
  });

  test("the last USER is a numeric non-root uid", () => {
    const users = instructions.filter((l) => /^USER\s/.test(l));
    const last = users[users.length - 1];
    assert.ok(last, "no USER instruction: the image would run as root");
    const uid = /^USER\s+(\d+)/.exec(last)?.[1];
    assert.ok(uid, `USER '${last}' is not numeric: Kubernetes runAsNonRoot cannot verify a name`);
    assert.notEqual(Number(uid), 0);
    assert.equal(Number(uid), (values.podSecurityContext as Record<string, number>).runAsUser, "chart runAsUser and image uid differ");
  });

  test("a VARIANT build argument selects the CUDA runtime and onnxruntime-node's CUDA install flag", () => {
    assert.ok(instructions.some((l) => /^ARG VARIANT=cpu$/.test(l)));
    assert.ok(froms.some((l) => /^FROM runtime-\$\{VARIANT\} AS runtime$/.test(l)));
    assert.ok(froms.some((l) => /AS runtime-cuda$/.test(l)) && froms.some((l) => /AS runtime-cpu$/.test(l)));
    assert.match(text, /cuda\) ort=cuda12/);
    assert.match(text, /--onnxruntime-node-install=\$ort/);
  });

  test("the build stage compiles the WebAssembly kernels and the runtime gets them with each package's dist/", () => {
    assert.ok(
      instructions.some((l) => /^RUN .*npm run build:kernels/.test(l)),
      "no RUN npm run build:kernels: the image would lack engine/dist/kernels/kernels.wasm",
    );
    for (const pkg of ["proto", "transport", "engine", "worker", "coordinator"]) {
      assert.ok(
        instructions.some((l) => new RegExp(`^COPY --from=build .*/src/${pkg}/dist ${pkg}/dist$`).test(l)),
        `the runtime stage does not copy ${pkg}/dist/ from the build stage`,
      );
      assert.ok(
        instructions.some((l) => new RegExp(`^COPY .*${pkg}/package\\.json ${pkg}/package\\.json$`).test(l)),
        `the runtime stage lacks ${pkg}/package.json (its exports resolve imports)`,
      );
    }
  });

  test("the entry point is the mergeloom CLI and the metrics port is exposed", () => {
    assert.ok(instructions.includes('ENTRYPOINT ["node", "/app/bin/mergeloom.js"]'));
    assert.ok(instructions.some((l) => l === `EXPOSE ${(values.worker as Record<string, number>).httpPort}`));
  });

  test(".dockerignore keeps node_modules, dist, .git and secrets out of the build context", () => {
    const ignore = readFileSync(join(root, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim());
    for (const p of ["**/node_modules", "**/dist", ".git", "**/*.creds"]) assert.ok(ignore.includes(p), `${p} not ignored`);
    assert.ok(ignore.includes("!test/package.json"), "npm ci needs every workspace's package.json");
  });
});
