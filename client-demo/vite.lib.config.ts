// Builds the embeddable editor as one ES module with every dependency inside
// (dist/client-demo-lib/palimpsest-editor.js), its stylesheet, and the
// hand-written type declarations. `palimpsest serve` serves it at /lib/.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { dedupe } from './vite.config.ts';

const declarations = fileURLToPath(new URL('src/lib/palimpsest-editor.d.ts', import.meta.url));

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  resolve: { dedupe },
  // Library mode leaves `process.env.NODE_ENV` alone; a page has no `process`,
  // and some ProseMirror/Tiptap code reads it.
  define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../dist/client-demo-lib', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    // The file is loaded as-is by <script type="module">, not re-bundled, so it
    // ships fully minified (Vite keeps whitespace in ES libraries unless the
    // bundler's own minifier is asked). Tiptap, ProseMirror and Yjs make up most of it.
    minify: true,
    rolldownOptions: { output: { minify: true } },
    chunkSizeWarningLimit: 700,
    lib: {
      entry: fileURLToPath(new URL('src/lib/index.ts', import.meta.url)),
      formats: ['es'],
      fileName: () => 'palimpsest-editor.js',
      cssFileName: 'palimpsest-editor',
    },
  },
  plugins: [
    {
      name: 'palimpsest-declarations',
      generateBundle() {
        this.emitFile({ type: 'asset', fileName: 'palimpsest-editor.d.ts', source: readFileSync(declarations, 'utf8') });
      },
    },
  ],
});
