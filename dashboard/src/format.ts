// How numbers look. Money stays an exact decimal string from the API (never a float): only
// trailing zeros beyond the cents are dropped, and the currency is always written out.
import type { Entry } from "./api";

export function usd(value: string | null | undefined): string {
  if (value === null || value === undefined) return "unpriced";
  let [int, frac = ""] = value.split(".");
  frac = frac.replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  int = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${int}.${frac} USD`;
}

// A group's spend: the known costs, and how many calls have no price (never shown as $0).
export function spend(e: Pick<Entry, "cost_usd" | "unpriced" | "requests">): string {
  if (e.requests > 0 && e.unpriced === e.requests) return "unpriced";
  const base = usd(e.cost_usd);
  return e.unpriced > 0 ? `${base} + ${num(e.unpriced)} unpriced` : base;
}

export function num(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  return n.toLocaleString("en-US");
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(n < 10 ? 2 : 0)} ms`;
}

export function pct(part: number, whole: number): string {
  if (!whole) return "–";
  return `${((100 * part) / whole).toFixed(part && part < whole / 1000 ? 3 : 1)} %`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function label(v: unknown): string {
  return v === null || v === undefined || v === "" ? "(none)" : String(v);
}
