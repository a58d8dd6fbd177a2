// The address of a view: `#/<page>?<filters>`. Filters live in the URL, so they survive a reload,
// can be shared, and carry over between pages.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  page: string;
  params: Record<string, string>;
}

export function parseHash(hash = location.hash): Route {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  return { page: path || "overview", params: Object.fromEntries(new URLSearchParams(query)) };
}

export function href(page: string, params: Record<string, string | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
  const q = p.toString();
  return `#/${page}${q ? "?" + q : ""}`;
}

export function navigate(page: string, params: Record<string, string | undefined>): void {
  location.hash = href(page, params);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

// Filters every page understands, and how they map onto /v1/stats and /v1/records.
export const FILTERS = ["project", "team", "source", "customer", "key_id", "model", "provider", "status"] as const;
export const RANGES: [string, string][] = [
  ["1h", "last hour"], ["24h", "last 24 hours"], ["7d", "last 7 days"], ["30d", "last 30 days"],
  ["90d", "last 90 days"], ["365d", "last year"], ["all", "all time"],
];
export const DEFAULT_RANGE = "7d";

export function apiFilters(params: Record<string, string>, keep: readonly string[] = FILTERS): Record<string, string> {
  const out: Record<string, string> = {};
  const range = params.range || DEFAULT_RANGE;
  if (range !== "all") out.since = range;
  if (params.until) out.until = params.until;
  for (const f of keep) if (params[f]) out[f] = params[f];
  return out;
}
