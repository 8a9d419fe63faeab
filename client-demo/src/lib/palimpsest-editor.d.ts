// Type declarations for palimpsest-editor.js, the embeddable Palimpsest editor.
// Kept by hand next to src/lib/index.ts (whose exports it mirrors) and copied
// into the library build. The provider, Y.Doc and editor types come from
// @hocuspocus/provider, yjs and @tiptap/core; install them to use those types.

import type { HocuspocusProvider } from '@hocuspocus/provider';
import type { Editor } from '@tiptap/core';
import type { IndexeddbPersistence } from 'y-indexeddb';
import type * as Y from 'yjs';

/** `new`: a document held back by `deferUntilFirstEdit` (no socket until the first edit). */
export type ConnectionState = 'connected' | 'connecting' | 'offline' | 'new';

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
  /** Display name and caret colour; a random friendly name when left out. */
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

/** The Yjs XML fragment holding the text: `ydoc.getXmlFragment('default')`. */
export declare const FRAGMENT_NAME: 'default';

/** Mounts the editor (header, toolbar, text, status bar) as the last child of `element`. */
export declare function mountEditor(element: HTMLElement, options: MountOptions): MountedEditor;

/** Thrown by mountEditor, before anything is mounted, for a name the server would refuse. */
export declare class InvalidDocumentNameError extends Error {
  readonly code: 'INVALID_DOCUMENT_NAME';
}

/** The IndexedDB database that holds the local copy of a document (`palimpsest:<name>`). */
export declare function localDatabaseName(documentName: string): string;

/** `ws(s)://<page host>/`: where the editor connects when no `url` is given. */
export declare function defaultServerUrl(location?: Location): string;

export declare function isValidDocumentName(name: string): boolean;
/** Why a document name would be refused, or null when it is fine. */
export declare function documentNameProblem(name: string): string | null;
export declare function randomDocumentName(): string;
/** A friendly placeholder display name such as "Amber Otter". */
export declare function randomDisplayName(): string;

/**
 * <palimpsest-editor document="…" url="…" user="…" color="…" token="…" offline history="off">.
 * Fires `palimpsest-ready` (detail: MountedEditor) once mounted.
 */
export declare class PalimpsestEditorElement extends HTMLElement {
  static readonly observedAttributes: string[];
  readonly mounted: MountedEditor | null;
  readonly editor: Editor | null;
  readonly provider: HocuspocusProvider | null;
  readonly ydoc: Y.Doc | null;
}

/** Registers the element under `tagName` (default `palimpsest-editor`); importing the module already did. */
export declare function definePalimpsestEditor(tagName?: string): void;

declare global {
  interface HTMLElementTagNameMap {
    'palimpsest-editor': PalimpsestEditorElement;
  }
  interface HTMLElementEventMap {
    'palimpsest-ready': CustomEvent<MountedEditor>;
  }
}
