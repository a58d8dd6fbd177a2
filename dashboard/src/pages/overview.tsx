// Overview: totals, their course over time, and the top models, projects, teams, sources and customers by cost.
import { api, type Entry, type Stats } from "../api";
import { Bars, Card, ErrorBox, FilterBar, Section, TimeChart, useLoad } from "../components";
import { ms, num, pct, spend } from "../format";
import { apiFilters, DEFAULT_RANGE, navigate } from "../route";
import type { Page, PageProps } from "./types";

const AUTO_BUCKET: Record<string, string> = { "1h": "hour", "24h": "hour", "7d": "hour", "30d": "day", "90d": "day", "365d": "week", all: "month" };
const TOP = ["model", "project", "team", "source", "customer"] as const;
const RANGE_SECS: Record<string, number> = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400, "365d": 365 * 86400 };

// Every bucket of the range, empty ones included, so the charts show gaps as zeros (latency as gaps).
function timeline(bucket: string, range: string, groups: Stats["groups"] & object): { xs: number[]; at: (Entry | undefined)[] } {
  const byTs = new Map(groups.map((g) => [g.ts as number, g]));
  const now = Date.now() / 1000;
  const first = range in RANGE_SECS ? now - RANGE_SECS[range] : groups.length ? (groups[0].ts as number) : now;
  const xs: number[] = [];
  const start = new Date(first * 1000);
  let t: number;
  if (bucket === "month") t = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), 1) / 1000;
  else if (bucket === "week") { const day = Math.floor(first / 86400); t = (day - ((day + 3) % 7)) * 86400; }
  else { const step = bucket === "hour" ? 3600 : 86400; t = Math.floor(first / step) * step; }
  while (t <= now && xs.length < 2000) {
    xs.push(t);
    if (bucket === "month") { const d = new Date(t * 1000); t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000; }
    else t += bucket === "week" ? 7 * 86400 : bucket === "day" ? 86400 : 3600;
  }
  return { xs, at: xs.map((x) => byTs.get(x)) };
}

function View({ route }: PageProps) {
  const p = route.params;
  const filters = apiFilters(p);
  const bucket = p.bucket || AUTO_BUCKET[p.range || DEFAULT_RANGE] || "day";
  const key = JSON.stringify([filters, bucket]);
  const loaded = useLoad(async () => {
    const [series, ...tops] = await Promise.all([
      api.get<Stats>("/v1/stats", { ...filters, group_by: bucket }),
      // the top lists show spend and requests: their percentiles are left out (cheaper on a large store)
      ...TOP.map((g) => api.get<Stats>("/v1/stats", { ...filters, group_by: g, percentiles: "false" })),
    ]);
    return { series, tops };
  }, [key]);
  const d = loaded.data;
  const t: Entry | undefined = d?.series.totals;
  const { xs, at } = timeline(bucket, p.range || DEFAULT_RANGE, d?.series.groups ?? []);
  return (
    <div>
      <FilterBar route={route} />
      <ErrorBox error={loaded.error} />
      {t && (
        <div class="cards" data-testid="overview-cards">
          <Card testid="card-requests" label="Requests" value={num(t.requests)} />
          <Card testid="card-spend" label="Spend" value={spend(t)} />
          <Card testid="card-tokens" label="Tokens" value={num(t.total_tokens)}
            hint={`${num(t.input_tokens)} in · ${num(t.output_tokens)} out`} />
          <Card testid="card-errors" label="Error rate" value={pct(t.errors, t.requests)} hint={`${num(t.errors)} errors`} />
          <Card testid="card-latency" label="Latency p50 / p95" value={`${ms(t.latency_ms_p50)} / ${ms(t.latency_ms_p95)}`} />
          <Card testid="card-ttft" label="Time to first token p50 / p95" value={`${ms(t.ttft_ms_p50)} / ${ms(t.ttft_ms_p95)}`} />
        </div>
      )}
      {d && (
        <>
          <Section title="Over time" aside={
            <select data-testid="bucket" value={bucket} onChange={(e) => navigate("overview", { ...p, bucket: (e.target as HTMLSelectElement).value })}>
              {["hour", "day", "week", "month"].map((b) => <option value={b}>per {b}</option>)}
            </select>}>
            <div class="charts">
              <TimeChart testid="chart-requests" xs={xs} series={[
                { label: "requests", values: at.map((g) => g?.requests ?? 0), color: "#3b6fd8" },
                { label: "errors", values: at.map((g) => g?.errors ?? 0), color: "#d8503b" }]} />
              <TimeChart testid="chart-spend" xs={xs} unit="" series={[
                { label: "spend (USD)", values: at.map((g) => (g ? Number(g.cost_usd) : 0)), color: "#2f9e6e" }]} />
              <TimeChart testid="chart-latency" xs={xs} unit=" ms" series={[
                { label: "latency p50", values: at.map((g) => g?.latency_ms_p50 ?? null), color: "#8a5bd6" },
                { label: "latency p95", values: at.map((g) => g?.latency_ms_p95 ?? null), color: "#c58a1a" },
                { label: "TTFT p50", values: at.map((g) => g?.ttft_ms_p50 ?? null), color: "#1a9bc5" }]} />
            </div>
          </Section>
          <div class="grid2">
            {TOP.map((g, i) => (
              <Section title={`Top ${g}s by cost`}>
                <Bars testid={`top-${g}`} items={(d.tops[i].groups ?? []).slice(0, 8).map((e) => ({
                  name: e[g] === null ? "(none)" : String(e[g]),
                  value: Number(e.cost_usd) || 0,
                  text: `${spend(e)} · ${num(e.requests)} req`,
                }))} />
              </Section>
            ))}
          </div>
        </>
      )}
    </div>
  );
}

export const overview: Page = { id: "overview", title: "Overview", view: View };
