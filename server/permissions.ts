// Per-document permissions carried by a token's `docs` claim:
//
//   "docs": { "team-a/*": "write", "public/*": "read", "team-a/payroll": "none" }
//
// Keys are document names or patterns where `*` stands for any run of
// characters, `/` included ("team-a/*" covers "team-a/x/y"). For a document
// the most specific matching key wins: an exact name beats any pattern, a
// longer pattern beats a shorter one, and on a tie the lesser access wins, so
// adding a rule can only narrow what an equally specific rule grants. A
// document no key matches is not accessible. SECURITY.md documents the format.

export type Access = 'write' | 'read' | 'none';

export interface PermissionRule {
  pattern: string;
  access: Access;
  /** Null for an exact name. */
  regex: RegExp | null;
}

const MAX_WILDCARDS = 8;

const ACCESS_RANK: Record<Access, number> = { none: 0, read: 1, write: 2 };

export class PermissionClaimError extends Error {
  readonly code = 'INVALID_PERMISSION_CLAIM';
  constructor(message: string) {
    super(message);
    this.name = 'PermissionClaimError';
  }
}

/** Reads a `docs` claim; throws PermissionClaimError when it is not an object of pattern → access. */
export function parsePermissionClaim(claim: unknown): PermissionRule[] {
  if (claim === undefined) return [];
  if (claim === null || typeof claim !== 'object' || Array.isArray(claim)) {
    throw new PermissionClaimError('the "docs" claim must be an object mapping document patterns to "write", "read" or "none"');
  }
  const rules: PermissionRule[] = [];
  for (const [pattern, access] of Object.entries(claim as Record<string, unknown>)) {
    if (access !== 'write' && access !== 'read' && access !== 'none') {
      throw new PermissionClaimError(`the "docs" claim gives "${pattern}" the access ${JSON.stringify(access)}; use "write", "read" or "none"`);
    }
    if (pattern.length === 0 || pattern.length > 1024) throw new PermissionClaimError('a "docs" pattern must be 1-1024 characters');
    // Tokens are signed, but a pattern with many wildcards still costs backtracking per match.
    if (pattern.split(/\*+/).length - 1 > MAX_WILDCARDS) {
      throw new PermissionClaimError(`a "docs" pattern may hold at most ${MAX_WILDCARDS} wildcards`);
    }
    rules.push({ pattern, access, regex: pattern.includes('*') ? patternToRegex(pattern) : null });
  }
  return rules;
}

/** The access `rules` give to `documentName` ('none' when no rule matches). */
export function accessTo(rules: readonly PermissionRule[], documentName: string): Access {
  let best: PermissionRule | null = null;
  for (const rule of rules) {
    const matches = rule.regex === null ? rule.pattern === documentName : rule.regex.test(documentName);
    if (!matches) continue;
    if (best === null || moreSpecific(rule, best)) best = rule;
  }
  return best?.access ?? 'none';
}

/**
 * True when `rules` give at least `access` to every possible document: a `*`
 * rule with that access and no rule that narrows it. Listing all documents and
 * reading /metrics from afar need this.
 */
export function grantsEverything(rules: readonly PermissionRule[], access: Exclude<Access, 'none'>): boolean {
  const everything = rules.find((rule) => rule.pattern === '*');
  if (everything === undefined || ACCESS_RANK[everything.access] < ACCESS_RANK[access]) return false;
  return rules.every((rule) => ACCESS_RANK[rule.access] >= ACCESS_RANK[access]);
}

export function atLeast(granted: Access, wanted: Access): boolean {
  return ACCESS_RANK[granted] >= ACCESS_RANK[wanted];
}

function moreSpecific(candidate: PermissionRule, current: PermissionRule): boolean {
  const candidateExact = candidate.regex === null;
  const currentExact = current.regex === null;
  if (candidateExact !== currentExact) return candidateExact;
  if (candidate.pattern.length !== current.pattern.length) return candidate.pattern.length > current.pattern.length;
  return ACCESS_RANK[candidate.access] < ACCESS_RANK[current.access];
}

function patternToRegex(pattern: string): RegExp {
  // Literal parts are escaped; runs of `*` collapse so "a**b" cannot backtrack badly.
  const body = pattern.split(/\*+/).map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${body}$`, 's');
}
