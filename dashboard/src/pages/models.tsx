// Models: the router's catalog (GET /v1/catalog: capabilities, context window, prices, and per
// deployment the observed latency, TTFT, error rate and quality score), and what GET /v1/models
// lists (with prices from the price data) joined with the usage of each model.
import { api, type Stats } from "../api";
import { ErrorBox, FilterBar, Section, Table, useLoad } from "../components";
import { label, ms, num, spend, usd } from "../format";
import { apiFilters } from "../route";
import type { Page, PageProps } from "./types";

interface Pricing {
  input_per_mtok: string;
  output_per_mtok: string;
  cached_input_per_mtok: string | null;
  source: string | null;
}
interface Deployment {
  deployment: string;
  latency_ms: number | null;
  ttft_ms: number | null;
  error_rate: number | null;
  quality: number | null;
  breaker: string | null;
}
interface CatalogEntry {
  id: string;
  policy: string | null;
  provider: string | null;
  capabilities: string[] | null;
  context_window: number | null;
  pricing: { input_per_mtok: string; output_per_mtok: string } | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  error_rate: number | null;
  quality: number | null;
  deployments: Deployment[];
}
interface ModelInfo {
  id: string;
  owned_by: string;
  tollway?: { provider_kind: string; endpoints: string[]; pricing: Pricing | null };
}

export function rate(r: number | null | undefined): string {
  return r === null || r === undefined ? "–" : `${(100 * r).toFixed(1)} %`;
}

export function score(q: number | null | undefined): string {
  return q === null || q === undefined ? "–" : q.toFixed(2);
}

function View({ route }: PageProps) {
  const filters = apiFilters(route.params, []);
  const loaded = useLoad(async () => {
    // GET /v1/catalog exists once routing has landed: ask the OpenAPI document, not the route
    // (an unknown /v1/ path would be passed through to the OpenAI provider, and recorded)
    const doc = await api.get<{ paths: Record<string, unknown> }>("/openapi.json");
    const catalog = "/v1/catalog" in doc.paths ? await api.get<{ data: CatalogEntry[] }>("/v1/catalog") : null;
    const [models, usage] = await Promise.all([
      api.get<{ data: ModelInfo[] }>("/v1/models"),
      api.get<Stats>("/v1/stats", { ...filters, group_by: "model" }),
    ]);
    return { catalog, models: models.data, usage: new Map((usage.groups ?? []).map((g) => [g.model as string, g])) };
  }, [JSON.stringify(filters)]);
  const d = loaded.data;
  return (
    <div>
      <FilterBar route={route} fields={[]} />
      <ErrorBox error={loaded.error} />
      {d?.catalog && (
        <Section title="Catalog (routing)" aside={<span class="muted">observed latency, TTFT and error rate per deployment; prices per million tokens</span>}>
          <Table testid="catalog" rows={d.catalog.data} columns={[
            { title: "Model", key: "id", cell: (m) => m.id },
            { title: "Policy", key: "policy", cell: (m) => label(m.policy) },
            { title: "Capabilities", key: "capabilities", cell: (m) => m.capabilities ? m.capabilities.join(", ") || "none" : "unknown" },
            { title: "Context", key: "context_window", num: true, cell: (m) => num(m.context_window) },
            { title: "Input", key: "in", num: true, cell: (m) => m.pricing ? usd(m.pricing.input_per_mtok) : "unpriced" },
            { title: "Output", key: "out", num: true, cell: (m) => m.pricing ? usd(m.pricing.output_per_mtok) : "unpriced" },
            { title: "Deployments", key: "deployments", cell: (m) => (
              <ul class="plain">{m.deployments.map((x) => (
                <li data-deployment={x.deployment}>{x.deployment}: {ms(x.latency_ms)}, TTFT {ms(x.ttft_ms)},
                  errors {rate(x.error_rate)}, quality {score(x.quality)}{x.breaker && x.breaker !== "closed" ? `, breaker ${x.breaker}` : ""}</li>
              ))}</ul>) },
          ]} />
        </Section>
      )}
      {d && (
        <Section title="Models Tollway routes" aside={<span class="muted">prices per million tokens; usage in the chosen time range</span>}>
          <Table testid="models" rows={d.models} columns={[
            { title: "Model", key: "id", cell: (m) => m.id },
            { title: "Provider", key: "provider", cell: (m) => `${m.owned_by}${m.tollway ? ` (${m.tollway.provider_kind})` : ""}` },
            { title: "Endpoints", key: "endpoints", cell: (m) => m.tollway?.endpoints.join(", ") ?? "–" },
            { title: "Input", key: "in", num: true, cell: (m) => m.tollway?.pricing ? usd(m.tollway.pricing.input_per_mtok) : "unpriced" },
            { title: "Output", key: "out", num: true, cell: (m) => m.tollway?.pricing ? usd(m.tollway.pricing.output_per_mtok) : "unpriced" },
            { title: "Requests", key: "requests", num: true, cell: (m) => num(d.usage.get(m.id)?.requests ?? 0) },
            { title: "Spend", key: "spend", num: true, cell: (m) => { const u = d.usage.get(m.id); return u ? spend(u) : "–"; } },
            { title: "p50 latency", key: "p50", num: true, cell: (m) => ms(d.usage.get(m.id)?.latency_ms_p50) },
          ]} />
        </Section>
      )}
    </div>
  );
}

export const models: Page = { id: "models", title: "Models", view: View };
