/**
 * What the command line says about itself: one command's part of the help text, the command names,
 * and a suggestion for a mistyped command or flag. Everything is read from the help text, so a
 * command or flag documented there is known here without a second list.
 */

/** The commands listed under "Commands:" in the help text. */
export function commandNames(help: string): string[] {
  const block = help.split(/\nCommands:\n/)[1]?.split(/\n\n/)[0] ?? '';
  return block.split('\n').map((l) => /^ {2}([a-z][\w-]*)\s/.exec(l)?.[1]).filter((x): x is string => Boolean(x));
}

/** The paragraphs of the help text that start with `i2i <cmd>` (a usage line and its description). */
export function commandHelp(help: string, cmd: string): string | undefined {
  const lines = help.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const l of lines) {
    if (/^i2i \S/.test(l) || /^\S/.test(l)) inside = l === `i2i ${cmd}` || l.startsWith(`i2i ${cmd} `);
    if (inside) out.push(l);
  }
  while (out.length && out[out.length - 1].trim() === '') out.pop();
  return out.length ? out.join('\n') + '\n' : undefined;
}

/** The --flags a command's help mentions. */
export function flagsOf(section: string): string[] {
  return [...new Set([...section.matchAll(/--([a-z][\w-]*)/g)].map((m) => m[1]))];
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      // A swap of neighbours ("trian") is one slip, not two.
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The nearest candidate (1 edit for words up to 3 letters, 2 up to 6, else 3), or one the word starts. */
export function suggest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, c);
    if (d < bestD) { best = c; bestD = d; }
  }
  return bestD <= (word.length <= 3 ? 1 : word.length <= 6 ? 2 : 3) ? best : undefined;
}
