// Routing: the profiles (GET /v1/profiles) and the five-layer visualizer: a request body goes to
// POST /v1/route/explain (the router's own planning, no provider called) and each layer shows the
// candidates it kept (with scores) and removed (with the reason), then the plan.
import { useState } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Section, Table, useLoad } from "../components";
import type { Page, PageProps } from "./types";

interface Profile {
  name: string;
  [k: string]: unknown;
}

interface Layer {
  name: string;
  policy?: string;
  kept: { deployment: string; score?: number; sticky?: boolean }[];
  removed: { deployment: string; reason: string }[];
}

interface Explained {
  model: string;
  policy: string | null;
  profile: string | null;
  layers: Layer[];
  plan: string[];
  cost_estimate?: string | null;
  error?: { status: number; message: string; code: string };
}

const EXAMPLE = JSON.stringify({ model: "auto", messages: [{ role: "user", content: "Hello" }] }, null, 2);

function settings(p: Profile): string {
  return Object.entries(p).filter(([k, v]) => k !== "name" && v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`).join(" · ") || "defaults";
}

function LayerView({ layer, step }: { layer: Layer; step: number }) {
  return (
    <div class="layer" data-testid={`layer-${layer.name}`}>
      <h3>{step}. {layer.name}{layer.policy ? ` (${layer.policy})` : ""}</h3>
      <ul class="kept">
        {layer.kept.map((k) => (
          <li data-testid="kept">{k.deployment}{k.score !== undefined && <span class="score"> score {k.score.toFixed(4)}</span>}
            {k.sticky && <span class="muted"> (sticky)</span>}</li>
        ))}
      </ul>
      {layer.removed.length > 0 && (
        <ul class="removed">
          {layer.removed.map((r) => <li data-testid="removed"><s>{r.deployment}</s> <span class="muted">{r.reason}</span></li>)}
        </ul>
      )}
    </div>
  );
}

function View(_: PageProps) {
  const profiles = useLoad(() => api.get<{ data: Profile[]; key_profile: string | null }>("/v1/profiles"), []);
  const [body, setBody] = useState(EXAMPLE);
  const [profile, setProfile] = useState("");
  const [result, setResult] = useState<Explained | null>(null);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      setError(`The request is not valid JSON: ${(err as Error).message}`);
      return;
    }
    if (profile) parsed.profile = profile;
    try {
      setResult(await api.post<Explained>("/v1/route/explain", parsed));
    } catch (err) {
      setError(String((err as Error).message));
    }
  };
  const p = profiles.data;
  return (
    <div>
      <ErrorBox error={profiles.error} />
      <Section title="Profiles">
        {p && (
          <>
            <Table testid="profiles" rows={p.data} empty="No routing profiles configured ([[routing.profiles]])." columns={[
              { title: "Profile", key: "name", cell: (x) => x.name },
              { title: "Settings", key: "settings", cell: (x) => settings(x) },
            ]} />
            <p class="muted" data-testid="key-profile">Your key's profile: {p.key_profile ?? "none"}</p>
          </>
        )}
      </Section>
      <Section title="Explain a request">
        <form class="explain" data-testid="explain-form" onSubmit={submit}>
          <textarea data-testid="explain-body" rows={8} value={body} onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)} />
          <div class="explain-side">
            <label>Profile
              <select data-testid="explain-profile" value={profile} onChange={(e) => setProfile((e.target as HTMLSelectElement).value)}>
                <option value="">(the key's own)</option>
                {(p?.data ?? []).map((x) => <option value={x.name}>{x.name}</option>)}
              </select>
            </label>
            <button data-testid="explain-submit">Explain</button>
            <p class="muted">A chat, messages or responses body. Nothing is sent to a provider.</p>
          </div>
        </form>
        <ErrorBox error={error} />
      </Section>
      {result && (
        <Section title={`How ${result.model} would be routed`}>
          {result.error && <div class="error" data-testid="explain-error">{result.error.message}</div>}
          <div class="layers">
            {result.layers.map((l, i) => <LayerView layer={l} step={i + 1} />)}
          </div>
          <p data-testid="explain-plan"><b>Plan:</b> {result.plan.length ? result.plan.join(" → ") : "nothing can serve it"}
            {result.policy && <span class="muted"> · policy {result.policy}</span>}
            {result.profile && <span class="muted"> · profile {result.profile}</span>}
            {result.cost_estimate && <span class="muted"> · worst case {result.cost_estimate} USD</span>}</p>
        </Section>
      )}
    </div>
  );
}

export const routing: Page = { id: "routing", title: "Routing", view: View };
