// Projects: every project with its usage over the chosen window, updated live (polled every 3 s).
import { api, type Entry } from "../api";
import { ErrorBox, Section, Table, useLoad } from "../components";
import { ago, label, ms, num, pct, spend } from "../format";
import { navigate } from "../route";
import type { Page, PageProps } from "./types";

interface ProjectList {
  data: (Entry & { slug: string | null })[];
  totals: Entry;
}

const WINDOWS: [string, string][] = [["5", "5 minutes"], ["15", "15 minutes"], ["60", "1 hour"], ["1440", "24 hours"],
  ["10080", "7 days"], ["", "ever"]];
export const POLL_MS = 3000;

function View({ route }: PageProps) {
  const p = route.params;
  const mins = p.active_since_mins ?? "60";
  const loaded = useLoad(() => api.get<ProjectList>("/v1/projects", { active_since_mins: mins }), [mins], POLL_MS);
  return (
    <div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>Active since
          <select data-testid="active-since" value={mins}
            onChange={(e) => navigate("projects", { ...p, active_since_mins: (e.target as HTMLSelectElement).value || "all" })}>
            {WINDOWS.map(([v, t]) => <option value={v || "all"}>{t}</option>)}
          </select>
        </label>
        <span class="muted live">live · every {POLL_MS / 1000} s</span>
      </form>
      <ErrorBox error={loaded.error} />
      <Section title="Projects">
        {loaded.data && (
          <Table testid="projects" rows={loaded.data.data} empty="No project was active in this window."
            onRow={(r) => navigate("requests", { project: r.slug ?? undefined, range: "24h" })}
            columns={[
              { title: "Project", key: "slug", cell: (r) => label(r.slug) },
              { title: "Requests", key: "requests", num: true, cell: (r) => num(r.requests) },
              { title: "Spend", key: "spend", num: true, cell: (r) => spend(r) },
              { title: "Tokens", key: "tokens", num: true, cell: (r) => num(r.total_tokens) },
              { title: "Errors", key: "errors", num: true, cell: (r) => `${num(r.errors)} (${pct(r.errors, r.requests)})` },
              { title: "p95 latency", key: "p95", num: true, cell: (r) => ms(r.latency_ms_p95) },
              { title: "Last active", key: "last", cell: (r) => ago(r.last_seen) },
            ]} />
        )}
      </Section>
    </div>
  );
}

export const projects: Page = { id: "projects", title: "Projects", view: View };
