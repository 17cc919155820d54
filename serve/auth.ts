/**
 * Optional bearer-token auth: tokens from a file (one per line, # comments), compared in constant
 * time (SHA-256 digests of equal length through timingSafeEqual, so neither content nor length leaks).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { UserError } from '../core/errors';

export function readTokens(file: string): Buffer[] {
  if (!fs.existsSync(file)) throw new UserError(`Token file ${file} not found.`, 'Pass --token-file <file with one token per line>.');
  const tokens = fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (tokens.length === 0) throw new UserError(`Token file ${file} holds no token.`, 'Write one token per line (lines starting with # are comments).');
  return tokens.map(digest);
}

const digest = (t: string) => createHash('sha256').update(t).digest();

/** Whether an Authorization header carries one of the tokens. Every token is compared (no early exit). */
export function authorised(header: string | undefined, tokens: Buffer[]): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const got = digest(m ? m[1] : '');
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(got, t) || ok;
  return ok && Boolean(m);
}
