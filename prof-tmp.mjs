import { startBenchServer } from './dist/bench/server-process.js';
const s = await startBenchServer(['palimpsest', '--data', '/tmp/hb/final2/history.db'], ['--cpu-prof', '--cpu-prof-dir', '/tmp/hb/sprof2']);
const base = `http://127.0.0.1:${s.port}`;
const t = async (p) => { const a = performance.now(); const r = await fetch(base + p); await r.arrayBuffer(); console.log(p, r.status, (performance.now() - a).toFixed(1)); };
await t('/api/documents/x/versions');
for (let i = 0; i < 4; i++) await t('/api/documents/bench-history/authorship');
await s.stop();
