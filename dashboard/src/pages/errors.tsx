// Errors: customer-impacting (the client got an error: status >= 400, or a broken stream) versus
// mitigated (a failover saved the call: more than one attempt and a good status). The mitigated
// side appears as soon as records carry `attempts` (routing with fallbacks); until then every
// error reached the client and the page says so.
import { api, type Stats, type UsageRecord } from "../api";
import { Bars, Card, ErrorBox, FilterBar, Section, useLoad } from "../components";
import { num, pct } from "../format";
import { apiFilters, navigate } from "../route";
import { RecordDetail, RecordTable } from "./requests";
import type { Page, PageProps } from "./types";

function attemptsOf(r: UsageRecord): number | null {
  const a = r.attempts;
  if (typeof a === "number") return a;
  if (Array.isArray(a)) return a.length;
  return null;
}

export function isMitigated(r: UsageRecord): boolean {
  const a = attemptsOf(r);
  return a !== null && a > 1 && r.status < 400 && !r.error_type;
}

function View({ route }: PageProps) {
  const p = route.params;
  const base = apiFilters(p, ["project", "source", "customer", "key_id", "model", "provider"]);
  const key = JSON.stringify(base);
  const loaded = useLoad(async () => {
    const errs = { ...base, status: "error" };
    const [all, byStatus, byModel, byProvider, recent, latest] = await Promise.all([
      api.get<Stats>("/v1/stats", { ...base, group_by: "day" }),
      api.get<Stats>("/v1/stats", { ...errs, group_by: "status" }),
      api.get<Stats>("/v1/stats", { ...errs, group_by: "model" }),
      api.get<Stats>("/v1/stats", { ...errs, group_by: "provider" }),
      api.get<{ data: UsageRecord[] }>("/v1/records", { ...errs, limit: 50 }),
      api.get<{ data: UsageRecord[] }>("/v1/records", { ...base, limit: 200 }),
    ]);
    return { all, byStatus, byModel, byProvider, recent: recent.data, latest: latest.data };
  }, [key]);
  const d = loaded.data;
  const t = d?.all.totals;
  const routed = !!d && (typeof t?.mitigated === "number" || d.latest.some((r) => attemptsOf(r) !== null));
  const mitigated = d ? d.latest.filter(isMitigated) : [];
  const open = (r: UsageRecord) => navigate("errors", { ...p, open: r.trace_id });
  const bars = (s: Stats, name: string) => (s.groups ?? []).map((g) => ({
    name: g[name] === null ? "(none)" : String(g[name]), value: g.requests, text: num(g.requests) }));
  return (
    <div>
      <FilterBar route={route} fields={["project", "source", "customer", "key_id", "model", "provider"]} />
      <ErrorBox error={loaded.error} />
      {t && (
        <div class="cards">
          <Card testid="card-impacting" label="Customer-impacting errors" value={num(t.errors)}
            hint={`${pct(t.errors, t.requests)} of ${num(t.requests)} requests`} />
          {routed && typeof t.mitigated === "number" && (
            <Card testid="card-mitigated" label="Mitigated by failover" value={num(t.mitigated)} />
          )}
        </div>
      )}
      {d && !routed && (
        <p class="note" data-testid="no-failover">No failover is configured, so every error above reached the client.
          Calls saved by a fallback will show here as "mitigated" once routing with fallbacks is set up.</p>
      )}
      {d && (
        <div class="grid2">
          <Section title="By status"><Bars testid="errors-by-status" items={bars(d.byStatus, "status")} /></Section>
          <Section title="By model"><Bars testid="errors-by-model" items={bars(d.byModel, "model")} /></Section>
          <Section title="By provider"><Bars testid="errors-by-provider" items={bars(d.byProvider, "provider")} /></Section>
        </div>
      )}
      {d && (
        <Section title="Recent customer-impacting errors">
          <RecordTable testid="error-records" rows={d.recent} onOpen={open} />
        </Section>
      )}
      {routed && (
        <Section title="Recently mitigated by failover">
          <RecordTable testid="mitigated-records" rows={mitigated} onOpen={open} />
        </Section>
      )}
      {p.open && <RecordDetail traceId={p.open} onClose={() => navigate("errors", { ...p, open: undefined })} />}
    </div>
  );
}

export const errors: Page = { id: "errors", title: "Errors", view: View };
