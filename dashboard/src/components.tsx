// Small building blocks shared by the pages: data loading, the filter bar, cards, tables, bars, charts.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, type Stats } from "./api";
import { label } from "./format";
import { DEFAULT_RANGE, FILTERS, navigate, RANGES, type Route } from "./route";

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

// Runs `load` whenever `deps` change (and every `pollMs`, if given); keeps the last data while reloading.
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], pollMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: string | null; loading: boolean }>({
    data: null, error: null, loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (e) => live && setState((s) => ({ data: s.data, error: String(e.message ?? e), loading: false })),
    );
    return () => { live = false; };
  }, [...deps, tick]);
  useEffect(() => {
    if (!pollMs) return;
    const t = setInterval(() => setTick((n) => n + 1), pollMs);
    return () => clearInterval(t);
  }, [pollMs]);
  return { ...state, reload: () => setTick((n) => n + 1) };
}

export function ErrorBox({ error }: { error: string | null }) {
  return error ? <div class="error" data-testid="error">{error}</div> : null;
}

export function Section({ title, children, aside }: { title: string; children: ComponentChildren; aside?: ComponentChildren }) {
  return (
    <section class="panel">
      <header><h2>{title}</h2>{aside}</header>
      {children}
    </section>
  );
}

export function Card({ label: l, value, hint, testid }: { label: string; value: string; hint?: string; testid: string }) {
  return (
    <div class="card" data-testid={testid}>
      <div class="card-label">{l}</div>
      <div class="card-value" data-testid={testid + "-value"}>{value}</div>
      {hint && <div class="card-hint">{hint}</div>}
    </div>
  );
}

export interface Column<T> {
  title: string;
  cell: (row: T) => ComponentChildren;
  num?: boolean;
  key?: string;
}

export function Table<T>({ columns, rows, onRow, testid, empty = "Nothing here yet." }: {
  columns: Column<T>[]; rows: T[]; onRow?: (row: T) => void; testid: string; empty?: string;
}) {
  if (!rows.length) return <p class="empty" data-testid={testid + "-empty"}>{empty}</p>;
  return (
    <div class="table-wrap">
      <table data-testid={testid}>
        <thead><tr>{columns.map((c) => <th class={c.num ? "num" : ""}>{c.title}</th>)}</tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr class={onRow ? "clickable" : ""} onClick={onRow ? () => onRow(r) : undefined}>
              {columns.map((c) => <td class={c.num ? "num" : ""} data-col={c.key ?? c.title}>{c.cell(r)}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// Horizontal bars, longest first: for "top N by cost" lists.
export function Bars({ items, testid }: { items: { name: string; value: number; text: string }[]; testid: string }) {
  const max = Math.max(1e-12, ...items.map((i) => i.value));
  if (!items.length) return <p class="empty">No data in this range.</p>;
  return (
    <ul class="bars" data-testid={testid}>
      {items.map((i) => (
        <li>
          <span class="bar-name" title={i.name}>{i.name}</span>
          <span class="bar-track"><span class="bar" style={{ width: `${(100 * i.value) / max}%` }} /></span>
          <span class="bar-text">{i.text}</span>
        </li>
      ))}
    </ul>
  );
}

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
}

// A time series chart (uPlot). `xs` are unix seconds.
export function TimeChart({ xs, series, height = 180, testid, unit = "" }: {
  xs: number[]; series: Series[]; height?: number; testid: string; unit?: string;
}) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const width = el.current.clientWidth || 600;
    const plot = new uPlot({
      width, height,
      scales: { x: { time: true } },
      axes: [{ stroke: "#667" }, { stroke: "#667", size: 60, values: (_u, vals) => vals.map((v) => `${v}${unit}`) }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.color + "22", spanGaps: false }))],
      legend: { show: true },
    }, [xs, ...series.map((s) => s.values)] as uPlot.AlignedData, el.current);
    const ro = new ResizeObserver(() => plot.setSize({ width: el.current?.clientWidth || width, height }));
    ro.observe(el.current);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [JSON.stringify(xs), JSON.stringify(series)]);
  return <div class="chart" ref={el} data-testid={testid} />;
}

// Known values for the filter inputs (from /v1/stats grouped by each dimension, last 90 days).
function useChoices(): Record<string, string[]> {
  const loaded = useLoad(async () => {
    const dims: [string, string][] = [["project", "project"], ["team", "team"], ["source", "source"], ["customer", "customer"],
      ["key_id", "key"], ["model", "model"], ["provider", "provider"]];
    const out: Record<string, string[]> = {};
    await Promise.all(dims.map(async ([field, group]) => {
      const s = await api.get<Stats>("/v1/stats", { group_by: group, since: "90d" });
      out[field] = (s.groups ?? []).map((g) => g[group] as string | null).filter((v): v is string => !!v);
    }));
    return out;
  }, []);
  return loaded.data ?? {};
}

const FILTER_LABELS: Record<string, string> = {
  project: "Project", team: "Team", source: "Source", customer: "Customer", key_id: "Key", model: "Model", provider: "Provider",
  status: "Status", deployment: "Deployment",
};

export function FilterBar({ route, fields = FILTERS, time = true }: { route: Route; fields?: readonly string[]; time?: boolean }) {
  const choices = useChoices();
  const p = route.params;
  const set = (k: string, v: string) => navigate(route.page, { ...p, [k]: v || undefined, cursor: undefined });
  return (
    <form class="filters" data-testid="filters" onSubmit={(e) => e.preventDefault()}>
      {time && (
        <label>Time
          <select name="range" data-testid="filter-range" value={p.range || DEFAULT_RANGE}
            onChange={(e) => set("range", (e.target as HTMLSelectElement).value)}>
            {RANGES.map(([v, t]) => <option value={v}>{t}</option>)}
          </select>
        </label>
      )}
      {fields.map((f) => (
        <label>{FILTER_LABELS[f] ?? f}
          {f === "status" ? (
            <select name="status" data-testid="filter-status" value={p.status || ""}
              onChange={(e) => set("status", (e.target as HTMLSelectElement).value)}>
              <option value="">any</option><option value="ok">ok</option><option value="error">error</option>
              {["400", "401", "403", "404", "429", "500", "502", "503", "504"].map((c) => <option value={c}>{c}</option>)}
            </select>
          ) : (
            <>
              <input name={f} data-testid={"filter-" + f} list={"choices-" + f} value={p[f] || ""} placeholder="any"
                onChange={(e) => set(f, (e.target as HTMLInputElement).value.trim())} />
              <datalist id={"choices-" + f}>{(choices[f] ?? []).map((v) => <option value={v}>{label(v)}</option>)}</datalist>
            </>
          )}
        </label>
      ))}
      {Object.keys(p).some((k) => k !== "range" && p[k]) && (
        <button type="button" class="link" data-testid="filter-clear" onClick={() => navigate(route.page, { range: p.range })}>clear filters</button>
      )}
    </form>
  );
}
