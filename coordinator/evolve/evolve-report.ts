/** The search report: fitness per generation as an SVG line chart and a markdown table. */

export interface GenerationStats {
  generation: number;
  evaluations: number;
  min: number;
  median: number;
  max: number;
  best: number;
  /** Validation score of the best-so-far candidate (when the search has a validation split). */
  validation?: number;
}

export interface ValidationSummary {
  every: "best" | "all";
  /** Candidates scored on the validation split. */
  scored: number;
  /** Spearman rank correlation of fitness and validation over those candidates (every: all). */
  spearman?: number;
  /** The candidate validation would have picked — reported, never used. */
  validationSelected?: { id: string; fitness: number; validation: number };
}

/** Average ranks (1-based; ties share their mean rank). */
function ranks(v: readonly number[]): number[] {
  const idx = v.map((_, i) => i).sort((a, b) => v[a] - v[b]);
  const r = new Array<number>(v.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

export function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

/** Spearman's ρ: Pearson's r of the average ranks. */
export function spearman(a: readonly number[], b: readonly number[]): number {
  return pearson(ranks(a), ranks(b));
}

/** min / median / max of the finite values (NaN = failed candidates are left out). */
export function summarize(values: readonly number[]): { min: number; median: number; max: number } {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return { min: NaN, median: NaN, max: NaN };
  const mid = v.length >> 1;
  return { min: v[0], median: v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2, max: v[v.length - 1] };
}

/** A plain polyline chart: one line per series (min, median, max, best so far) over generations. */
export function renderFitnessSvg(stats: readonly GenerationStats[], baselines: readonly { name: string; fitness: number }[] = []): string {
  const W = 640;
  const H = 360;
  const L = 60;
  const R = 150;
  const T = 20;
  const B = 40;
  const series: [keyof GenerationStats, string][] = [
    ["min", "#d62728"],
    ["median", "#1f77b4"],
    ["max", "#2ca02c"],
    ["best", "#000000"],
    ...(stats.some((s) => s.validation !== undefined) ? [["validation", "#ff7f0e"] as [keyof GenerationStats, string]] : []),
  ];
  const ys = stats
    .flatMap((s) => [s.min, s.max, s.best, s.validation ?? NaN])
    .concat(baselines.map((b) => b.fitness))
    .filter(Number.isFinite);
  let lo = ys.length ? Math.min(...ys) : 0;
  let hi = ys.length ? Math.max(...ys) : 1;
  if (hi === lo) {
    hi += 0.5;
    lo -= 0.5;
  }
  const g0 = stats.length ? stats[0].generation : 0;
  const g1 = stats.length > 1 ? stats[stats.length - 1].generation : g0 + 1;
  const x = (g: number) => L + ((g - g0) / (g1 - g0)) * (W - L - R);
  const y = (v: number) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#444"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#444"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">generation</text>`,
    `<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">fitness (higher is better)</text>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    out.push(`<text x="${L - 4}" y="${f(y(v) + 4)}" text-anchor="end">${v.toFixed(3)}</text>`);
    out.push(`<line x1="${L}" y1="${f(y(v))}" x2="${W - R}" y2="${f(y(v))}" stroke="#eee"/>`);
  }
  out.push(`<text x="${L}" y="${H - B + 14}" text-anchor="middle">${g0}</text>`, `<text x="${W - R}" y="${H - B + 14}" text-anchor="middle">${g1}</text>`);
  series.forEach(([key, color], i) => {
    const pts = stats.filter((s) => Number.isFinite(s[key])).map((s) => `${f(x(s.generation))},${f(y(s[key]!))}`);
    if (pts.length) out.push(`<polyline fill="none" stroke="${color}" stroke-width="${key === "best" ? 2 : 1.5}" points="${pts.join(" ")}"/>`);
    out.push(`<line x1="${W - R + 10}" y1="${T + 10 + i * 16}" x2="${W - R + 30}" y2="${T + 10 + i * 16}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${W - R + 34}" y="${T + 14 + i * 16}">${key === "best" ? "best so far" : key === "validation" ? "best's validation" : key}</text>`);
  });
  baselines.forEach((b, i) => {
    if (!Number.isFinite(b.fitness)) return;
    out.push(`<line x1="${L}" y1="${f(y(b.fitness))}" x2="${W - R}" y2="${f(y(b.fitness))}" stroke="#999" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${W - R + 10}" y="${T + 14 + (series.length + i) * 16}" fill="#666">- - ${escapeXml(b.name)} ${b.fitness.toFixed(3)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export interface ReportInput {
  title: string;
  stats: readonly GenerationStats[];
  best: { id: string; fitness: number; scores: Record<string, number>; validation?: number } | null;
  baselines: readonly { name: string; fitness: number; scores: Record<string, number>; validation?: number }[];
  validation?: ValidationSummary;
  front?: readonly { id: string; scores: Record<string, number> }[];
  taskNames: readonly string[];
  evaluations: number;
  seconds: number;
  stopReason: string;
}

export function renderReportMarkdown(r: ReportInput): string {
  const n = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : "—");
  const lines = [
    `# ${r.title}`,
    "",
    `${r.evaluations} evaluations in ${r.seconds.toFixed(1)} s (${r.seconds > 0 ? (r.evaluations / r.seconds).toFixed(2) : "—"} per second); stopped: ${r.stopReason}.`,
    "",
    "![fitness per generation](fitness.svg)",
    "",
  ];
  const v = r.validation;
  if (r.best) {
    lines.push(
      `## Best: ${r.best.id} (best.yml, chosen by fitness)`,
      "",
      `| fitness | ${r.taskNames.join(" | ")} |${v ? " validation | gap (fitness − validation) |" : ""}`,
      `|---:|${r.taskNames.map(() => "---:").join("|")}|${v ? "---:|---:|" : ""}`,
    );
    const gap = r.best.validation !== undefined ? r.best.fitness - r.best.validation : NaN;
    lines.push(
      `| ${n(r.best.fitness)} | ${r.taskNames.map((t) => n(r.best!.scores[t])).join(" | ")} |${v ? ` ${n(r.best.validation ?? NaN)} | ${n(gap)} |` : ""}`,
      "",
    );
  }
  if (v) {
    lines.push("## Validation split (never used to select)", "", `${v.scored} candidates scored on the validation split (every: ${v.every}).`);
    if (v.spearman !== undefined) lines.push(`Spearman rank correlation of fitness and validation over them: ${n(v.spearman)}.`);
    if (v.validationSelected) {
      const s = v.validationSelected;
      lines.push(`Validation would have picked ${s.id} (fitness ${n(s.fitness)}, validation ${n(s.validation)}); the search keeps the fitness-selected best.`);
    }
    lines.push("");
  }
  if (r.baselines.length) {
    lines.push(
      "## Baselines (scored the same way)",
      "",
      `| config | fitness | ${r.taskNames.join(" | ")} |${v ? " validation |" : ""}`,
      `|---|---:|${r.taskNames.map(() => "---:").join("|")}|${v ? "---:|" : ""}`,
    );
    for (const b of r.baselines)
      lines.push(`| ${b.name} | ${n(b.fitness)} | ${r.taskNames.map((t) => n(b.scores[t])).join(" | ")} |${v ? ` ${n(b.validation ?? NaN)} |` : ""}`);
    lines.push("");
  }
  lines.push(
    "## Fitness per generation",
    "",
    `| generation | evaluations | min | median | max | best so far |${v ? " best's validation |" : ""}`,
    `|---:|---:|---:|---:|---:|---:|${v ? "---:|" : ""}`,
  );
  for (const s of r.stats)
    lines.push(`| ${s.generation} | ${s.evaluations} | ${n(s.min)} | ${n(s.median)} | ${n(s.max)} | ${n(s.best)} |${v ? ` ${n(s.validation ?? NaN)} |` : ""}`);
  lines.push("");
  if (r.front) {
    lines.push(
      `## Pareto front over the tasks (${r.front.length} candidates; front.json)`,
      "",
      `| candidate | ${r.taskNames.join(" | ")} |`,
      `|---|${r.taskNames.map(() => "---:").join("|")}|`,
    );
    for (const p of r.front) lines.push(`| ${p.id} | ${r.taskNames.map((t) => n(p.scores[t])).join(" | ")} |`);
    lines.push("");
  }
  return lines.join("\n");
}
