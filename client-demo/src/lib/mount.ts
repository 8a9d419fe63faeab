// mountEditor: the whole embeddable editor in one call. It wires one Y.Doc to
// three things: IndexedDB (edits survive reloads and offline spells), a
// Palimpsest server (via connection.ts), and a Tiptap editor bound to the
// `default` XML fragment, plus the chrome around it (presence, toolbar, status).

import type { HocuspocusProvider } from '@hocuspocus/provider';
import { Editor } from '@tiptap/core';
import Collaboration from '@tiptap/extension-collaboration';
import CollaborationCaret from '@tiptap/extension-collaboration-caret';
import { IndexeddbPersistence } from 'y-indexeddb';
import * as Y from 'yjs';
import { authorColours, coloursShown, setClientNames } from './author-colours.ts';
import { CaretInEmptyBlock } from './caret-in-empty-block.ts';
import { CaretLabelsInside } from './caret-labels.ts';
import { type Connection, defaultServerUrl, openConnection } from './connection.ts';
import { h } from './dom.ts';
import { colourForName, documentNameProblem, randomDisplayName, safeColour } from './identity.ts';
import { createHistoryPanel, type HistoryPanel } from './history-panel.ts';
import { createPresenceList } from './presence.ts';
import { createStatusBar } from './status-bar.ts';
import { createToolbar } from './toolbar.ts';
import { keepUnloadBackup } from './unload-backup.ts';
import { EDITOR_FIELD, editorSchemaExtensions } from '../../../server/editor-schema.ts';
import './styles.css';

/**
 * The Yjs shared type the editor writes to. Server-side code and tests read
 * `ydoc.getXmlFragment('default')`; changing it orphans every stored document.
 * Defined with the schema in server/editor-schema.ts, which the server's
 * content API reads too.
 */
export const FRAGMENT_NAME = EDITOR_FIELD;

export interface EditorUser {
  name: string;
  /** A CSS hex colour for the caret and avatar; derived from the name when left out. */
  color?: string | undefined;
}

export interface MountOptions {
  /** Palimpsest WebSocket URL; defaults to the page's own origin (ws: or wss:). */
  url?: string | undefined;
  /** Document name: 1–255 characters of [A-Za-z0-9._~:/-], not starting with "/". */
  document: string;
  /** A JWT sent to the server when the socket opens. */
  token?: string | undefined;
  user?: EditorUser | undefined;
  /** Start in "work offline" mode: no socket until the switch is turned off. */
  offline?: boolean | undefined;
  /**
   * For a name just invented for a new document: the server hears of the
   * document only at the first edit (or `openOnServer()`), so a visit that
   * writes nothing leaves no document behind. The socket opens as usual.
   * Not for documents that may already hold text: nothing is loaded from the
   * server until then.
   */
  deferUntilFirstEdit?: boolean | undefined;
  /** The History panel (versions, preview, restore, authorship); on unless false. */
  history?: boolean | undefined;
}

export interface MountedEditor {
  provider: HocuspocusProvider;
  ydoc: Y.Doc;
  editor: Editor;
  /** The local copy in IndexedDB, or null where the browser offers no IndexedDB. */
  persistence: IndexeddbPersistence | null;
  /** Same as flipping the "Work offline" switch. */
  setOffline(offline: boolean): void;
  /** Opens the document on the server now when `deferUntilFirstEdit` is holding it back; else does nothing. */
  openOnServer(): void;
  /** Disconnects, stops persisting, and removes everything mountEditor added to the element. */
  destroy(): void;
}

/** Thrown (before anything is mounted) for a document name the server would refuse. */
export class InvalidDocumentNameError extends Error {
  override name = 'InvalidDocumentNameError';
  readonly code = 'INVALID_DOCUMENT_NAME';
}

/** The IndexedDB database that holds the local copy of a document. */
export function localDatabaseName(documentName: string): string {
  return `palimpsest:${documentName}`;
}

/**
 * Another person's caret. The name label is drawn by CSS from data-name
 * rather than as a text node: the caret sits inside the contenteditable, and a
 * text node would make peers' names part of the editor's text (textContent,
 * innerText, copy) for scripts, tests and assistive technology.
 */
function renderCaret(user: Record<string, unknown>): HTMLElement {
  const name = typeof user['name'] === 'string' ? user['name'] : 'Someone';
  const color = safeColour(user['color'], colourForName(name));
  const label = h('span', { class: 'collaboration-carets__label', 'data-name': name, style: `background-color: ${color}` });
  return h('span', { class: 'collaboration-carets__caret', 'aria-hidden': 'true', style: `border-color: ${color}` }, label);
}

function openLocalCopy(documentName: string, ydoc: Y.Doc): IndexeddbPersistence | null {
  try {
    return new IndexeddbPersistence(localDatabaseName(documentName), ydoc);
  } catch (error) {
    // Some private-browsing modes refuse IndexedDB outright. The editor still
    // works online; it just cannot keep edits across a reload while offline.
    console.warn(`[palimpsest] no local copy of "${documentName}": IndexedDB is unavailable`, error);
    return null;
  }
}

export function mountEditor(element: HTMLElement, options: MountOptions): MountedEditor {
  const problem = documentNameProblem(options.document);
  if (problem) throw new InvalidDocumentNameError(`${problem} (got ${JSON.stringify(options.document)})`);

  const name = options.user?.name?.trim() || randomDisplayName();
  const user = { name, color: safeColour(options.user?.color, colourForName(name)) };

  const ydoc = new Y.Doc();
  const persistence = openLocalCopy(options.document, ydoc);
  // Restored synchronously, before IndexedDB opens, so y-indexeddb's first
  // write (the whole current state) already includes it.
  const unloadBackup = keepUnloadBackup(options.document, ydoc, () => provider.hasUnsyncedChanges);
  void persistence?.whenSynced.then(() => unloadBackup.discardRestored());
  const connection: Connection = openConnection({
    url: options.url ?? defaultServerUrl(),
    document: options.document,
    ydoc,
    token: options.token,
    offline: options.offline,
    deferUntilFirstEdit: options.deferUntilFirstEdit,
  });
  const { provider } = connection;

  const surface = h('div', { class: 'pal-surface' });
  const editor = new Editor({
    element: surface,
    extensions: [
      // The schema (StarterKit without its undo history: undo/redo comes from the
      // Collaboration extension, which only undoes this user's own changes).
      ...editorSchemaExtensions(),
      Collaboration.configure({ document: ydoc, field: FRAGMENT_NAME }),
      // Your caret stays put when others type into the empty paragraph holding it.
      CaretInEmptyBlock,
      CollaborationCaret.configure({ provider, user, render: renderCaret }),
      CaretLabelsInside,
      authorColours(ydoc.getXmlFragment(FRAGMENT_NAME)),
    ],
    editorProps: {
      // data-testid="editor" sits on the contenteditable itself (.ProseMirror),
      // so tests can click, type into and read it directly.
      attributes: {
        class: 'pal-prose',
        'data-testid': 'editor',
        role: 'textbox',
        'aria-multiline': 'true',
        'aria-label': `Text of ${options.document}`,
        spellcheck: 'true',
      },
    },
  });

  const toolbar = createToolbar(editor);
  const presence = createPresenceList(provider);
  const statusBar = createStatusBar(connection);
  const notice = h('p', { class: 'pal-notice', role: 'alert', hidden: true });
  const serverUrl = new URL(options.url ?? defaultServerUrl());
  const history: HistoryPanel | null = options.history === false ? null : createHistoryPanel({
    apiOrigin: `${serverUrl.protocol === 'wss:' ? 'https:' : serverUrl.protocol === 'ws:' ? 'http:' : serverUrl.protocol}//${serverUrl.host}`,
    document: options.document,
    token: options.token,
    userName: name,
    ydoc,
    awareness: provider.awareness,
    colourByAuthor(names) {
      setClientNames(editor, names);
      return coloursShown(editor);
    },
    // A preview stands in for the editing surface; the editor keeps syncing underneath.
    showPreview(view) {
      surface.hidden = view !== null;
      if (view === null) {
        body.querySelector('.pal-history-view')?.remove();
      } else if (!view.isConnected) {
        surface.after(view);
      }
    },
  });
  const body = h('div', { class: 'pal-body' }, surface, history?.element);

  const root = h('div', { class: 'pal-editor', 'data-connection': connection.state },
    h('header', { class: 'pal-header' },
      h('div', { class: 'pal-doc' },
        h('span', { class: 'pal-doc__label' }, 'Document'),
        h('span', { class: 'pal-doc__name', 'data-testid': 'doc-name', title: options.document }, options.document)),
      presence.element,
      history?.toggle),
    toolbar.element,
    notice,
    body,
    statusBar.element);

  const stopWatchingState = connection.onStateChange((state) => {
    root.dataset['connection'] = state;
  });
  const providerOnAuthenticationFailed = ({ reason }: { reason: string }): void => {
    notice.textContent = `The server refused access to this document: ${reason || 'no reason given'}.`;
    notice.hidden = false;
  };
  // A read-only token: the server refuses every write (SyncStatus 0, which the
  // provider never counts as synced), so the editor must not make local changes.
  const providerOnAuthenticated = ({ scope }: { scope: string }): void => {
    const readOnly = scope === 'readonly';
    editor.setEditable(!readOnly);
    history?.setReadOnly(readOnly);
    notice.textContent = readOnly ? 'You can read this document but not edit it.' : '';
    notice.hidden = !readOnly;
  };
  provider.on('authenticationFailed', providerOnAuthenticationFailed);
  provider.on('authenticated', providerOnAuthenticated);

  element.append(root);

  let destroyed = false;
  return {
    provider,
    ydoc,
    editor,
    persistence,
    setOffline(offline) {
      if (offline === connection.workingOffline) return;
      if (offline) connection.goOffline();
      else connection.goOnline();
    },
    openOnServer() {
      connection.openDocument();
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      stopWatchingState();
      provider.off('authenticationFailed', providerOnAuthenticationFailed);
      provider.off('authenticated', providerOnAuthenticated);
      toolbar.destroy();
      history?.destroy();
      presence.destroy();
      statusBar.destroy();
      unloadBackup.destroy();
      editor.destroy();
      connection.destroy();
      // Closes the database without deleting it: the local copy outlives the view.
      void persistence?.destroy();
      ydoc.destroy();
      root.remove();
    },
  };
}
