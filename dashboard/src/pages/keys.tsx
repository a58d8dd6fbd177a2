// Keys, teams and budgets: the admin API's lists (never a secret: a key shows as its public id and
// prefix), spend against each budget with its window and reset; admins create, rotate and revoke keys.
import { useState } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Section, Table, useLoad } from "../components";
import { label, num, usd, when } from "../format";
import type { Page, PageProps } from "./types";

export interface BudgetView {
  id: string;
  scope: string;
  target: string;
  limit_usd: string;
  window: string;
  source: string;
  read_only: boolean;
  window_start: string | null;
  resets_at: string | null;
  spent_usd?: string;
  reserved_usd?: string;
  remaining_usd?: string;
}

interface Limits {
  rpm: number | null;
  tpm: number | null;
  max_concurrency: number | null;
  models: string[] | null;
}

interface KeyView {
  id: string;
  name: string | null;
  key_prefix: string | null;
  source: "config" | "store";
  read_only: boolean;
  state: "active" | "revoked" | "expired";
  roles: string[];
  team: string | null;
  project: string | null;
  customer: string | null;
  limits: Limits;
  budgets: BudgetView[];
  expires_at: string | null;
  created_at: string | null;
  old_secret_valid_until: string | null;
}

interface GroupView {
  id: string;
  name: string | null;
  source: string;
  rpm: number | null;
  tpm: number | null;
  budgets: BudgetView[];
}

interface List<T> {
  data: T[];
}

// "12.50 USD of 50.00 USD (25 %)", or the limit alone while the counters cannot be read
export function budgetText(b: BudgetView): string {
  if (b.spent_usd === undefined) return `limit ${usd(b.limit_usd)} (spend unavailable)`;
  return `${usd(b.spent_usd)} of ${usd(b.limit_usd)}`;
}

function BudgetBar({ b }: { b: BudgetView }) {
  const share = b.spent_usd === undefined ? 0 : Math.min(1, Number(b.spent_usd) / Math.max(1e-12, Number(b.limit_usd)));
  return (
    <span class="budget" data-testid={`budget-${b.id}`}>
      <span class="bar-track"><span class={share >= 0.9 ? "bar over" : "bar"} style={{ width: `${100 * share}%` }} /></span>
      <span class="budget-text">{budgetText(b)} / {b.window}</span>
    </span>
  );
}

function limitsText(l: { rpm: number | null; tpm: number | null; max_concurrency?: number | null }): string {
  const parts = [];
  if (l.rpm) parts.push(`${num(l.rpm)} rpm`);
  if (l.tpm) parts.push(`${num(l.tpm)} tpm`);
  if (l.max_concurrency) parts.push(`${num(l.max_concurrency)} at once`);
  return parts.join(" · ") || "none";
}

function CreateKey({ onDone }: { onDone: () => void }) {
  const empty = { name: "", role: "user", team: "", project: "", rpm: "", budget: "" };
  const [f, setF] = useState(empty);
  const [error, setError] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ id: string; key: string } | null>(null);
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const body: Record<string, unknown> = { name: f.name.trim(), roles: [f.role] };
    if (f.team.trim()) body.team = f.team.trim();
    if (f.project.trim()) body.project = f.project.trim();
    if (f.rpm.trim()) body.rpm = Number(f.rpm.trim());
    if (f.budget.trim()) body.budgets = [f.budget.trim()];
    try {
      const made = await api.post<{ id: string; key: string }>("/admin/keys", body);
      setSecret({ id: made.id, key: made.key });
      setF(empty);
      onDone();
    } catch (err) {
      setError(String((err as Error).message));
    }
  };
  return (
    <Section title="Create a key">
      <form class="form" data-testid="key-form" onSubmit={submit}>
        <label>Name <input name="name" data-testid="key-name" value={f.name} onInput={set("name")} required placeholder="billing service" /></label>
        <label>Role
          <select name="role" data-testid="key-role" value={f.role} onChange={set("role")}>
            <option value="user">user (calls models)</option><option value="viewer">viewer (reads)</option><option value="admin">admin</option>
          </select>
        </label>
        <label>Team <input name="team" data-testid="key-team" value={f.team} onInput={set("team")} placeholder="optional" /></label>
        <label>Project <input name="project" data-testid="key-project" value={f.project} onInput={set("project")} placeholder="optional" /></label>
        <label>Requests per minute <input name="rpm" data-testid="key-rpm" value={f.rpm} onInput={set("rpm")} inputMode="numeric" placeholder="no limit" /></label>
        <label>Budget <input name="budget" data-testid="key-budget" value={f.budget} onInput={set("budget")} placeholder="50/month" /></label>
        <button data-testid="key-create">Create key</button>
      </form>
      <ErrorBox error={error} />
      {secret && (
        <div class="note" data-testid="key-secret">Key <b>{secret.id}</b> created. Copy it now, it is not shown again:
          <pre data-testid="key-secret-value">{secret.key}</pre>
          <button class="link" onClick={() => setSecret(null)}>done</button>
        </div>
      )}
    </Section>
  );
}

function View({ canChange }: PageProps) {
  const loaded = useLoad(async () => {
    const [keys, teams, budgets] = await Promise.all([
      api.get<List<KeyView>>("/admin/keys"), api.get<List<GroupView>>("/admin/teams"), api.get<List<BudgetView>>("/admin/budgets"),
    ]);
    return { keys: keys.data, teams: teams.data, budgets: budgets.data };
  }, []);
  const [error, setError] = useState<string | null>(null);
  const [rotated, setRotated] = useState<{ id: string; key: string } | null>(null);
  const act = async (what: "revoke" | "rotate", id: string) => {
    if (!confirm(what === "revoke" ? `Revoke key ${id}? Its calls stop at once.` : `Rotate key ${id}? The old secret stops working.`)) return;
    setError(null);
    try {
      const out = await api.post<{ key?: string }>(`/admin/keys/${encodeURIComponent(id)}/${what}`, {});
      if (what === "rotate" && out.key) setRotated({ id, key: out.key });
      loaded.reload();
    } catch (err) {
      setError(String((err as Error).message));
    }
  };
  const d = loaded.data;
  return (
    <div>
      <ErrorBox error={error ?? loaded.error} />
      {rotated && (
        <div class="note" data-testid="key-rotated">New secret of <b>{rotated.id}</b>, shown once:
          <pre>{rotated.key}</pre><button class="link" onClick={() => setRotated(null)}>done</button></div>
      )}
      <Section title="Keys">
        {d && (
          <Table testid="keys" rows={d.keys} columns={[
            { title: "Id", key: "id", cell: (k) => k.id },
            { title: "Name", key: "name", cell: (k) => label(k.name) },
            { title: "Key", key: "prefix", cell: (k) => <code>{k.key_prefix ?? "(config file)"}</code> },
            { title: "State", key: "state", cell: (k) => <span class={"state " + k.state}>{k.state}</span> },
            { title: "Roles", key: "roles", cell: (k) => k.roles.join(", ") },
            { title: "Team", key: "team", cell: (k) => label(k.team) },
            { title: "Project", key: "project", cell: (k) => label(k.project) },
            { title: "Rate limits", key: "limits", cell: (k) => limitsText(k.limits) },
            { title: "Budgets", key: "budgets", cell: (k) => (k.budgets.length ? k.budgets.map((b) => <BudgetBar b={b} />) : "none") },
            { title: "Created", key: "created", cell: (k) => (k.source === "config" ? "config file" : when(k.created_at)) },
            { title: "", key: "actions", cell: (k) => (canChange && !k.read_only && k.state === "active" ? (
              <span class="actions">
                <button data-testid={`key-rotate-${k.id}`} onClick={() => act("rotate", k.id)}>Rotate</button>
                <button class="danger" data-testid={`key-revoke-${k.id}`} onClick={() => act("revoke", k.id)}>Revoke</button>
              </span>) : null) },
          ]} />
        )}
      </Section>
      {canChange
        ? <CreateKey onDone={loaded.reload} />
        : <p class="note" data-testid="keys-readonly">Your key has the viewer role: you can see keys, teams and budgets but not change them.</p>}
      <div class="grid2">
        <Section title="Teams">
          {d && (
            <Table testid="teams" rows={d.teams} empty="No teams yet." columns={[
              { title: "Team", key: "id", cell: (g) => g.id },
              { title: "Name", key: "name", cell: (g) => label(g.name) },
              { title: "Rate limits", key: "limits", cell: (g) => limitsText(g) },
              { title: "Budgets", key: "budgets", cell: (g) => (g.budgets.length ? g.budgets.map((b) => <BudgetBar b={b} />) : "none") },
              { title: "", key: "usage", cell: (g) => <a href={`#/overview?team=${encodeURIComponent(g.id)}`}>usage</a> },
            ]} />
          )}
        </Section>
        <Section title="Budgets">
          {d && (
            <Table testid="budgets" rows={d.budgets} empty="No budgets yet." columns={[
              { title: "Scope", key: "scope", cell: (b) => `${b.scope} ${b.target}` },
              { title: "Window", key: "window", cell: (b) => b.window },
              { title: "Spent", key: "spent", num: true, cell: (b) => (b.spent_usd === undefined ? "unavailable" : usd(b.spent_usd)) },
              { title: "Reserved", key: "reserved", num: true, cell: (b) => (b.reserved_usd === undefined ? "–" : usd(b.reserved_usd)) },
              { title: "Limit", key: "limit", num: true, cell: (b) => usd(b.limit_usd) },
              { title: "Resets", key: "resets", cell: (b) => (b.resets_at ? when(b.resets_at) : "never") },
            ]} />
          )}
        </Section>
      </div>
    </div>
  );
}

export const keys: Page = { id: "keys", title: "Keys & budgets", view: View };
