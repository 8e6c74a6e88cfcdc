import { defineConfig } from 'vite';

// The flagpost binary serves dist/index.html at `/` and dist/assets/* at `/assets/*`,
// so asset URLs are absolute (`base: '/'`). `npm run dev` proxies the API to a running
// `flagpost serve` (FLAGPOST_URL, default http://127.0.0.1:8080) or to `npm run mock`.
const api = process.env.FLAGPOST_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
  },
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: false },
    },
  },
});
