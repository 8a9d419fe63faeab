// Document names: 1-255 characters of [A-Za-z0-9._~:/-], not starting with
// '/'. The same rule guards WebSocket frames, the /yjs/ path, the REST API
// and the CLI, so a name that is stored can always be addressed again.

const DOCUMENT_NAME = /^[A-Za-z0-9._~:-][A-Za-z0-9._~:/-]{0,254}$/;

/** Returns why `name` is not a valid document name, or null when it is. */
export function documentNameProblem(name: string): string | null {
  if (name.length === 0) return 'the document name is empty';
  if (name.length > 255) return `the document name is ${name.length} characters long; at most 255 are allowed`;
  if (name.startsWith('/')) return 'the document name must not start with "/"';
  if (!DOCUMENT_NAME.test(name)) return 'the document name may only contain A-Z a-z 0-9 . _ ~ : / -';
  return null;
}
