// Ask: a question in plain language → the SQL the Ask model wrote → its rows and a chart.
// Refused SQL is shown with the reason; nothing runs that is not a single read-only SELECT.
import { useState } from "preact/hooks";
import { api } from "../api";
import { Bars, ErrorBox, Section, Table, TimeChart, useLoad } from "../components";
import type { Page, PageProps } from "./types";

interface AskInfo {
  model: string | null;
  views: Record<string, string>;
}
interface Answer {
  sql: string;
  executed_sql?: string;
  refused: string | null;
  columns: string[];
  rows: unknown[][];
  chart: { type: string; x?: string; y?: string[] } | null;
}

function Chart({ a }: { a: Answer }) {
  const c = a.chart;
  if (!c || !c.x || !c.y?.length) return null;
  const xi = a.columns.indexOf(c.x);
  const yi = a.columns.indexOf(c.y[0]);
  if (c.type === "line") {
    const xs = a.rows.map((r) => Date.parse(String(r[xi]).replace(" ", "T") + (String(r[xi]).length <= 19 ? "Z" : "")) / 1000);
    if (xs.every((x) => Number.isFinite(x))) {
      const order = xs.map((_, i) => i).sort((i, j) => xs[i] - xs[j]);
      return <TimeChart testid="ask-chart" xs={order.map((i) => xs[i])} series={c.y.map((y, k) => ({
        label: y, color: ["#3b6fd8", "#d8503b", "#2f9e6e"][k % 3],
        values: order.map((i) => Number(a.rows[i][a.columns.indexOf(y)])) }))} />;
    }
  }
  return <Bars testid="ask-chart" items={a.rows.slice(0, 20).map((r) => ({
    name: String(r[xi] ?? "(none)"), value: Number(r[yi]) || 0, text: String(r[yi]) }))} />;
}

function View(_: PageProps) {
  const info = useLoad(() => api.get<AskInfo>("/v1/ask"), []);
  const [question, setQuestion] = useState("");
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true); setError(null); setAnswer(null);
    try {
      setAnswer(await api.post<Answer>("/v1/ask", { question }));
    } catch (err) {
      setError(String((err as Error).message));
    } finally {
      setBusy(false);
    }
  };
  if (info.data && !info.data.model) {
    return (
      <Section title="Ask">
        <p data-testid="ask-unconfigured">Ask needs a model to write its SQL. Add to the config file, then restart Tollway:</p>
        <pre class="code">{`[ask]\nmodel = "gpt-4o-mini"   # any model this Tollway routes`}</pre>
        <p class="muted">The call goes through Tollway itself and is recorded with source <code>tollway-ask</code>.</p>
      </Section>
    );
  }
  return (
    <div>
      <Section title="Ask a question about usage" aside={<span class="muted">{info.data ? `answered by ${info.data.model}` : ""}</span>}>
        <form class="ask" onSubmit={submit}>
          <textarea data-testid="ask-question" value={question} rows={2} placeholder="Which projects spent the most this week?"
            onInput={(e) => setQuestion((e.target as HTMLTextAreaElement).value)} />
          <button data-testid="ask-submit" disabled={busy || !question.trim()}>{busy ? "Asking…" : "Ask"}</button>
        </form>
      </Section>
      <ErrorBox error={error ?? info.error} />
      {answer && (
        <>
          <Section title="SQL">
            <pre class="code" data-testid="ask-sql">{answer.executed_sql ?? answer.sql}</pre>
            {answer.refused && <div class="error" data-testid="ask-refused">Refused: {answer.refused}</div>}
          </Section>
          {!answer.refused && (
            <Section title={`Result (${answer.rows.length} rows)`}>
              <Chart a={answer} />
              <Table testid="ask-rows" rows={answer.rows} columns={answer.columns.map((c, i) => ({
                title: c, key: c, cell: (r: unknown[]) => (r[i] === null ? "null" : String(r[i])) }))} />
            </Section>
          )}
        </>
      )}
      {info.data && (
        <details class="panel"><summary>What Ask can read</summary>
          {Object.entries(info.data.views).map(([v, doc]) => <pre class="code"><b>{v}</b>{"\n" + doc}</pre>)}
        </details>
      )}
    </div>
  );
}

export const ask: Page = { id: "ask", title: "Ask", view: View };
