/** The search report: fitness per generation as an SVG line chart and a markdown table. */

export interface GenerationStats {
  generation: number;
  evaluations: number;
  min: number;
  median: number;
  max: number;
  best: number;
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
  ];
  const ys = stats.flatMap((s) => [s.min, s.max, s.best]).concat(baselines.map((b) => b.fitness)).filter(Number.isFinite);
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
    const pts = stats.filter((s) => Number.isFinite(s[key])).map((s) => `${f(x(s.generation))},${f(y(s[key]))}`);
    if (pts.length) out.push(`<polyline fill="none" stroke="${color}" stroke-width="${key === "best" ? 2 : 1.5}" points="${pts.join(" ")}"/>`);
    out.push(`<line x1="${W - R + 10}" y1="${T + 10 + i * 16}" x2="${W - R + 30}" y2="${T + 10 + i * 16}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${W - R + 34}" y="${T + 14 + i * 16}">${key === "best" ? "best so far" : key}</text>`);
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
  best: { id: string; fitness: number; scores: Record<string, number> } | null;
  baselines: readonly { name: string; fitness: number; scores: Record<string, number> }[];
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
  if (r.best) {
    lines.push(`## Best: ${r.best.id} (best.yml)`, "", `| fitness | ${r.taskNames.join(" | ")} |`, `|---:|${r.taskNames.map(() => "---:").join("|")}|`);
    lines.push(`| ${n(r.best.fitness)} | ${r.taskNames.map((t) => n(r.best!.scores[t])).join(" | ")} |`, "");
  }
  if (r.baselines.length) {
    lines.push("## Baselines (scored the same way)", "", `| config | fitness | ${r.taskNames.join(" | ")} |`, `|---|---:|${r.taskNames.map(() => "---:").join("|")}|`);
    for (const b of r.baselines) lines.push(`| ${b.name} | ${n(b.fitness)} | ${r.taskNames.map((t) => n(b.scores[t])).join(" | ")} |`);
    lines.push("");
  }
  lines.push("## Fitness per generation", "", "| generation | evaluations | min | median | max | best so far |", "|---:|---:|---:|---:|---:|---:|");
  for (const s of r.stats) lines.push(`| ${s.generation} | ${s.evaluations} | ${n(s.min)} | ${n(s.median)} | ${n(s.max)} | ${n(s.best)} |`);
  lines.push("");
  if (r.front) {
    lines.push(`## Pareto front over the tasks (${r.front.length} candidates; front.json)`, "", `| candidate | ${r.taskNames.join(" | ")} |`, `|---|${r.taskNames.map(() => "---:").join("|")}|`);
    for (const p of r.front) lines.push(`| ${p.id} | ${r.taskNames.map((t) => n(p.scores[t])).join(" | ")} |`);
    lines.push("");
  }
  return lines.join("\n");
}
