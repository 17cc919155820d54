/**
 * Errors a user can act on: what is wrong, and the fix, in one sentence each.
 * Callers (CLI, server) print `message` without a stack trace for these.
 */
export class UserError extends Error {
  constructor(problem: string, readonly fix?: string) {
    super(fix ? `${problem} ${fix}` : problem);
    this.name = 'UserError';
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
