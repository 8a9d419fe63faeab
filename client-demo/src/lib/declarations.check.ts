// Compile-time only (never imported): fails the type check when the
// hand-written palimpsest-editor.d.ts drifts from what index.ts exports.

import type * as Actual from './index.ts';
import type * as Declared from './palimpsest-editor.d.ts';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Expect<T extends true> = T;

export type DeclarationsMatch = [
  Expect<Same<typeof Actual.mountEditor, typeof Declared.mountEditor>>,
  Expect<Same<Actual.MountOptions, Declared.MountOptions>>,
  Expect<Same<Actual.MountedEditor, Declared.MountedEditor>>,
  Expect<Same<Actual.EditorUser, Declared.EditorUser>>,
  Expect<Same<Actual.ConnectionState, Declared.ConnectionState>>,
  Expect<Same<typeof Actual.definePalimpsestEditor, typeof Declared.definePalimpsestEditor>>,
  Expect<Same<typeof Actual.documentNameProblem, typeof Declared.documentNameProblem>>,
  Expect<Same<typeof Actual.localDatabaseName, typeof Declared.localDatabaseName>>,
  Expect<Same<typeof Actual.randomDocumentName, typeof Declared.randomDocumentName>>,
  Expect<Same<typeof Actual.randomDisplayName, typeof Declared.randomDisplayName>>,
];
