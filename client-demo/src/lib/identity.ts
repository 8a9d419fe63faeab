// Who is editing and what they are editing: document-name rules, display
// names and caret colours. Pure functions, shared by the demo page, the
// mountEditor API and the <palimpsest-editor> element.

/** The server's document-name contract (see ARCHITECTURE.md, "Document names"). */
const DOCUMENT_NAME = /^[A-Za-z0-9._~:-][A-Za-z0-9._~:/-]{0,254}$/;

export function isValidDocumentName(name: string): boolean {
  return DOCUMENT_NAME.test(name);
}

/** Explains why a name is refused, in words a person can act on; null when it is fine. */
export function documentNameProblem(name: string): string | null {
  if (name.length === 0) return 'The document name is empty.';
  if (name.length > 255) return 'The document name is longer than 255 characters.';
  if (name.startsWith('/')) return 'The document name must not start with "/".';
  if (!isValidDocumentName(name)) {
    return 'The document name may only contain letters, digits and . _ ~ : / -';
  }
  return null;
}

/** A fresh, unguessable-enough document name such as `note-k3v9x2pq`. */
export function randomDocumentName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  const alphabet = 'abcdefghijkmnpqrstuvwxyz23456789';
  let suffix = '';
  for (const byte of bytes) suffix += alphabet[byte % alphabet.length];
  return `note-${suffix}`;
}

// Caret colours chosen so that white label text on them stays readable
// (contrast ratio of at least 4.5:1 against #fff).
const CARET_COLOURS = [
  '#c2410c', '#b45309', '#4d7c0f', '#047857', '#0e7490', '#1d4ed8',
  '#6d28d9', '#a21caf', '#be123c', '#0f766e', '#4338ca', '#9d174d',
] as const;

/** The same name always gets the same colour, so people stay recognisable across reloads. */
export function colourForName(name: string): string {
  let hash = 2166136261;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return CARET_COLOURS[(hash >>> 0) % CARET_COLOURS.length] ?? CARET_COLOURS[0];
}

const ADJECTIVES = ['Amber', 'Brisk', 'Calm', 'Deft', 'Eager', 'Fable', 'Gentle', 'Hazel', 'Ivory', 'Jolly', 'Keen', 'Lucid'];
const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Marten', 'Puffin', 'Ibex', 'Wren', 'Fox', 'Crane', 'Badger', 'Stoat', 'Finch'];

/** A friendly placeholder name for someone who did not give one. */
export function randomDisplayName(): string {
  const [a = 0, b = 0] = crypto.getRandomValues(new Uint8Array(2));
  return `${ADJECTIVES[a % ADJECTIVES.length]} ${ANIMALS[b % ANIMALS.length]}`;
}

/** One or two letters for an avatar: "Ada Lovelace" → "AL", "grace" → "G". */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((word) => Array.from(word ?? '')[0]?.toUpperCase() ?? '').join('') || '?';
}

/** A CSS colour we are willing to put into inline styles; anything else falls back. */
export function safeColour(colour: unknown, fallback: string): string {
  return typeof colour === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(colour) ? colour : fallback;
}
