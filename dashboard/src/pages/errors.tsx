// Errors: the requests a provider failure touched (GET /v1/errors), newest first: customer-impacting
// (the client got the failure: a 5xx or 429, or a stream cut after its first token) versus mitigated
// (a retry or a fallback deployment served it). A row opens the record with its attempts.
import { useState } from "preact/hooks";
import { api } from "../api";
import { Card, ErrorBox, FilterBar, Section, Table, useLoad } from "../components";
import { label, num, when } from "../format";
import { apiFilters, navigate } from "../route";
import { RecordDetail } from "./requests";
import type { Page, PageProps } from "./types";

export interface ErrorRow {
  trace_id: string;
  time: string;
  kind: "customer" | "mitigated";
  route: string;
  model_requested: string | null;
  provider: string | null;
  deployment: string | null;
  attempts: number | null;
  status: number;
  error_type: string | null;
  attempt_errors: string[];
  project: string | null;
  key_id: string | null;
}
interface ErrorPage {
  data: ErrorRow[];
  next_cursor: string | null;
}

const FIELDS = ["project", "model", "provider", "deployment"] as const; // what GET /v1/errors filters by
const KINDS: [string, string][] = [["", "both"], ["customer", "customer-impacting"], ["mitigated", "mitigated by failover"]];
const PAGE = 50;
const COUNT_PAGES = 10; // counts page through at most 10 x 1000 rows, then say "more than"

async function count(filters: Record<string, string>, kind: string): Promise<{ n: number; more: boolean }> {
  let n = 0;
  let cursor: string | null = "";
  for (let i = 0; i < COUNT_PAGES && cursor !== null; i++) {
    const page: ErrorPage = await api.get<ErrorPage>("/v1/errors", { ...filters, kind, limit: 1000, cursor });
    n += page.data.length;
    cursor = page.next_cursor;
  }
  return { n, more: cursor !== null };
}

function View({ route }: PageProps) {
  const p = route.params;
  const base = apiFilters(p, FIELDS);
  const kind = p.kind || "";
  const [pages, setPages] = useState<string[]>([""]);
  const key = JSON.stringify(base);
  const counts = useLoad(async () => {
    const [customer, mitigated] = await Promise.all([count(base, "customer"), count(base, "mitigated")]);
    return { customer, mitigated };
  }, [key]);
  const rows = useLoad(async () => {
    const out: ErrorRow[] = [];
    let next: string | null = null;
    for (const cursor of pages) {
      const page: ErrorPage = await api.get<ErrorPage>("/v1/errors", { ...base, kind, limit: PAGE, cursor });
      out.push(...page.data);
      next = page.next_cursor;
    }
    return { rows: out, next };
  }, [key, kind, pages.join(",")]);
  const c = counts.data;
  const shown = (x: { n: number; more: boolean }) => (x.more ? "more than " : "") + num(x.n);
  const open = (r: ErrorRow) => navigate("errors", { ...p, open: r.trace_id });
  return (
    <div>
      <FilterBar route={route} fields={FIELDS} />
      <ErrorBox error={counts.error ?? rows.error} />
      {c && (
        <div class="cards">
          <Card testid="card-impacting" label="Customer-impacting" value={shown(c.customer)}
            hint="the client got the provider's failure" />
          <Card testid="card-mitigated" label="Mitigated by failover" value={shown(c.mitigated)}
            hint="a retry or another deployment served it" />
        </div>
      )}
      <Section title="Requests a provider failure touched" aside={
        <label class="muted">Kind{" "}
          <select data-testid="filter-kind" value={kind}
            onChange={(e) => { setPages([""]); navigate("errors", { ...p, kind: (e.target as HTMLSelectElement).value || undefined, open: undefined }); }}>
            {KINDS.map(([v, t]) => <option value={v}>{t}</option>)}
          </select>
        </label>}>
        {rows.data && (
          <Table testid="error-records" rows={rows.data.rows} onRow={open} empty="No request a provider failure touched matches." columns={[
            { title: "Time (UTC)", key: "time", cell: (r) => when(r.time) },
            { title: "Kind", key: "kind", cell: (r) => <span class={r.kind === "customer" ? "bad" : "good"}>{r.kind}</span> },
            { title: "Project", key: "project", cell: (r) => label(r.project) },
            { title: "Model", key: "model", cell: (r) => label(r.model_requested) },
            { title: "Deployment", key: "deployment", cell: (r) => label(r.deployment) },
            { title: "Attempts", key: "attempts", num: true, cell: (r) => num(r.attempts) },
            { title: "Status", key: "status", cell: (r) => r.status },
            { title: "Failed attempts", key: "attempt_errors", cell: (r) => r.attempt_errors.join("; ") || "–" },
          ]} />
        )}
        {rows.data?.next && (
          <button data-testid="errors-more" onClick={() => setPages([...pages, rows.data!.next!])}>Load more</button>
        )}
      </Section>
      {p.open && <RecordDetail traceId={p.open} onClose={() => navigate("errors", { ...p, open: undefined })} />}
    </div>
  );
}

export const errors: Page = { id: "errors", title: "Errors", view: View };
