// Requests: the records, newest first, filterable; a row opens its full record (and its attempts,
// when the record has them).
import { useState } from "preact/hooks";
import { api, type UsageRecord } from "../api";
import { ErrorBox, FilterBar, Section, Table, useLoad } from "../components";
import { label, ms, num, usd, when } from "../format";
import { apiFilters, navigate } from "../route";
import type { Page, PageProps } from "./types";

interface RecordPage {
  data: UsageRecord[];
  next_cursor: string | null;
}

const PAGE = 50;

export function RecordTable({ rows, onOpen, testid = "records" }: { rows: UsageRecord[]; onOpen: (r: UsageRecord) => void; testid?: string }) {
  return (
    <Table testid={testid} rows={rows} onRow={onOpen} empty="No records match." columns={[
      { title: "Time (UTC)", key: "time", cell: (r) => when(r.time) },
      { title: "Project", key: "project", cell: (r) => label(r.project) },
      { title: "Source", key: "source", cell: (r) => label(r.source) },
      { title: "Customer", key: "customer", cell: (r) => label(r.customer) },
      { title: "Key", key: "key_id", cell: (r) => label(r.key_id) },
      { title: "Model", key: "model", cell: (r) => label(r.model_served ?? r.model_requested) },
      { title: "Status", key: "status", cell: (r) => <span class={r.status >= 400 || r.error_type ? "bad" : "good"}>{r.status}</span> },
      { title: "Tokens in/out", key: "tokens", num: true, cell: (r) => `${num(r.input_tokens)} / ${num(r.output_tokens)}` },
      { title: "Cost", key: "cost", num: true, cell: (r) => usd(r.cost_usd) },
      { title: "Latency", key: "latency", num: true, cell: (r) => ms(r.latency_ms) },
    ]} />
  );
}

// A failed attempt as the record keeps it: "deployment: status reason" (the deployment names hold
// ":" but never ": ").
export function parseAttemptError(e: string): { deployment: string; status: string; reason: string } {
  const i = e.indexOf(": ");
  if (i < 0) return { deployment: "", status: "", reason: e };
  const rest = e.slice(i + 2);
  const j = rest.indexOf(" ");
  return { deployment: e.slice(0, i), status: j < 0 ? rest : rest.slice(0, j), reason: j < 0 ? "" : rest.slice(j + 1) };
}

export function RecordDetail({ traceId, onClose }: { traceId: string; onClose: () => void }) {
  const loaded = useLoad(() => api.get<UsageRecord>(`/v1/records/${encodeURIComponent(traceId)}`), [traceId]);
  const r = loaded.data;
  const failed = (r?.attempt_errors ?? []).map(parseAttemptError);
  return (
    <div class="drawer" data-testid="record-detail">
      <header><h2>Record {traceId}</h2><button class="link" data-testid="record-close" onClick={onClose}>close</button></header>
      <ErrorBox error={loaded.error} />
      {r && (
        <Section title="Attempts">
          <p data-testid="record-routing">
            Served by <b data-testid="record-deployment">{label(r.deployment)}</b> after{" "}
            <b data-testid="record-attempts">{num(r.attempts ?? null)}</b> attempt{r.attempts === 1 ? "" : "s"}
            {r.failure && <> · <span class={r.failure === "customer" ? "bad" : "good"} data-testid="record-failure">
              {r.failure === "customer" ? "customer-impacting" : "mitigated by failover"}</span></>}
          </p>
          {failed.length > 0 && (
            <Table testid="attempt-errors" rows={failed} columns={[
              { title: "Deployment", key: "deployment", cell: (a) => a.deployment },
              { title: "Status", key: "status", cell: (a) => a.status },
              { title: "Reason", key: "reason", cell: (a) => a.reason },
            ]} />
          )}
        </Section>
      )}
      {r && (
        <dl class="kv">
          {Object.entries(r).filter(([k]) => k !== "attempt_errors").map(([k, v]) => (
            <><dt>{k}</dt><dd data-field={k}>{k === "cost_usd" ? usd(v as string | null) : v === null ? "null" : String(v)}</dd></>
          ))}
        </dl>
      )}
    </div>
  );
}

function View({ route }: PageProps) {
  const p = route.params;
  const filters = apiFilters(p);
  const [pages, setPages] = useState<string[]>([""]); // cursors of the pages shown
  const key = JSON.stringify(filters);
  const loaded = useLoad(async () => {
    const out: UsageRecord[] = [];
    let next: string | null = null;
    for (const cursor of pages) {
      const page: RecordPage = await api.get<RecordPage>("/v1/records", { ...filters, limit: PAGE, cursor });
      out.push(...page.data);
      next = page.next_cursor;
    }
    return { rows: out, next };
  }, [key, pages.join(",")]);
  const open = (r: UsageRecord) => navigate("requests", { ...p, open: r.trace_id });
  return (
    <div>
      <FilterBar route={route} />
      <ErrorBox error={loaded.error} />
      <Section title="Records" aside={<span class="muted" data-testid="records-count">{loaded.data ? `${loaded.data.rows.length} shown` : ""}</span>}>
        {loaded.data && <RecordTable rows={loaded.data.rows} onOpen={open} />}
        {loaded.data?.next && (
          <button data-testid="records-more" onClick={() => setPages([...pages, loaded.data!.next!])}>Load more</button>
        )}
      </Section>
      {p.open && <RecordDetail traceId={p.open} onClose={() => navigate("requests", { ...p, open: undefined })} />}
    </div>
  );
}

export const requests: Page = { id: "requests", title: "Requests", view: View };
