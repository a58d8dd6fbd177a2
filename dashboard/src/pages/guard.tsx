// Guardrails & cache: what the guard found (finding types per day, calls blocked or redacted) from
// /v1/guard, and how much the response cache answered (hit rate, cost saved) from /v1/stats.
import { api, type Entry, type Stats } from "../api";
import { Card, ErrorBox, FilterBar, Section, Table, useLoad } from "../components";
import { num, pct, usd } from "../format";
import { apiFilters } from "../route";
import type { Page, PageProps } from "./types";

interface GuardEntry {
  calls: number;
  request_findings: Record<string, number>;
  response_findings: Record<string, number>;
  request_actions: Record<string, number>;
  response_actions: Record<string, number>;
  blocked: number;
  redacted: number;
}

interface GuardReport {
  totals: GuardEntry;
  days: (GuardEntry & { time: string; ts: number })[];
}

const GUARD_FILTERS = ["project", "source", "customer", "key_id", "team"] as const;

function findings(counts: Record<string, number>): string {
  const items = Object.entries(counts);
  return items.length ? items.map(([k, n]) => `${k} ×${num(n)}`).join(", ") : "–";
}

function View({ route }: PageProps) {
  const filters = apiFilters(route.params, GUARD_FILTERS);
  const key = JSON.stringify(filters);
  const loaded = useLoad(async () => {
    const [guard, cache] = await Promise.all([
      api.get<GuardReport>("/v1/guard", filters),
      api.get<Stats>("/v1/stats", { ...filters, group_by: "day" }),
    ]);
    return { guard, cache };
  }, [key]);
  const d = loaded.data;
  const g = d?.guard.totals;
  const c: Entry | undefined = d?.cache.totals;
  const types = g ? Object.entries({ ...g.request_findings }).map(([type, n]) => ({ type, where: "request", n }))
    .concat(Object.entries(g.response_findings).map(([type, n]) => ({ type, where: "answer", n }))) : [];
  return (
    <div>
      <FilterBar route={route} fields={GUARD_FILTERS} />
      <ErrorBox error={loaded.error} />
      {g && c && (
        <div class="cards" data-testid="guard-cards">
          <Card testid="card-guard-calls" label="Calls with findings" value={num(g.calls)} />
          <Card testid="card-guard-blocked" label="Blocked" value={num(g.blocked)} hint="requests refused, answers withheld" />
          <Card testid="card-guard-redacted" label="Redacted" value={num(g.redacted)} hint="requests or answers" />
          <Card testid="card-cache-hits" label="Cache hits" value={num(c.cache_hits as number)} hint={`of ${num(c.requests)} requests`} />
          <Card testid="card-cache-rate" label="Cache hit rate" value={pct(c.cache_hits as number, c.requests)} />
          <Card testid="card-cache-saved" label="Saved by the cache" value={usd(c.cost_saved_usd as string)} />
        </div>
      )}
      {d && (
        <>
          <div class="grid2">
            <Section title="Findings by type">
              <Table testid="guard-types" rows={types} empty="The guard found nothing in this range." columns={[
                { title: "Type", key: "type", cell: (r) => r.type },
                { title: "In", key: "where", cell: (r) => r.where },
                { title: "Count", key: "count", num: true, cell: (r) => num(r.n) },
              ]} />
            </Section>
            <Section title="Cache per day">
              <Table testid="cache-days" rows={(d.cache.groups ?? []).filter((e) => (e.cache_hits as number) > 0).reverse()}
                empty="No cache hits in this range." columns={[
                  { title: "Day", key: "day", cell: (e) => (e.time ?? "").slice(0, 10) },
                  { title: "Requests", key: "requests", num: true, cell: (e) => num(e.requests) },
                  { title: "Hits", key: "hits", num: true, cell: (e) => num(e.cache_hits as number) },
                  { title: "Hit rate", key: "rate", num: true, cell: (e) => pct(e.cache_hits as number, e.requests) },
                  { title: "Saved", key: "saved", num: true, cell: (e) => usd(e.cost_saved_usd as string) },
                ]} />
            </Section>
          </div>
          <Section title="Guard per day">
            <Table testid="guard-days" rows={[...d.guard.days].reverse()} empty="The guard found nothing in this range." columns={[
              { title: "Day", key: "day", cell: (e) => e.time.slice(0, 10) },
              { title: "Calls", key: "calls", num: true, cell: (e) => num(e.calls) },
              { title: "Blocked", key: "blocked", num: true, cell: (e) => num(e.blocked) },
              { title: "Redacted", key: "redacted", num: true, cell: (e) => num(e.redacted) },
              { title: "In requests", key: "request", cell: (e) => findings(e.request_findings) },
              { title: "In answers", key: "response", cell: (e) => findings(e.response_findings) },
            ]} />
          </Section>
          <p class="muted">Types and counts only: Tollway never stores what a finding held. Guard numbers cover the records
            still stored; cache numbers are those of <code>/v1/stats</code>.</p>
        </>
      )}
    </div>
  );
}

export const guard: Page = { id: "guard", title: "Guardrails & cache", view: View };
