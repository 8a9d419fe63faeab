// Builds the demo editor page (index.html) and the plain-HTML embedding
// example into dist/client-demo/, which `palimpsest serve` serves at "/".
// `npm run dev:client` serves the same pages with hot reload and forwards the
// collaboration socket to a Palimpsest server on 127.0.0.1:1234.

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const palimpsestServer = process.env['PALIMPSEST_DEV_SERVER'] ?? '127.0.0.1:1234';

/**
 * One copy each of Yjs and its companions: two copies of yjs in one page make
 * documents silently stop syncing ("Yjs was already imported"), and two of
 * @tiptap/pm break ProseMirror's instanceof checks.
 */
export const dedupe = ['yjs', 'y-protocols', 'lib0', '@tiptap/pm'];

export default defineConfig({
  root: here,
  base: '/',
  resolve: { dedupe },
  build: {
    outDir: fileURLToPath(new URL('../dist/client-demo', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    // Tiptap + ProseMirror + Yjs are ~540 kB minified; the editor needs all of
    // them before it can show anything, so splitting would only add requests.
    chunkSizeWarningLimit: 700,
    rolldownOptions: {
      input: {
        main: fileURLToPath(new URL('index.html', import.meta.url)),
        'embed-example': fileURLToPath(new URL('embed-example.html', import.meta.url)),
      },
    },
  },
  server: {
    port: 5173,
    proxy: {
      // The page talks to ws://<dev host>/collab (see connection.ts); Palimpsest
      // accepts its protocol on any path, so the path is simply dropped.
      '/collab': { target: `ws://${palimpsestServer}`, ws: true, rewrite: () => '/' },
      // The embedding example loads the built library from the real server.
      '/lib': { target: `http://${palimpsestServer}` },
      '/api': { target: `http://${palimpsestServer}` },
    },
  },
});
