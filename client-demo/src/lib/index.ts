// Public entry of the embeddable editor (built to palimpsest-editor.js).
// Importing it registers <palimpsest-editor>; mountEditor is the same editor
// for pages that prefer to create it from JavaScript.

import { definePalimpsestEditor } from './element.ts';

export { defaultServerUrl, type ConnectionState } from './connection.ts';
export { definePalimpsestEditor, PalimpsestEditorElement } from './element.ts';
export { documentNameProblem, isValidDocumentName, randomDisplayName, randomDocumentName } from './identity.ts';
export {
  type EditorUser,
  FRAGMENT_NAME,
  InvalidDocumentNameError,
  localDatabaseName,
  type MountedEditor,
  mountEditor,
  type MountOptions,
} from './mount.ts';

// Registering is the point of loading the bundle with a <script> tag; the
// guard keeps the module importable where there is no DOM (type checks, SSR).
if (typeof customElements !== 'undefined') definePalimpsestEditor();
