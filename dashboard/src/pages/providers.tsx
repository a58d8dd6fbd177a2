// Providers: those of the config file (read-only) and those added here at run time (admin only).
import { useState } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Section, Table, useLoad } from "../components";
import { when } from "../format";
import type { Page, PageProps } from "./types";

interface ProviderView {
  id: string;
  kind: string;
  base_url: string;
  models: string[];
  has_key: boolean;
  source: "config" | "runtime";
  read_only: boolean;
  created_at?: number;
  created_by?: string;
}

const KINDS = ["openai", "anthropic", "azure_openai", "gemini", "openai_compatible"];

function AddForm({ onDone, secretKeySet }: { onDone: () => void; secretKeySet: boolean }) {
  const [f, setF] = useState({ id: "", kind: "openai_compatible", base_url: "", api_key: "", models: "" });
  const [error, setError] = useState<string | null>(null);
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const body: Record<string, unknown> = { id: f.id.trim(), kind: f.kind };
    if (f.base_url.trim()) body.base_url = f.base_url.trim();
    if (f.api_key) body.api_key = f.api_key;
    const models = f.models.split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    try {
      await api.post("/v1/providers", body);
      setF({ id: "", kind: f.kind, base_url: "", api_key: "", models: "" });
      onDone();
    } catch (err) {
      setError(String((err as Error).message));
    }
  };
  return (
    <Section title="Add a provider">
      <form class="form" data-testid="provider-form" onSubmit={submit}>
        <label>Id <input name="id" data-testid="provider-id" value={f.id} onInput={set("id")} required placeholder="ollama" /></label>
        <label>Kind
          <select name="kind" data-testid="provider-kind" value={f.kind} onChange={set("kind")}>
            {KINDS.map((k) => <option value={k}>{k}</option>)}
          </select>
        </label>
        <label>Base URL <input name="base_url" data-testid="provider-base-url" value={f.base_url} onInput={set("base_url")} placeholder="http://127.0.0.1:11434/v1" /></label>
        <label>API key <input name="api_key" type="password" autocomplete="off" data-testid="provider-api-key" value={f.api_key} onInput={set("api_key")}
          placeholder={secretKeySet ? "optional" : "needs TOLLWAY_SECRET_KEY"} /></label>
        <label>Models <input name="models" data-testid="provider-models" value={f.models} onInput={set("models")} placeholder="llama3.2, qwen*" /></label>
        <button data-testid="provider-add">Add provider</button>
      </form>
      <ErrorBox error={error} />
      <p class="muted">Checked like a <code>[[providers]]</code> entry of the config file; the key is encrypted at rest;
        every instance picks the change up within seconds; the audit log records it.</p>
    </Section>
  );
}

function View({ canChange }: PageProps) {
  const loaded = useLoad(() => api.get<{ data: ProviderView[]; secret_key_set: boolean }>("/v1/providers"), []);
  const [error, setError] = useState<string | null>(null);
  const remove = async (id: string) => {
    if (!confirm(`Remove provider ${id}?`)) return;
    try {
      await api.del(`/v1/providers/${encodeURIComponent(id)}`);
      loaded.reload();
    } catch (err) {
      setError(String((err as Error).message));
    }
  };
  return (
    <div>
      <ErrorBox error={error ?? loaded.error} />
      <Section title="Providers">
        {loaded.data && (
          <Table testid="providers" rows={loaded.data.data} columns={[
            { title: "Id", key: "id", cell: (p) => p.id },
            { title: "Kind", key: "kind", cell: (p) => p.kind },
            { title: "Base URL", key: "base_url", cell: (p) => p.base_url || "–" },
            { title: "Models", key: "models", cell: (p) => p.models.join(", ") || "(discovered)" },
            { title: "Key", key: "key", cell: (p) => (p.has_key ? "set" : "none") },
            { title: "From", key: "source", cell: (p) => (p.source === "config" ? "config file (read-only)" : `added ${when(p.created_at ? new Date(p.created_at * 1000).toISOString() : null)} by ${p.created_by}`) },
            { title: "", key: "actions", cell: (p) => (canChange && !p.read_only
              ? <button class="danger" data-testid={`provider-delete-${p.id}`} onClick={() => remove(p.id)}>Remove</button> : null) },
          ]} />
        )}
      </Section>
      {canChange
        ? <AddForm onDone={loaded.reload} secretKeySet={!!loaded.data?.secret_key_set} />
        : <p class="note" data-testid="providers-readonly">Your key has the viewer role: you can see the providers but not change them.</p>}
    </div>
  );
}

export const providers: Page = { id: "providers", title: "Providers", view: View };
