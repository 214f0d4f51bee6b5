/**
 * The shell blocks of the runbooks, and how the runbook test runs them.
 *
 * A ```sh (or ```bash) block runs as written against the local platform. A block whose
 * info string is `sh cluster-only: <reason>` needs a real cluster or AWS (pods, nodes,
 * RDS): it is syntax-checked with `bash -n`, and its Herald commands run locally where
 * they exist there: `kubectl` on Herald's own resources (Broadcasts, Releases; a write is
 * sent with --dry-run=server, so the API server and the CRD's schema judge it without
 * changing anything; a watch is one listing) and `npm run <script>` (the script must be
 * in package.json).
 */
import { readFileSync } from 'node:fs';

export interface ShellBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  /** The reason it runs only on a cluster, when it does. */
  clusterOnly?: string;
}

const FENCE = /^```(\S*)\s*(.*)$/;

/** Every sh/bash block of a Markdown file; a cluster-only block without its reason is an error. */
export function shellBlocks(file: string, text = readFileSync(file, 'utf8')): ShellBlock[] {
  const blocks: ShellBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const [, lang, info] = open;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`${file}:${start + 1}: code block never closed`);
    if (lang !== 'sh' && lang !== 'bash') continue;
    const block: ShellBlock = { file, line: start + 1, code: body.join('\n') + '\n' };
    const tag = /^cluster-only(?::\s*(.*))?$/.exec(info!.trim());
    if (tag) {
      if (!tag[1]?.trim()) throw new Error(`${file}:${start + 1}: a cluster-only block needs its reason (\`\`\`sh cluster-only: <why>)`);
      block.clusterOnly = tag[1].trim();
    } else if (info!.trim()) {
      throw new Error(`${file}:${start + 1}: unknown info string "${info}" (only "cluster-only: <reason>")`);
    }
    blocks.push(block);
  }
  return blocks;
}

/** Shell lines joined over trailing backslashes, without comments and blank lines. */
export function commandLines(code: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const raw of code.split('\n')) {
    const line = raw.replace(/^\s+/, '');
    if (!cur && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      cur += line.slice(0, -1).trimEnd() + ' ';
      continue;
    }
    out.push((cur + line).trim());
    cur = '';
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** The Herald resources a kubectl line may name for it to be run locally from a cluster-only block. */
const HERALD_KINDS = /^(broadcasts?|bc|releases?|rel)(\.herald\.dev)?(\/.+)?$/;
const READ_VERBS = new Set(['get', 'describe', 'explain', 'wait']);
const WRITE_VERBS = new Set(['apply', 'patch', 'annotate', 'label', 'delete', 'create', 'replace']);

/** A kubectl command line (run by bash, so quotes and $(...) work as written), or an npm script's name. */
export type LocalCommand = { kind: 'kubectl'; command: string } | { kind: 'npm-script'; script: string };

/**
 * The Herald commands of a cluster-only block to run locally: kubectl lines on Broadcasts
 * or Releases (writes made --dry-run=server), and npm scripts. A line that pipes or uses
 * shell syntax is taken up to its first `|`, `;`, `&&`, or `>`.
 */
export function localCommands(code: string): LocalCommand[] {
  const out: LocalCommand[] = [];
  for (const line of commandLines(code)) {
    const head = line.split(/\s(?:\||;|&&|\|\||>)\s/)[0]!;
    const words = shellWords(head);
    if (words[0] === 'npm' && (words[1] === 'run' || words[1] === 'run-script') && words[2]) {
      out.push({ kind: 'npm-script', script: words[2] });
      continue;
    }
    if (words[0] !== 'kubectl') continue;
    const args = words.slice(1);
    const verb = args.find((a) => !a.startsWith('-') && !isFlagValue(args, a));
    const names = args.filter((a) => !a.startsWith('-'));
    if (!verb || !names.some((a) => HERALD_KINDS.test(a))) continue;
    // A watch (-w) never ends by itself: locally it is one listing.
    if (READ_VERBS.has(verb)) out.push({ kind: 'kubectl', command: head.replace(/\s(-w|--watch)(?=\s|$)/g, '') });
    else if (WRITE_VERBS.has(verb)) out.push({ kind: 'kubectl', command: `${head} --dry-run=server` });
  }
  return out;
}

// Flags of kubectl that take a separate value (`-n herald-system`).
const VALUED = new Set(['-n', '--namespace', '-o', '--output', '-l', '--selector', '-p', '--patch', '--type', '-f', '--filename', '--for', '--timeout', '--field-selector']);
function isFlagValue(args: string[], a: string): boolean {
  const i = args.indexOf(a);
  return i > 0 && VALUED.has(args[i - 1]!);
}

/** Words of one shell command: single and double quotes kept together (no expansion). */
export function shellWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let any = false;
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      any = true;
    } else if (/\s/.test(ch)) {
      if (cur || any) words.push(cur);
      cur = '';
      any = false;
    } else cur += ch;
  }
  if (cur || any) words.push(cur);
  return words;
}
