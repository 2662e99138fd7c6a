import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The web UI (issue 11): built into dist/web, served by the server at `/` (index.html) and
 * `/ui/` (everything else), so a fresh `runyard up` has it with no extra step.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL("../dist/web", import.meta.url)),
    emptyOutDir: true,
    // The first page must stay under 200 KB of JavaScript gzipped: pages load their heavy parts
    // (the editor, the terminal) when opened.
    chunkSizeWarningLimit: 600,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8088", "/jobs": "http://127.0.0.1:8088" } },
});
