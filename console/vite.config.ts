import { defineConfig } from "vite";

// The page is served by its host (locally tools/api_gateway.py) with a
// Content-Security-Policy of `script-src 'self'`: no inline script may be
// emitted, and no source map ships the sources to a customer's browser.
export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
