// Errors the event store raises, each with a stable code that the CLI and
// server map to exit codes, HTTP statuses and close codes.

export type StoreErrorCode =
  | 'STORE_OPEN_FAILED'
  | 'STORE_WRITE_FAILED'
  /** A read could not reach the database (PostgreSQL down or unreachable). */
  | 'STORE_UNAVAILABLE'
  | 'STORE_CLOSED'
  | 'UNKNOWN_SEQ'
  | 'HISTORY_PRUNED';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}
