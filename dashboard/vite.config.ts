// The build goes straight into the Python package, where `pip install .` picks it up and
// Tollway serves it at `/`. File names carry content hashes (stable for identical sources), so a
// rebuild of unchanged sources produces identical files: CI checks that.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  // `npm run dev`: the API calls go to a running Tollway (TOLLWAY_URL, default the local one)
  server: {
    proxy: Object.fromEntries(["/v1", "/openapi.json", "/admin"].map((p) => [p, process.env.TOLLWAY_URL ?? "http://127.0.0.1:8930"])),
  },
  build: {
    outDir: "../src/tollway/dashboard/static",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    chunkSizeWarningLimit: 400,
  },
});
