/**
 * Hub benchmarks against the test Hub server on 127.0.0.1 (test/harness/hub-server.ts), each
 * reported against a baseline measured in the same run:
 *
 * 1. Merge throughput (TIES, density 0.5) of three synthetic bf16 checkpoints served by the Hub
 *    (empty HF cache: every tensor byte is a range read through the 302 to the storage host) vs
 *    the same checkpoints as local files. Input GB/s = input bytes / merge seconds.
 * 2. Bytes read per worker in a 2-worker distributed merge over NATS (workers with an empty HF
 *    cache and no shared file system; outputs via the object store), from the per-task network
 *    byte counts, against the plan's bytes to read.
 * 3. `mergeloom plan` wall time for a TIES merge of three llama-70b-sized remote repositories
 *    (real safetensors headers over sparse 140 GB files, 30 shards each), vs the same plan from
 *    local directories.
 *
 *   node bench/dist/hub-throughput.js [--size-gb 1] [--repeat 3] [--threads N] [--skip-distributed] [--serve-from memory|disk]
 *                                     [--server-cpus LIST --merge-cpus LIST] [--latency-ms MS]
 *
 * The test Hub runs in a child process of its own (start-hub-process.ts), as a real Hub is another
 * machine. `--server-cpus` / `--merge-cpus` (taskset CPU lists, e.g. 1 and 0) pin this process and
 * the test Hub's — and the merges of part 1 (both local and Hub) to separate CPUs: a real Hub's CDN
 * is another machine, and on a small machine the stand-in server otherwise takes its CPU from the
 * merge it serves.
 *
 * `--latency-ms` makes the test Hub answer every request that many ms late, as across a WAN to the
 * Hub's CDN: the Hub runs then show what the read-ahead hides of the round trips.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, ftruncateSync, symlinkSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { buildSafetensorsHeader } from "@mergeloom/engine/tensor";
import { openSyntheticCheckpoint } from "@mergeloom/engine/storage";
import { startNatsServer } from "@mergeloom/test/harness";
import { makeSyntheticCheckpoints, parseFlag, repoRoot } from "./make-synthetic-checkpoints.js";
import { startHubProcess } from "./start-hub-process.js";
import { configureHub, hubSettingsFromEnv } from "@mergeloom/engine/storage";
import { loadConfig, planMerge } from "@mergeloom/engine/job";

const ROOT = repoRoot();
const CLI = join(ROOT, "bin", "mergeloom.js");

interface Run {
  code: number | null;
  out: string;
  err: string;
  seconds: number;
}

function cli(args: string[], env: NodeJS.ProcessEnv, cpus?: string): Promise<Run> {
  const t0 = performance.now();
  const [cmd, argv]: [string, string[]] = cpus ? ["taskset", ["-c", cpus, process.execPath, CLI, ...args]] : [process.execPath, [CLI, ...args]];
  return new Promise((res, rej) => {
    const c = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    c.on("error", rej);
    c.on("close", (code) => res({ code, out, err, seconds: (performance.now() - t0) / 1000 }));
  });
}

function events(out: string): Array<Record<string, unknown>> {
  return out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function must(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} failed: ${r.err.trim().split("\n").at(-1)}`);
  return r;
}

const tiesYaml = (m: string[]) =>
  `merge_method: ties\nbase_model: ${JSON.stringify(m[0])}\nmodels:\n  - model: ${JSON.stringify(m[1])}\n    parameters: { weight: 1.0, density: 0.5 }\n  - model: ${JSON.stringify(m[2])}\n    parameters: { weight: 1.0, density: 0.5 }\ndtype: bfloat16\nout_dtype: bfloat16\n`;

/**
 * A VM that hands freed guest pages back to its host at once (free page reporting with no delay)
 * makes the first touch of such a page a host fault, ~2.5 s per GB on the 2-core machine: it then
 * charges whichever run allocates more fresh memory (the Hub run's block and socket buffers) and
 * shows up as slow output writes. Printed so that numbers from such a machine are read as such.
 */
function pageReportingNote(): string[] {
  try {
    const ms = readFileSync("/sys/module/page_reporting/parameters/min_free_ms", "utf8").trim();
    return ms === "0" ? ["note: this VM returns freed pages to its host at once (page_reporting min_free_ms 0): see the README's Hub benchmark notes"] : [];
  } catch {
    return [];
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Three 70B-shaped checkpoints' worth of headers: one sparse set of 30 shards, served as three repos. */
function writeSparse70b(dir: string): string {
  const ck = openSyntheticCheckpoint("synthetic://llama-70b?seed=0");
  const tensors = [...ck.tensors.values()];
  const per = Math.ceil(tensors.length / 30);
  const weightMap: Record<string, string> = {};
  let total = 0;
  mkdirSync(dir, { recursive: true });
  for (let s = 0; s < 30; s++) {
    const part = tensors.slice(s * per, (s + 1) * per);
    const name = `model-${String(s + 1).padStart(5, "0")}-of-00030.safetensors`;
    const { bytes, dataBytes } = buildSafetensorsHeader(part.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
    const fd = openSync(join(dir, name), "w");
    writeSync(fd, bytes);
    ftruncateSync(fd, bytes.length + dataBytes); // sparse: no disk blocks for the tensor data
    closeSync(fd);
    for (const t of part) weightMap[t.name] = name;
    total += dataBytes;
  }
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({ architectures: ["LlamaForCausalLM"], model_type: "llama", num_hidden_layers: 80, hidden_size: 8192 }),
  );
  return dir;
}

/** Pins every thread of this process (the test Hub's) to `cpus`; its later threads inherit it. */
function pinSelf(cpus: string): void {
  const r = spawnSync("taskset", ["-a", "-p", "-c", cpus, String(process.pid)], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new Error(
      `--server-cpus ${cpus}: taskset failed (${r.error?.message ?? r.stderr.trim()}); install util-linux or leave out --server-cpus/--merge-cpus`,
    );
  }
}

async function main(argv: string[]): Promise<void> {
  const sizeGb = Number(parseFlag(argv, "--size-gb") ?? "1");
  const repeat = Number(parseFlag(argv, "--repeat") ?? "3");
  const threads = parseFlag(argv, "--threads") ?? String(availableParallelism());
  const serverCpus = parseFlag(argv, "--server-cpus");
  const mergeCpus = parseFlag(argv, "--merge-cpus");
  if (!serverCpus !== !mergeCpus) throw new Error("--server-cpus and --merge-cpus go together (e.g. --server-cpus 1 --merge-cpus 0)");
  if (serverCpus) pinSelf(serverCpus);
  const work = mkdtempSync(join(tmpdir(), "mergeloom-hubbench-"));
  // Bodies from memory by default (a CDN edge's hot objects): the stand-in server shares the 2 cores with the merge it serves.
  const fromDisk = parseFlag(argv, "--serve-from") === "disk";
  const latencyMs = Number(parseFlag(argv, "--latency-ms") ?? "0");
  if (!(latencyMs >= 0)) throw new Error(`--latency-ms ${parseFlag(argv, "--latency-ms")}: give a number of milliseconds, e.g. 20`);
  const hub = await startHubProcess({ serveFromMemory: !fromDisk, latencyMs });
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(work, "empty-cache"), HF_TOKEN: "" };
  const lines: string[] = [];
  try {
    // 1. Throughput, Hub vs local, alternating runs.
    const set = makeSyntheticCheckpoints({ sizeGb, models: 3, dir: join(ROOT, ".bench") });
    const repos = await Promise.all(set.paths.map(async (p, i) => (await hub.addCommit(`bench/model-${i}`, p, { unhashed: true }), `bench/model-${i}`)));
    const localCfg = join(work, "local.yml");
    const hubCfg = join(work, "hub.yml");
    writeFileSync(localCfg, tiesYaml(set.paths));
    writeFileSync(hubCfg, tiesYaml(repos));
    const rate: Record<"local" | "hub", number[]> = { local: [], hub: [] };
    let inputBytes = 0;
    for (let i = 0; i < repeat; i++) {
      for (const [kind, cfg] of [
        ["local", localCfg],
        ["hub", hubCfg],
      ] as const) {
        const out = join(work, `out-${kind}`);
        rmSync(out, { recursive: true, force: true });
        // A fresh range cache per run: the Hub run's first pass over every tensor crosses the network.
        const r = must(
          await cli(
            ["merge", cfg, "-o", out, "--threads", threads, "--json"],
            { ...env, MERGELOOM_RANGE_CACHE_DIR: join(work, `ranges-${kind}-${i}`) },
            mergeCpus,
          ),
          `${kind} merge`,
        );
        const done = events(r.out).find((e) => e.type === "done")!;
        inputBytes = Number(done.bytesRead);
        rate[kind].push(inputBytes / 1e9 / Number(done.seconds));
      }
    }
    const ratio = median(rate.hub) / median(rate.local);
    lines.push(
      `## merge throughput, TIES, 3 × ${(set.bytesPerModel / 1e9).toFixed(2)} GB bf16, --threads ${threads}, ${repeat} runs each` +
        (serverCpus ? ` (test Hub pinned to CPUs ${serverCpus}, merges to CPUs ${mergeCpus})` : "") +
        (latencyMs ? `, test Hub answering ${latencyMs} ms late` : ""),
      "| source | input GB/s best | median |",
      "|---|---:|---:|",
      `| local files (baseline) | ${Math.max(...rate.local).toFixed(2)} | ${median(rate.local).toFixed(2)} |`,
      `| test Hub (bodies from ${fromDisk ? "disk" : "memory"}), empty cache | ${Math.max(...rate.hub).toFixed(2)} | ${median(rate.hub).toFixed(2)} |`,
      `Hub / local (median): ${ratio.toFixed(2)}×`,
      ...pageReportingNote(),
      "",
    );
    process.stdout.write(lines.join("\n") + "\n");

    // 2. Bytes per worker, 2 workers over NATS.
    if (!argv.includes("--skip-distributed")) {
      const nats = await startNatsServer({ jetstream: true });
      const prefix = `hubbench${process.pid}`;
      const jail = mkdtempSync(join(tmpdir(), "mergeloom-nofs-"));
      const workers = [1, 2].map((i) =>
        spawn(
          process.execPath,
          [
            CLI,
            "worker",
            "--nats",
            nats.url,
            "--nats-prefix",
            prefix,
            "--name",
            `w${i}`,
            "--threads",
            "1",
            "--concurrency",
            "1",
            "--http-port",
            "0",
            "--storage-root",
            jail,
            "--cache-dir",
            join(work, `ranges-w${i}`),
          ],
          { env: { ...process.env, ...env }, stdio: "ignore" },
        ),
      );
      try {
        const plan = JSON.parse(must(await cli(["plan", hubCfg, "--json"], env), "plan").out) as { bytesToRead: number };
        const out = join(work, "out-dist");
        const r = must(
          await cli(["merge", hubCfg, "-o", out, "--nats", nats.url, "--nats-prefix", prefix, "--output-via", "object", "--json"], env),
          "distributed merge",
        );
        const per = new Map<string, number>();
        let prev = 0;
        for (const e of events(r.out).filter((x) => x.type === "task")) {
          const n = Number(e.networkBytes ?? prev);
          per.set(String(e.worker), (per.get(String(e.worker)) ?? 0) + n - prev);
          prev = n;
        }
        const sum = [...per.values()].reduce((a, b) => a + b, 0);
        const dl = [
          `## bytes read per worker, 2-worker distributed TIES over NATS (empty HF cache, no shared file system)`,
          "| worker | network bytes | share |",
          "|---|---:|---:|",
          ...[...per].sort().map(([w, n]) => `| ${w} | ${(n / 1e9).toFixed(3)} GB | ${((100 * n) / sum).toFixed(1)} % |`),
          `sum ${(sum / 1e9).toFixed(3)} GB vs plan bytes to read ${(plan.bytesToRead / 1e9).toFixed(3)} GB: ${(sum / plan.bytesToRead).toFixed(3)}× one pass; merge ${r.seconds.toFixed(1)} s wall`,
          "",
        ];
        lines.push(...dl);
        process.stdout.write(dl.join("\n") + "\n");
      } finally {
        for (const w of workers) w.kill("SIGTERM");
        await nats.stop();
        rmSync(jail, { recursive: true, force: true });
      }
    }

    // 3. Plan wall time for 70B-sized remote repos.
    const sparse = join(ROOT, ".bench", "sparse-llama-70b");
    if (!existsSync(join(sparse, "model.safetensors.index.json"))) writeSparse70b(sparse);
    const big = await Promise.all(
      [0, 1, 2].map(async (i) => (await hub.addCommit(`bench/llama-70b-${i}`, sparse, { unhashed: true }), `bench/llama-70b-${i}`)),
    );
    const bigHub = join(work, "big-hub.yml");
    const bigLocal = join(work, "big-local.yml");
    writeFileSync(bigHub, tiesYaml(big));
    const links = [0, 1, 2].map((i) => join(work, `llama-70b-${i}`));
    for (const l of links) symlinkSync(sparse, l);
    writeFileSync(bigLocal, tiesYaml(links));
    const t: Record<"local" | "hub" | "localIn" | "hubIn", number[]> = { local: [], hub: [], localIn: [], hubIn: [] };
    let tensorBytes = 0;
    configureHub({ ...hubSettingsFromEnv({ ...process.env, ...env }), rangeCacheBytes: 0 });
    const timed = async (cfg: string) => {
      const t0 = performance.now();
      await planMerge(await loadConfig(cfg));
      return (performance.now() - t0) / 1000;
    };
    for (let i = 0; i < repeat; i++) {
      t.local.push(must(await cli(["plan", bigLocal], env), "local 70b plan").seconds);
      await hub.resetCounters();
      t.hub.push(must(await cli(["plan", bigHub], env), "hub 70b plan").seconds);
      tensorBytes += (await hub.counters()).tensorBytesServed;
      t.localIn.push(await timed(bigLocal));
      t.hubIn.push(await timed(bigHub));
    }
    const pl = [
      `## mergeloom plan, TIES over three llama-70b-sized repos (3 × 141 GB, 30 shards each), ${repeat} runs`,
      "| source | wall s best | median |",
      "|---|---:|---:|",
      `| local directories (baseline), CLI process | ${Math.min(...t.local).toFixed(2)} | ${median(t.local).toFixed(2)} |`,
      `| test Hub, CLI process | ${Math.min(...t.hub).toFixed(2)} | ${median(t.hub).toFixed(2)} |`,
      `| local directories, planning only (in process) | ${Math.min(...t.localIn).toFixed(2)} | ${median(t.localIn).toFixed(2)} |`,
      `| test Hub, planning only (in process) | ${Math.min(...t.hubIn).toFixed(2)} | ${median(t.hubIn).toFixed(2)} |`,
      `Hub / local (CLI, median): ${(median(t.hub) / median(t.local)).toFixed(2)}×`,
      `tensor bytes served during the Hub plans: ${tensorBytes}`,
      "",
    ];
    lines.push(...pl);
    process.stdout.write(pl.join("\n") + "\n");
    mkdirSync(join(ROOT, ".bench"), { recursive: true });
    writeFileSync(join(ROOT, ".bench", "hub-throughput.md"), lines.join("\n") + "\n");
  } finally {
    await hub.close();
    rmSync(work, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
