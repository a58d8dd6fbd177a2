// Talking to Tollway: every call carries the signed-in key (kept in sessionStorage only, so it
// is gone when the tab closes). Errors come back as ApiError with Tollway's own message.

const KEY = "tollway.key";

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

export type Query = Record<string, string | number | null | undefined>;

export function qs(params: Query): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") p.set(k, String(v));
  }
  const s = p.toString();
  return s ? "?" + s : "";
}

async function call<T>(method: string, path: string, body?: unknown, key = storedKey()): Promise<T> {
  const headers: Record<string, string> = {};
  if (key) headers["Authorization"] = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = data?.error?.message ?? `HTTP ${res.status}`;
    throw new ApiError(res.status, msg);
  }
  return data as T;
}

export const api = {
  get: <T>(path: string, params: Query = {}) => call<T>("GET", path + qs(params)),
  post: <T>(path: string, body: unknown) => call<T>("POST", path, body),
  del: <T>(path: string) => call<T>("DELETE", path),
  me: (key: string | null) => call<Me>("GET", "/v1/me", undefined, key),
};

export interface Me {
  open: boolean;
  key_id: string | null;
  roles: string[];
}

export interface Entry {
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  cost_usd: string;
  unpriced: number;
  cache_hits: number;
  cost_saved_usd: string;
  latency_ms_p50: number | null;
  latency_ms_p95: number | null;
  ttft_ms_p50: number | null;
  ttft_ms_p95: number | null;
  last_seen: string | null;
  mitigated?: number;
  [key: string]: unknown;
}

export interface Stats {
  totals: Entry;
  group_by?: string;
  groups?: (Entry & { ts?: number; time?: string })[];
}

export interface UsageRecord {
  trace_id: string;
  time: string;
  ts: number;
  route: string;
  provider: string | null;
  model_requested: string | null;
  model_served: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  total_tokens: number | null;
  cost_usd: string | null;
  cost_note: string | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  status: number;
  error_type: string | null;
  key_id: string | null;
  project: string | null;
  source: string | null;
  customer: string | null;
  deployment?: string | null;
  attempts?: number | null;
  failure?: "customer" | "mitigated" | null;
  attempt_errors?: string[];
  [key: string]: unknown;
}
