import { openEventStore } from './dist/persistence/index.js';
import { listVersions, authorshipAt } from './dist/server/history-api.js';
import { readAuthorshipIndex } from './dist/server/authorship-index.js';
const store = openEventStore({ path: '/tmp/hb/after2/history.db' });
const doc = 'bench-history';
const t = async (label, f) => { const s = performance.now(); const r = await f(); console.log(label, (performance.now() - s).toFixed(1)); return r; };
for (let i = 0; i < 3; i++) {
  const info = await t('info', () => store.info(doc));
  await t('versions', () => listVersions(store, doc, { lastSeq: info.seq, firstSeq: info.firstRetainedSeq, before: info.seq + 1, limit: 50, pauseMs: 300000 }));
  await t('stateAt', () => store.stateAt(doc, info.seq));
  await t('blocks', () => store.authorshipBlocks(doc, info.seq));
  let n=0; await t('index', () => readAuthorshipIndex(store, doc, 1, info.seq, {entry(){n++}, range(){}}));
  await t('authorship', () => authorshipAt(store, doc, info.seq, null, info.firstRetainedSeq));
}
let t0=performance.now(); let x=0; for(let i=0;i<1e7;i++) x+=i; console.log('loop1e7', performance.now()-t0);
