// The History panel: the document's versions (from GET /api/documents/{doc}/versions),
// a read-only preview of one with what changed since the version before it,
// restore (through POST .../restore, confirmed in the page), and an authorship
// view that colours the text by who wrote it. Previews replace the editing
// surface while shown; the live document keeps syncing underneath.

import type * as Y from 'yjs';
import { h } from './dom.ts';
import { colourForName } from './identity.ts';

interface VersionAuthor { user: string | null; displayName: string | null }
interface Version {
  fromSeq: number; toSeq: number; startedAt: string; endedAt: string; authors: VersionAuthor[];
  added: number; removed: number; name: string | null; restoredFrom: number | null;
}
interface Run { text: string; author: string | null; change?: 'inserted' | 'removed' }
interface Authorship {
  blocks: Array<{ type: string; runs: Run[]; change?: 'inserted' | 'removed' }>;
  authors: Array<{ author: string | null; characters: number }>;
}

export interface HistoryPanelOptions {
  /** http(s) origin of the Palimpsest server. */
  apiOrigin: string;
  document: string;
  token?: string | undefined;
  /** The name this editor goes by: a restore is recorded as theirs. */
  userName: string;
  ydoc: Y.Doc;
  /** Who is connected now (their awareness `user.name` by client id): their text is named before the server has logged it. */
  awareness?: { getStates(): Map<number, Record<string, unknown>> } | null | undefined;
  /** Colours the live text by author (client id → name; null: off); returns the names now shown. */
  colourByAuthor?(names: Map<number, string> | null): string[];
  /** Hides (true) or shows the editing surface while a preview is on screen. */
  showPreview(view: HTMLElement | null): void;
}

export interface HistoryPanel {
  toggle: HTMLButtonElement;
  element: HTMLElement;
  /** A read-only token: history stays readable, restoring says it needs write access. */
  setReadOnly(readOnly: boolean): void;
  destroy(): void;
}

const PAUSE_MS = 5 * 60_000;

function authorName(author: VersionAuthor): string {
  return author.displayName ?? author.user ?? 'Server';
}

function timeLabel(iso: string): string {
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function summary(version: Version): string {
  if (version.restoredFrom !== null) return 'Restored an earlier version';
  const parts: string[] = [];
  if (version.added > 0) parts.push(`+${version.added}`);
  if (version.removed > 0) parts.push(`−${version.removed}`);
  return parts.length === 0 ? 'No text change' : `${parts.join(' ')} characters`;
}

export function createHistoryPanel(options: HistoryPanelOptions): HistoryPanel {
  const base = `${options.apiOrigin}/api/documents/${encodeURIComponent(options.document)}`;
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
  let readOnly = false;
  let open = false;
  let versions: Version[] = [];
  let selected: Version | null = null;
  let authorshipOn = false;
  let refreshTimer: ReturnType<typeof setTimeout> | null = null;
  let destroyed = false;

  const toggle = h('button', {
    type: 'button', class: 'pal-history-toggle', 'data-testid': 'history-toggle', 'aria-expanded': 'false', 'aria-controls': 'pal-history',
  }, 'History');
  const authorshipToggle = h('button', { type: 'button', class: 'pal-history__tool', 'data-testid': 'authorship-toggle', 'aria-pressed': 'false' }, 'Colour by author');
  const close = h('button', { type: 'button', class: 'pal-history__tool', 'aria-label': 'Close history' }, '×');
  const status = h('p', { class: 'pal-history__status', role: 'status' });
  // The names and colours of the authors whose text is coloured in the live editor.
  const legend = h('ul', { class: 'pal-history__legend', 'data-testid': 'authorship-legend', 'aria-label': 'Authors', hidden: true });

  const list = h('ol', { class: 'pal-history__list', 'aria-label': 'Versions, newest first' });
  const element = h('aside', { class: 'pal-history', id: 'pal-history', 'data-testid': 'history-panel', hidden: true, 'aria-label': 'History' },
    h('div', { class: 'pal-history__head' }, h('h2', { class: 'pal-history__title' }, 'History'), authorshipToggle, close),
    legend, status, list);

  // The view that stands in for the editing surface: a version preview or the authorship colours.
  const view = h('section', { class: 'pal-history-view', 'aria-live': 'polite' });

  async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await fetch(`${base}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } });
    const body = await response.json().catch(() => null) as { error?: { message: string } } | null;
    if (!response.ok) throw new Error(body?.error?.message ?? `the server answered ${response.status}`);
    return body as T;
  }

  async function refresh(): Promise<void> {
    if (!open || destroyed) return;
    try {
      const page = await request<{ versions: Version[] }>('/versions?limit=100');
      versions = page.versions;
      renderList();
      status.textContent = versions.length === 0 ? 'No versions yet: what you type shows up here.' : '';
    } catch (error) {
      status.textContent = `Could not load the history: ${(error as Error).message}`;
    }
  }

  function renderList(): void {
    list.replaceChildren(...versions.map((version, index) => {
      const live = index === 0 && Date.now() - Date.parse(version.endedAt) < PAUSE_MS;
      const authors = version.authors.length === 0 ? [{ user: null, displayName: null }] : version.authors;
      const row = h('button', {
        type: 'button', class: 'pal-history__version', 'data-testid': 'history-version', 'data-seq': version.toSeq,
        'aria-current': selected?.toSeq === version.toSeq ? 'true' : undefined,
      },
      h('span', { class: 'pal-history__when' }, live ? `Now · since ${timeLabel(version.startedAt)}` : timeLabel(version.endedAt)),
      version.name === null ? null : h('span', { class: 'pal-history__name', 'data-testid': 'history-name' }, version.name),
      h('span', { class: 'pal-history__authors' }, ...authors.map((author) => {
        const name = authorName(author);
        return h('span', { class: 'pal-history__author' },
          h('span', { class: 'pal-history__dot', style: `background-color: ${colourForName(name)}`, 'aria-hidden': 'true' }), name);
      })),
      h('span', { class: 'pal-history__summary' }, summary(version)));
      row.addEventListener('click', () => void select(version, index));
      return h('li', {}, row);
    }));
  }

  function renderRuns(authorship: Authorship, mode: 'changes' | 'authors'): HTMLElement {
    const body = h('div', { class: 'pal-history-view__text pal-prose' });
    for (const block of authorship.blocks) {
      const tag = /^heading/.test(block.type) ? 'h3' : 'p';
      const paragraph = h(tag, { class: block.change ? `pal-history-view__block--${block.change}` : undefined });
      for (const run of block.runs) {
        if (mode === 'changes' && run.change !== undefined) {
          paragraph.append(h(run.change === 'inserted' ? 'ins' : 'del', { 'data-change': run.change }, run.text));
        } else if (mode === 'authors') {
          const name = run.author ?? 'Unknown';
          paragraph.append(h('span', {
            class: 'pal-history-view__by', 'data-author': name, title: name,
            style: `background-color: color-mix(in srgb, ${colourForName(name)} 28%, transparent)`,
          }, run.text));
        } else {
          paragraph.append(run.text);
        }
      }
      body.append(paragraph);
    }
    return body;
  }

  function backButton(): HTMLButtonElement {
    const back = h('button', { type: 'button', class: 'pal-history__tool' }, 'Back to the live document');
    back.addEventListener('click', () => showLive());
    return back;
  }

  async function select(version: Version, index: number): Promise<void> {
    selected = version;
    stopColours();
    authorshipToggle.setAttribute('aria-pressed', 'false');
    renderList();
    const previous = versions[index + 1];
    const since = previous?.toSeq ?? version.fromSeq - 1;
    view.replaceChildren(h('p', { class: 'pal-history__status' }, 'Loading…'));
    options.showPreview(view);
    let authorship: Authorship;
    try {
      authorship = await request<Authorship>(`/authorship?at=${version.toSeq}&since=${since}`);
    } catch (error) {
      view.replaceChildren(h('p', { class: 'pal-history__status', role: 'alert' }, `Could not load this version: ${(error as Error).message}`), backButton());
      return;
    }
    if (selected !== version) return;
    const restore = h('button', { type: 'button', class: 'pal-history__restore', 'data-testid': 'history-restore', disabled: readOnly }, 'Restore this version');
    const note = h('p', { class: 'pal-history__status', role: 'status' }, readOnly ? 'Restoring needs write access to this document.' : '');
    const confirmArea = h('div', { class: 'pal-history__confirm', hidden: true });
    restore.addEventListener('click', () => {
      if (readOnly) return;
      const confirm = h('button', { type: 'button', class: 'pal-history__restore', 'data-testid': 'history-restore-confirm' }, 'Yes, restore');
      const cancel = h('button', { type: 'button', class: 'pal-history__tool' }, 'Cancel');
      confirmArea.replaceChildren(
        h('p', {}, `Everyone editing will see the document as it was at ${timeLabel(version.endedAt)}. Later changes stay in the history.`),
        confirm, cancel);
      confirmArea.hidden = false;
      cancel.addEventListener('click', () => {
        confirmArea.hidden = true;
        restore.focus();
      });
      confirm.addEventListener('click', () => void restoreTo(version, note, confirm));
      confirm.focus();
    });
    const nameInput = h('input', { type: 'text', class: 'pal-history__name-input', placeholder: 'Name this version', 'aria-label': 'Name this version', maxlength: 200, value: version.name ?? '', disabled: readOnly });
    const nameSave = h('button', { type: 'button', class: 'pal-history__tool', disabled: readOnly }, 'Save name');
    nameSave.addEventListener('click', () => void nameVersion(version, nameInput.value, note));
    view.replaceChildren(
      h('div', { class: 'pal-history-view__bar' },
        h('strong', {}, version.name ?? `Version of ${timeLabel(version.endedAt)}`),
        h('span', { class: 'pal-history-view__legend' }, h('ins', {}, 'added'), ' ', h('del', {}, 'removed'), ' since the version before'),
        backButton()),
      h('div', { class: 'pal-history-view__preview', 'data-testid': 'history-preview', 'data-seq': version.toSeq, 'aria-readonly': 'true' },
        renderRuns(authorship, 'changes')),
      h('div', { class: 'pal-history-view__actions' }, restore, h('span', { class: 'pal-history__naming' }, nameInput, nameSave)),
      confirmArea, note);
  }

  async function restoreTo(version: Version, note: HTMLElement, confirm: HTMLButtonElement): Promise<void> {
    confirm.disabled = true;
    try {
      await request('/restore', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ seq: version.toSeq, displayName: options.userName }),
      });
      showLive();
      await refresh();
    } catch (error) {
      note.textContent = `Could not restore: ${(error as Error).message}`;
      confirm.disabled = false;
    }
  }

  async function nameVersion(version: Version, name: string, note: HTMLElement): Promise<void> {
    try {
      await request('/versions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ seq: version.toSeq, name }) });
      note.textContent = 'Name saved.';
      await refresh();
    } catch (error) {
      note.textContent = `Could not save the name: ${(error as Error).message}`;
    }
  }

  // Colour by author on the live text: client ids named by the server (who logged what) and by the people connected now.
  let serverNames = new Map<number, string>();
  let namesFetchedAt = 0;
  let legendTimer: ReturnType<typeof setTimeout> | null = null;

  function clientNames(): Map<number, string> {
    const names = new Map(serverNames);
    for (const [client, state] of options.awareness?.getStates() ?? []) {
      const user = state['user'] as { name?: unknown } | undefined;
      if (!names.has(client) && typeof user?.name === 'string') names.set(client, user.name);
    }
    names.set(options.ydoc.clientID, options.userName);
    return names;
  }

  function applyColours(): void {
    if (!authorshipOn || options.colourByAuthor === undefined) return;
    const shown = options.colourByAuthor(clientNames());
    legend.replaceChildren(...shown.map((name) => h('li', { 'data-author': name },
      h('span', { class: 'pal-history__dot', style: `background-color: ${colourForName(name)}`, 'aria-hidden': 'true' }), name)));
    legend.hidden = shown.length === 0;
    // Text by a client nobody has named yet: ask the server again (at most every few seconds).
    if (shown.includes('Unknown') && Date.now() - namesFetchedAt > 3000) void fetchNames();
  }

  async function fetchNames(): Promise<void> {
    namesFetchedAt = Date.now();
    try {
      const answer = await request<{ clients: Array<{ client: number; user: string | null; displayName: string | null }> }>('/authors');
      serverNames = new Map(answer.clients.map((c) => [c.client, authorName(c)]));
    } catch (error) {
      status.textContent = `Could not load the authors: ${(error as Error).message}`;
    }
    applyColours();
  }

  function stopColours(): void {
    authorshipOn = false;
    options.colourByAuthor?.(null);
    legend.hidden = true;
  }

  async function showAuthorship(): Promise<void> {
    if (options.colourByAuthor !== undefined) {
      // The live text itself is coloured; a preview on screen gives way to it.
      selected = null;
      renderList();
      options.showPreview(null);
      legend.hidden = false;
      await fetchNames();
      return;
    }
    selected = null;
    renderList();
    view.replaceChildren(h('p', { class: 'pal-history__status' }, 'Loading…'));
    options.showPreview(view);
    try {
      const authorship = await request<Authorship>('/authorship');
      if (!authorshipOn) return;
      const runsLegend = h('ul', { class: 'pal-history-view__authors', 'data-testid': 'authorship-legend', 'aria-label': 'Authors' },
        ...authorship.authors.map((entry) => {
          const name = entry.author ?? 'Unknown';
          return h('li', { 'data-author': name },
            h('span', { class: 'pal-history__dot', style: `background-color: ${colourForName(name)}`, 'aria-hidden': 'true' }),
            `${name} · ${entry.characters} characters`);
        }));
      view.replaceChildren(
        h('div', { class: 'pal-history-view__bar' }, h('strong', {}, 'Who wrote what'), backButton()),
        runsLegend,
        h('div', { class: 'pal-history-view__preview', 'data-testid': 'authorship-view' }, renderRuns(authorship, 'authors')));
    } catch (error) {
      view.replaceChildren(h('p', { class: 'pal-history__status', role: 'alert' }, `Could not load authorship: ${(error as Error).message}`), backButton());
    }
  }

  function showLive(): void {
    selected = null;
    stopColours();
    authorshipToggle.setAttribute('aria-pressed', 'false');
    options.showPreview(null);
    renderList();
  }

  function setOpen(next: boolean): void {
    open = next;
    element.hidden = !open;
    toggle.setAttribute('aria-expanded', String(open));
    if (open) {
      void refresh();
      close.focus();
    } else {
      showLive();
      toggle.focus();
    }
  }

  toggle.addEventListener('click', () => setOpen(!open));
  close.addEventListener('click', () => setOpen(false));
  element.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') setOpen(false);
  });
  authorshipToggle.addEventListener('click', () => {
    authorshipOn = !authorshipOn;
    authorshipToggle.setAttribute('aria-pressed', String(authorshipOn));
    if (authorshipOn) void showAuthorship();
    else showLive();
  });
  // The top entry follows typing: the list is read again once changes pause
  // (so the last keystroke's append has committed), and every few seconds
  // while someone keeps typing.
  let pendingSince = 0;
  const ydocOnUpdate = (): void => {
    if (!open) return;
    if (authorshipOn && legendTimer === null) {
      legendTimer = setTimeout(() => {
        legendTimer = null;
        applyColours();
      }, 300);
    }
    if (refreshTimer === null) pendingSince = Date.now();
    else if (Date.now() - pendingSince > 3000) return;
    else clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      void refresh();
    }, 700);
  };
  options.ydoc.on('update', ydocOnUpdate);

  return {
    toggle,
    element,
    setReadOnly(value) {
      readOnly = value;
    },
    destroy() {
      destroyed = true;
      if (refreshTimer !== null) clearTimeout(refreshTimer);
      if (legendTimer !== null) clearTimeout(legendTimer);
      options.ydoc.off('update', ydocOnUpdate);
      element.remove();
      view.remove();
    },
  };
}
