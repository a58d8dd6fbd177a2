// The shell: sign-in with a Tollway key, the nav, and the current page.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type Me, storedKey, storeKey } from "./api";
import { PAGES } from "./pages";
import { href, useRoute } from "./route";
import "./styles.css";

function SignIn({ onSignedIn, message }: { onSignedIn: (me: Me) => void; message: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(message);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const me = await api.me(key.trim());
      if (!me.roles.includes("viewer") && !me.roles.includes("admin")) {
        setError(`Key '${me.key_id}' can call models but not read the portal (it needs the viewer or admin role).`);
        return;
      }
      storeKey(key.trim());
      onSignedIn(me);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "That key is not valid here." : String((err as Error).message));
    }
  };
  return (
    <div class="signin">
      <h1>Tollway</h1>
      <form onSubmit={submit} data-testid="signin">
        <label>Tollway key (viewer or admin)
          <input type="password" autocomplete="off" data-testid="signin-key" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        </label>
        <button data-testid="signin-submit">Sign in</button>
        {error && <div class="error" data-testid="signin-error">{error}</div>}
        <p class="muted">The key stays in this browser tab only (session storage).</p>
      </form>
    </div>
  );
}

function App() {
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [checked, setChecked] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  useEffect(() => {
    api.me(storedKey()).then(
      (m) => { setMe(m); setChecked(true); },
      (e) => {
        if (e instanceof ApiError && e.status === 401 && storedKey()) setMessage("Your key is no longer valid.");
        storeKey(null);
        setChecked(true);
      },
    );
  }, []);
  if (!checked) return null;
  if (!me || (!me.open && !me.roles.includes("viewer") && !me.roles.includes("admin"))) {
    return <SignIn onSignedIn={setMe} message={message} />;
  }
  const canChange = me.open || me.roles.includes("admin");
  const page = PAGES.find((p) => p.id === route.page) ?? PAGES[0];
  const signOut = () => { storeKey(null); setMe(null); };
  return (
    <div class="shell">
      <nav>
        <div class="brand">Tollway</div>
        {PAGES.map((p) => (
          <a href={href(p.id, route.params.range ? { range: route.params.range } : {})} class={p.id === page.id ? "active" : ""} data-testid={"nav-" + p.id}>{p.title}</a>
        ))}
        <div class="who" data-testid="who">
          {me.open ? "open (no keys)" : <>{me.key_id}<br /><span class="muted">{me.roles.filter((r) => r !== "user").join(", ")}</span></>}
          {!me.open && <button class="link" data-testid="signout" onClick={signOut}>sign out</button>}
        </div>
      </nav>
      <main>
        {me.open && (
          <div class="banner" data-testid="open-banner">This Tollway is open: no master key and no keys are configured, so
            anyone who can reach it can use and change it. Set <code>TOLLWAY_MASTER_KEY</code> to require sign-in.</div>
        )}
        <h1 data-testid="page-title">{page.title}</h1>
        <page.view route={route} me={me} canChange={canChange} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
