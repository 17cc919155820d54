/** An error answered as JSON {error, hint} with its HTTP status (and headers, e.g. Retry-After). */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly hint: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}
