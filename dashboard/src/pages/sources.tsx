// Sources: per requester (x-source) success rate and usage.
import { api, type Stats } from "../api";
import { ErrorBox, FilterBar, Section, Table, useLoad } from "../components";
import { ago, label, ms, num, pct, spend } from "../format";
import { apiFilters, navigate } from "../route";
import type { Page, PageProps } from "./types";

function View({ route }: PageProps) {
  const filters = apiFilters(route.params, ["project", "customer", "key_id", "model", "provider"]);
  const loaded = useLoad(() => api.get<Stats>("/v1/stats", { ...filters, group_by: "source" }), [JSON.stringify(filters)]);
  return (
    <div>
      <FilterBar route={route} fields={["project", "customer", "key_id", "model", "provider"]} />
      <ErrorBox error={loaded.error} />
      <Section title="Sources">
        {loaded.data && (
          <Table testid="sources" rows={loaded.data.groups ?? []}
            onRow={(r) => navigate("requests", { ...route.params, source: (r.source as string) ?? undefined })}
            columns={[
              { title: "Source", key: "source", cell: (r) => label(r.source) },
              { title: "Requests", key: "requests", num: true, cell: (r) => num(r.requests) },
              { title: "Success rate", key: "success", num: true, cell: (r) => pct(r.requests - r.errors, r.requests) },
              { title: "Errors", key: "errors", num: true, cell: (r) => num(r.errors) },
              { title: "Spend", key: "spend", num: true, cell: (r) => spend(r) },
              { title: "Tokens", key: "tokens", num: true, cell: (r) => num(r.total_tokens) },
              { title: "p95 latency", key: "p95", num: true, cell: (r) => ms(r.latency_ms_p95) },
              { title: "Last seen", key: "last", cell: (r) => ago(r.last_seen) },
            ]} />
        )}
      </Section>
    </div>
  );
}

export const sources: Page = { id: "sources", title: "Sources", view: View };
