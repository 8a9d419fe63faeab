// The `palimpsest` command: serve, history, export, compact, verify, copy.
// Exit codes: 0 success, 1 runtime failure (message names the path or cause,
// no stack trace), 2 bad usage or config (message names the flag).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { copyStore, isPostgresUrl, openEventStore, StoreError, type CompactionResult, type EventStore, type OpenedEventStore } from '../persistence/index.js';
import { ConfigError, dataFlagSpec, dataLocation, integer, parseFlags, serveFlags, settingLabel, suggestion, type SettingOrigin } from './config.js';
import { documentNameProblem } from './document-name.js';
import { logEntryToJson } from './log-entry-json.js';
import { serve } from './serve.js';

const dataFlag = { data: dataFlagSpec() };

/**
 * What a command knows about how it was called, for its messages. (A
 * ConfigError is named after the flag; main() renames it after the
 * environment variable when the value came from there.)
 */
interface RunContext {
  /** Whether a setting came from the command line, the environment or the default. */
  origins: Record<string, SettingOrigin>;
}

interface Command {
  summary: string;
  usage: string;
  flags: Record<string, { env?: string; help: string; default?: string; boolean?: boolean }>;
  run(values: Record<string, string | boolean | undefined>, positionals: string[], context: RunContext): Promise<number>;
}

// Unknown documents: a valid name that was never written reads as the empty
// document at seq 0 on every path (the contract fixes `history --json` of one
// to `[]`, exit 0), and every answer says so: a line naming the document and
// the database in human output, a note on stderr next to machine output,
// `exists: false` in JSON objects. A missing database is not an empty one: it
// is a runtime failure (exit 1) naming the path.
const commands: Record<string, Command> = {
  serve: {
    summary: 'Run the collaboration server',
    usage: 'palimpsest serve [flags]',
    flags: serveFlags,
    async run() {
      throw new Error('handled in main');
    },
  },
  history: {
    summary: "Print a document's log entries, oldest first",
    usage: 'palimpsest history <doc> [--json] [--after <seq>] [--limit <n>] [--data <file|url>]',
    flags: {
      ...dataFlag,
      json: { boolean: true, help: 'One JSON array of { seq, receivedAt, instanceId, user, displayName, size, update (base64) }' },
      after: { help: 'Only entries with a greater seq', default: '0' },
      limit: { help: 'At most this many entries, 1 or more (default: all)' },
    },
    async run(values, positionals, context) {
      const doc = documentArgument(positionals);
      const afterSeq = integer('--after', values.after as string, 0, Number.MAX_SAFE_INTEGER);
      const limit = values.limit === undefined ? undefined : integer('--limit', values.limit as string, 1, Number.MAX_SAFE_INTEGER);
      const data = values.data as string;
      const { info, entries } = await withStore(data, context, async (store) => {
        const found = await store.info(doc);
        return { info: found, entries: found === null ? [] : await store.entries(doc, { afterSeq, limit }) };
      });
      if (values.json === true) {
        if (info === null) process.stderr.write(`palimpsest history: ${neverWritten(doc, data)}; printing []\n`);
        process.stdout.write(`${JSON.stringify(entries.map(logEntryToJson))}\n`);
      } else if (info === null) {
        process.stdout.write(`${neverWritten(doc, data)}\n`);
      } else if (entries.length === 0) {
        const retained = info.firstRetainedSeq === null || info.firstRetainedSeq <= 1 ? ''
          : `; entries before seq ${info.firstRetainedSeq} were dropped by --retention snapshot`;
        process.stdout.write(`${doc}: no log entries after seq ${afterSeq} (its log ends at seq ${info.seq}${retained})\n`);
      } else {
        process.stdout.write('seq\treceived at\t\t\tinstance\tuser\tbytes\n');
        for (const e of entries) {
          process.stdout.write(`${e.seq}\t${e.receivedAt.toISOString()}\t${e.instanceId}\t${e.user ?? '-'}\t${e.size}\n`);
        }
      }
      return 0;
    },
  },
  export: {
    summary: "Write a document's state (at a seq) as one binary Yjs update",
    usage: 'palimpsest export <doc> [--at <seq>] [--json] [--out <file>] [--data <file|url>]',
    flags: {
      ...dataFlag,
      at: { help: 'The seq to export (default: the latest)' },
      json: { boolean: true, help: 'Print { doc, seq, update (base64), exists } instead of binary' },
      out: { help: 'Write the binary update to this file instead of stdout' },
    },
    async run(values, positionals, context) {
      const doc = documentArgument(positionals);
      const at = values.at === undefined ? undefined : integer('--at', values.at as string, 0, Number.MAX_SAFE_INTEGER);
      const data = values.data as string;
      const { exists, state } = await withStore(data, context, async (store) => {
        const info = await store.info(doc);
        if (info === null && at !== undefined && at > 0) {
          throw new StoreError('UNKNOWN_SEQ', `${neverWritten(doc, data)}, so it has no seq ${at}`);
        }
        return { exists: info !== null, state: await store.stateAt(doc, at) };
      });
      const { update, seq } = state;
      const emptyNote = exists ? '' : ` (${neverWritten(doc, data)}: the empty document)`;
      if (values.json === true) {
        if (!exists) process.stderr.write(`palimpsest export: ${neverWritten(doc, data)}; printing the empty document at seq 0\n`);
        process.stdout.write(`${JSON.stringify({ doc, seq, update: Buffer.from(update).toString('base64'), exists })}\n`);
      } else if (typeof values.out === 'string') {
        writeFileSync(values.out, update);
        process.stderr.write(`wrote ${doc} at seq ${seq} (${update.length} bytes) to ${values.out}${emptyNote}\n`);
      } else {
        if (!exists) process.stderr.write(`palimpsest export: ${neverWritten(doc, data)}; writing the empty document at seq 0\n`);
        process.stdout.write(update);
      }
      return 0;
    },
  },
  compact: {
    summary: 'Write a snapshot of one document, or of every document',
    usage: 'palimpsest compact [<doc>] [--json] [--data <file|url>]',
    flags: { ...dataFlag, json: { boolean: true, help: 'Print the results as JSON' } },
    async run(values, positionals, context) {
      if (positionals.length > 1) throw new ConfigError(positionals[1], 'compact takes at most one document');
      const only = positionals.length === 1 ? documentArgument(positionals) : null;
      const data = values.data as string;
      const results = await withStore(data, context, async (store) => {
        const docs = only === null ? await store.documents() : [only];
        const progress = progressReporter('compact', docs.length);
        const out: CompactOutcome[] = [];
        for (const [i, doc] of docs.entries()) {
          progress(i, doc);
          const info = await store.info(doc);
          if (info === null) out.push({ doc, seq: 0, compacted: false, exists: false });
          else out.push((await store.compact(doc)) ?? { doc, seq: info.seq, compacted: false });
        }
        progress(docs.length, null);
        return out;
      });
      if (values.json === true) process.stdout.write(`${JSON.stringify(results)}\n`);
      else {
        if (only === null && results.length === 0) process.stdout.write(`nothing to compact: ${data} holds no documents\n`);
        for (const result of results) {
          if ('size' in result) {
            process.stdout.write(`${result.doc}: snapshot at seq ${result.seq} (${result.size} bytes)${result.pruned > 0 ? `, ${result.pruned} entries pruned` : ''}\n`);
          } else if (result.exists === false) {
            process.stdout.write(`nothing to compact: ${neverWritten(result.doc, data)}\n`);
          } else {
            process.stdout.write(`${result.doc}: already compact (latest snapshot at seq ${result.seq})\n`);
          }
        }
      }
      return 0;
    },
  },
  verify: {
    summary: 'Replay every log and check it against its snapshots',
    usage: 'palimpsest verify [--json] [--data <file|url>]',
    flags: { ...dataFlag, json: { boolean: true, help: 'Print the report as JSON' } },
    async run(values, _positionals, context) {
      const report = await withStore(values.data as string, context, async (store) => {
        let progress = progressReporter('verify', 0);
        const result = await store.verify({
          onProgress: (doc, index, count) => {
            if (index === 0) progress = progressReporter('verify', count);
            progress(index, doc);
          },
        });
        progress(result.documents, null);
        return result;
      });
      if (values.json === true) process.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
        process.stdout.write(`${count(report.documents, 'document', 'documents')}, ${count(report.entries, 'log entry', 'log entries')}, ` +
          `${count(report.snapshots, 'snapshot', 'snapshots')} checked\n`);
        for (const p of report.problems) process.stdout.write(`PROBLEM ${p.doc}${p.seq === null ? '' : ` at seq ${p.seq}`}: ${p.problem}\n`);
        process.stdout.write(report.problems.length === 0 ? 'OK: every snapshot agrees with its log\n'
          : `${report.problems.length} problem(s); snapshots are a cache: a damaged one can be dropped and rebuilt by compact\n`);
      }
      return report.problems.length === 0 ? 0 : 1;
    },
  },
  copy: {
    summary: 'Copy every log and snapshot from one store to another (SQLite and PostgreSQL), then verify the target',
    usage: 'palimpsest copy --from <file|url> --to <file|url> [--json]',
    flags: {
      from: { help: 'The store to copy from: a SQLite file or postgres://user:password@host:port/database' },
      to: { help: 'The store to copy into (created if new); what it already holds is skipped, so an interrupted copy can be run again' },
      json: { boolean: true, help: 'Print { copied: { documents, entries, snapshots, notCopied: [{ doc, seq, problem }] }, verify: <report> } as JSON' },
    },
    async run(values, positionals) {
      if (positionals.length > 0) throw new ConfigError(positionals[0], 'copy takes no positional arguments; use --from and --to');
      const fromData = dataLocation(values.from as string | undefined, '--from');
      const toData = dataLocation(values.to as string | undefined, '--to');
      if (fromData === toData) throw new ConfigError('--to', 'is the same store as --from');
      if (!isPostgresUrl(fromData) && !existsSync(fromData)) {
        throw new StoreError('STORE_OPEN_FAILED', `no database at ${fromData}; pass --from <file|url>`);
      }
      const opened: OpenedEventStore[] = [];
      try {
        const from = openEventStore({ data: fromData, compactAfterEntries: 0, compactAfterBytes: 0 });
        opened.push(from);
        await from.opened();
        const to = openEventStore({ data: toData, compactAfterEntries: 0, compactAfterBytes: 0 });
        opened.push(to);
        await to.opened();
        const started = Date.now();
        let lastPrinted = started;
        const copied = await copyStore(from, to, {
          onProgress: ({ doc, index, documents, entries }) => {
            if (Date.now() - lastPrinted < 1000) return;
            lastPrinted = Date.now();
            process.stderr.write(`copy: ${index}/${documents} documents, ${entries} entries copied (${doc})\n`);
          },
        });
        process.stderr.write(`copy: ${copied.documents} documents, ${copied.entries} entries and ${copied.snapshots} snapshots copied ` +
          `in ${((Date.now() - started) / 1000).toFixed(1)} s; verifying ${to.path}\n`);
        let progress = progressReporter('verify', 0);
        const report = await to.verify({
          onProgress: (doc, index, count) => {
            if (index === 0) progress = progressReporter('verify', count);
            progress(index, doc);
          },
        });
        progress(report.documents, null);
        const { notCopied } = copied;
        if (values.json === true) process.stdout.write(`${JSON.stringify({ copied, verify: report })}\n`);
        else {
          process.stdout.write(`copied ${copied.entries} log entries and ${copied.snapshots} snapshots of ${copied.documents} documents to ${to.path}\n`);
          for (const c of notCopied) {
            process.stdout.write(`NOT COPIED ${c.doc} (at seq ${c.seq}): ${c.problem}; copy it into a store that does not hold it, or remove it from the target first\n`);
          }
          for (const p of report.problems) process.stdout.write(`PROBLEM ${p.doc}${p.seq === null ? '' : ` at seq ${p.seq}`}: ${p.problem}\n`);
          if (report.problems.length > 0) process.stdout.write(`${report.problems.length} problem(s) in the copy\n`);
          else if (notCopied.length > 0) process.stdout.write(`${notCopied.length} document(s) not copied; the rest verified: ${report.documents} documents, ${report.entries} log entries\n`);
          else process.stdout.write(`OK: verified ${report.documents} documents, ${report.entries} log entries, ${report.snapshots} snapshots\n`);
        }
        return report.problems.length === 0 && notCopied.length === 0 ? 0 : 1;
      } finally {
        for (const store of opened) await store.close();
      }
    },
  },
};

type CompactOutcome = CompactionResult | { doc: string; seq: number; compacted: false; exists?: false };

function neverWritten(doc: string, data: string): string {
  return `${doc}: no document of that name in ${data} (never written)`;
}

function documentArgument(positionals: string[]): string {
  if (positionals.length === 0) throw new ConfigError('<doc>', 'a document name is required');
  if (positionals.length > 1) throw new ConfigError(positionals[1], 'unexpected extra argument');
  const doc = positionals[0];
  const problem = documentNameProblem(doc);
  if (problem !== null) throw new ConfigError('<doc>', problem);
  return doc;
}

/**
 * Opens the database the reading commands work on. It must exist: a mistyped
 * --data path would otherwise read as a database without documents, and every
 * answer would look like a valid, empty one.
 */
async function withStore<T>(flag: string, context: RunContext, use: (store: EventStore) => Promise<T>): Promise<T> {
  const data = dataLocation(flag);
  if (!isPostgresUrl(data) && !existsSync(data)) {
    const origin = context.origins.data === 'default' ? 'the default --data'
      : context.origins.data === 'env' ? 'from PALIMPSEST_DATA' : 'given by --data';
    throw new StoreError('STORE_OPEN_FAILED',
      `no database at ${data} (${origin}); check the path, or pass --data <file|url> naming the database \`palimpsest serve\` writes`);
  }
  const store = openEventStore({ data, compactAfterEntries: 0, compactAfterBytes: 0 });
  try {
    await store.opened();
    return await use(store);
  } finally {
    await store.close();
  }
}

/** Progress on stderr for long work: at most one line a second, and a last one. */
function progressReporter(task: string, total: number): (done: number, current: string | null) => void {
  const started = Date.now();
  let lastPrinted = started;
  return (done, current) => {
    const now = Date.now();
    if (current !== null && now - lastPrinted < 1000) return;
    if (current === null && now - started < 1000) return;
    lastPrinted = now;
    process.stderr.write(current === null ? `${task}: ${done}/${total} documents done in ${((now - started) / 1000).toFixed(1)} s\n`
      : `${task}: ${done}/${total} documents (${current})\n`);
  };
}

function helpText(name: string | null): string {
  if (name === null) {
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    return [
      `palimpsest ${version} — event-sourced collaborative editing on Yjs`,
      '',
      'Usage: palimpsest <command> [flags]',
      '',
      'Commands:',
      ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(9)} ${c.summary}`),
      '',
      'Run `palimpsest <command> --help` for its flags.',
    ].join('\n');
  }
  const command = commands[name];
  const lines = [command.usage, '', command.summary, '', 'Flags:'];
  for (const [flag, spec] of Object.entries(command.flags)) {
    const extra = [spec.env !== undefined ? `env ${spec.env}` : null, spec.default !== undefined ? `default ${spec.default}` : null]
      .filter((x) => x !== null).join(', ');
    lines.push(`  --${flag.padEnd(30)} ${spec.help}${extra === '' ? '' : ` (${extra})`}`);
  }
  lines.push(`  --${'help'.padEnd(30)} Show this help`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${helpText(null)}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    process.stdout.write(`${(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version}\n`);
    return 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    const hint = suggestion(name, Object.keys(commands), '');
    process.stderr.write(`palimpsest: unknown command "${name}"${hint === null ? '' : `; ${hint}`}\n\n${helpText(null)}\n`);
    return 2;
  }
  if (name !== 'serve') process.stdout.on('error', stdoutOnError);
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${helpText(name)}\n`);
    return 0;
  }
  try {
    if (name === 'serve') {
      // No handler during start-up: a stop signal then ends the process at once
      // (its default action), whatever the start is waiting on — even a
      // synchronous wait on a locked database file. Nothing has been
      // acknowledged before the server listens, so nothing can be lost.
      const running = await serve(rest, process.env);
      let signalled: () => void = () => undefined;
      const stopRequested = new Promise<void>((resolve) => { signalled = resolve; });
      const onSignal = () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        // A second signal gives up waiting for the clean stop.
        process.once('SIGTERM', () => process.exit(1));
        process.once('SIGINT', () => process.exit(1));
        signalled();
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
      await stopRequested;
      await running.stop().catch((error: Error) => {
        process.stderr.write(`palimpsest: shutdown failed: ${error.message}\n`);
        process.exit(1);
      });
      // Everything is closed; do not let a stray timer of a dependency keep the process up.
      setTimeout(() => process.exit(0), 1000).unref();
      return 0;
    }
    const { values, positionals, origins } = parseFlags(rest, command.flags, process.env);
    return await command.run(values, positionals, { origins });
  } catch (error) {
    if (error instanceof ConfigError) {
      // Named after where the value came from: `PORT=abc` in the environment is not `--port abc`.
      const where = settingLabel(error.flag, rest, command.flags, process.env);
      process.stderr.write(`palimpsest ${name}: ${where}: ${error.detail}\nRun \`palimpsest ${name} --help\` for usage.\n`);
      return 2;
    }
    if (error instanceof StoreError) {
      process.stderr.write(`palimpsest ${name}: ${error.message}\n`);
      return 1;
    }
    const err = error as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
      process.stderr.write(`palimpsest ${name}: cannot listen: ${err.message} (choose another --port or --host)\n`);
      return 1;
    }
    process.stderr.write(`palimpsest ${name}: ${err.message}\n`);
    return 1;
  }
}

/**
 * The reader of our output went away (`palimpsest history doc | head`): what
 * it wanted was delivered, so stop quietly, as Unix tools killed by SIGPIPE
 * do, rather than dying with a stack trace. Exit 0: `head` taking the first
 * lines is the pipeline working, and the reader's own exit status reports any
 * failure of its own.
 */
function stdoutOnError(error: NodeJS.ErrnoException): void {
  if (error.code === 'EPIPE') process.exit(0);
  process.stderr.write(`palimpsest: cannot write to stdout: ${error.message}\n`);
  process.exit(1);
}
