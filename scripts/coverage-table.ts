/**
 * The kernel coverage table: which kernel functions the model covers, for which
 * versions, and where (DESIGN.md, "Doc comments").
 *
 * Scans src/kernel/**\/*.ts (not *.test.ts) for doc comments with an `@kernel` tag and
 * writes docs/coverage.md, a Markdown table sorted by kernel file, then function.
 *
 *   node dist/scripts/coverage-table.js           writes docs/coverage.md
 *   node dist/scripts/coverage-table.js --check   exits 1 if docs/coverage.md is stale
 *
 * Tag grammar (one doc-comment line, starting with `@kernel`):
 *
 *   @kernel <ref>[, <ref>]... [notes]
 *   ref   := <file>:<name>   a kernel function (or macro, struct, constant) in a file
 *          | <file>          the file as a whole
 *          | <name>          another name in the file of the previous ref
 *                            (`mm/gup.c:foo, bar` covers mm/gup.c:foo and mm/gup.c:bar)
 *   file  := a path with a `/` or a source extension (.c .h .S .rs .lds)
 *   name  := an identifier, possibly with `*` (TAINT_*) or `()`, or `struct <identifier>`
 *   notes := free text (versions, commits); one enclosing pair of parentheses is dropped.
 *
 * A tag continues on the following comment lines while they are indented (`*   more`),
 * the line ends with a comma, or a parenthesis is still open; a blank line or a line
 * starting with `@` ends it. The model column names the exported symbol the comment is
 * attached to (Class.method for methods), or only the file for a file-header comment.
 *
 * Uses only Node's standard library.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One `file[:name]` reference of a tag. */
export interface KernelRef {
  readonly file: string;
  /** The function (or other name) in the file; null when the tag names the file only. */
  readonly fn: string | null;
}

export interface ParsedTag {
  readonly refs: readonly KernelRef[];
  readonly notes: string;
}

/** A tag found in a model source file. */
export interface KernelTag extends ParsedTag {
  /** Path of the model file relative to the repository root, with `/` separators. */
  readonly modelFile: string;
  /** The symbol the doc comment documents; null for a file-header comment. */
  readonly symbol: string | null;
  /** 1-based line of the `@kernel` tag. */
  readonly line: number;
}

/** One row of the table. */
export interface CoverageRow {
  readonly kernelFile: string;
  readonly fn: string | null;
  readonly notes: string;
  readonly modelFile: string;
  readonly symbol: string | null;
}

export const OUTPUT = 'docs/coverage.md';
export const SOURCE_DIR = 'src/kernel';

const FILE_RE = /^(?:[\w.+-]+\/)+[\w.+-]+$|^[\w.+-]+\.(?:c|h|S|rs|lds)$/;
const NAME_RE = /^(?:struct\s+[A-Za-z_]\w*|[A-Za-z_][\w*]*(?:\(\))?)$/;
/** A candidate ref at the start of the string: `file:name`, `file`, or `name`. */
const REF_AT =
  /^(?:([\w.+/-]+):(struct\s+[A-Za-z_]\w*|[A-Za-z_][\w*]*(?:\(\))?)|([\w.+/-]+))(?=,|\s|$)/;

/**
 * Parses the text after `@kernel`: the refs, then free-form notes.
 * Returns no refs when the text does not start with a file reference.
 */
export function parseTagText(text: string): ParsedTag {
  const refs: KernelRef[] = [];
  let rest = text.trim();
  let lastFile: string | null = null;
  for (;;) {
    let ref: KernelRef | null = null;
    let len: number;
    const st: RegExpExecArray | null =
      lastFile !== null ? /^struct\s+([A-Za-z_]\w*)(?=,|\s|$)/.exec(rest) : null;
    if (st && lastFile !== null) {
      ref = { file: lastFile, fn: `struct ${st[1]!}` };
      len = st[0].length;
    } else {
      const m = REF_AT.exec(rest);
      if (!m) break;
      len = m[0].length;
      if (m[1] !== undefined && FILE_RE.test(m[1])) {
        ref = { file: m[1], fn: cleanName(m[2]!) };
      } else if (m[3] !== undefined && FILE_RE.test(m[3])) {
        ref = { file: m[3], fn: null };
      } else if (m[3] !== undefined && lastFile !== null && NAME_RE.test(m[3])) {
        ref = { file: lastFile, fn: cleanName(m[3]) };
      }
    }
    if (!ref) break;
    refs.push(ref);
    lastFile = ref.file;
    const after = rest.slice(len);
    const comma = /^\s*,\s*/.exec(after);
    if (!comma) {
      rest = after;
      break;
    }
    rest = after.slice(comma[0].length);
  }
  return { refs, notes: refs.length === 0 ? '' : cleanNotes(rest) };
}

function cleanName(n: string): string {
  return n.replace(/\(\)$/, '').replace(/\s+/g, ' ');
}

/** Trims, collapses white space and drops one pair of parentheses around the whole text. */
export function cleanNotes(notes: string): string {
  let s = notes.replace(/\s+/g, ' ').trim();
  if (s.startsWith('(') && s.endsWith(')') && closingParen(s, 0) === s.length - 1) {
    s = s.slice(1, -1).trim();
  }
  return s;
}

/** Index of the parenthesis closing the one at `open`, or -1. */
function closingParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

function parenDepth(s: string): number {
  let depth = 0;
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
  }
  return depth;
}

interface DocComment {
  /** Comment lines with the leading `*` removed, and their 1-based line numbers. */
  readonly lines: ReadonlyArray<{ readonly text: string; readonly line: number }>;
  /** Offset just past the closing `*\/`. */
  readonly end: number;
}

function docComments(source: string): DocComment[] {
  const out: DocComment[] = [];
  const re = /\/\*\*(?!\/)([\s\S]*?)\*\//g;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const firstLine = lineAt(source, m.index);
    const lines = m[1]!.split('\n').map((raw, i) => ({
      text: raw.replace(/^\s*\*?\s?/, '').trimEnd(),
      line: firstLine + i,
    }));
    out.push({ lines, end: m.index + m[0].length });
  }
  return out;
}

function lineAt(source: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset; i++) if (source.charCodeAt(i) === 10) n++;
  return n;
}

const DECL_RE =
  /^export\s+(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\s*\*?|class|interface|type|enum|const|let|var|namespace)\s*([A-Za-z_$][\w$]*)/;
const LOCAL_DECL_RE =
  /^(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\s*\*?|class|interface|type|enum|const|let|var)\s*([A-Za-z_$][\w$]*)/;
const METHOD_RE =
  /^\s+(?:(?:public|private|protected|static|readonly|override|abstract|async|get|set)\s+)*\*?\s*([A-Za-z_$][\w$]*)\s*[(<=:!?]/;
const CLASS_RE = /^(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)/;

/** The symbol declared by the code that follows a doc comment ending at `end`, if any. */
export function symbolAfter(source: string, end: number): string | null {
  const next = source.slice(end).split('\n');
  // The rest of the comment's own line, then the first non-blank line after it.
  let decl: string | undefined;
  for (let i = 0; i < next.length; i++) {
    const l = i === 0 ? next[0]!.trim() : next[i]!;
    if (l.trim() === '') continue;
    decl = l;
    break;
  }
  if (decl === undefined) return null;
  const top = decl.trimStart();
  if (decl === top || /^\S/.test(decl)) {
    const m = DECL_RE.exec(top) ?? LOCAL_DECL_RE.exec(top);
    return m ? m[1]! : null;
  }
  const method = METHOD_RE.exec(decl);
  if (!method) return null;
  const cls = enclosingClass(source, end);
  return cls ? `${cls}.${method[1]!}` : method[1]!;
}

function enclosingClass(source: string, end: number): string | null {
  const before = source.slice(0, end).split('\n');
  for (let i = before.length - 1; i >= 0; i--) {
    const m = CLASS_RE.exec(before[i]!);
    if (m) return m[1]!;
    if (/^\}/.test(before[i]!)) return null;
  }
  return null;
}

/** Every `@kernel` tag in one model source file. */
export function extractTags(source: string, modelFile: string): KernelTag[] {
  const tags: KernelTag[] = [];
  for (const c of docComments(source)) {
    for (let i = 0; i < c.lines.length; i++) {
      const m = /^@kernel\b\s*(.*)$/.exec(c.lines[i]!.text);
      if (!m) continue;
      let text = m[1]!;
      let j = i + 1;
      while (j < c.lines.length) {
        const cont = c.lines[j]!.text;
        if (cont.trim() === '' || cont.trim().startsWith('@')) break;
        const indented = /^\s/.test(cont);
        if (!indented && parenDepth(text) === 0 && !/,\s*$/.test(text)) break;
        text += ` ${cont.trim()}`;
        j++;
      }
      const parsed = parseTagText(text);
      if (parsed.refs.length === 0) continue;
      tags.push({
        ...parsed,
        modelFile,
        symbol: symbolAfter(source, c.end),
        line: c.lines[i]!.line,
      });
    }
  }
  return tags;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One row per ref, sorted by kernel file, function (file-only rows first), model. */
export function toRows(tags: readonly KernelTag[]): CoverageRow[] {
  const rows: CoverageRow[] = [];
  for (const t of tags) {
    for (const r of t.refs) {
      rows.push({
        kernelFile: r.file,
        fn: r.fn,
        notes: t.notes,
        modelFile: t.modelFile,
        symbol: t.symbol,
      });
    }
  }
  return rows.sort(
    (a, b) =>
      cmp(a.kernelFile, b.kernelFile) ||
      cmp(a.fn ?? '', b.fn ?? '') ||
      cmp(a.modelFile, b.modelFile) ||
      cmp(a.symbol ?? '', b.symbol ?? '') ||
      cmp(a.notes, b.notes),
  );
}

function cell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

function code(s: string): string {
  return `\`${s.replace(/\|/g, '\\|')}\``;
}

/**
 * The model cell: the symbol and a link to its file, relative to docs/.
 * `src/kernel/mm/memory.ts` is shown as `mm/memory.ts`.
 */
export function modelCell(r: CoverageRow): string {
  const shown = r.modelFile.startsWith(`${SOURCE_DIR}/`)
    ? r.modelFile.slice(SOURCE_DIR.length + 1)
    : r.modelFile;
  const link = `[${shown}](../${r.modelFile})`;
  return r.symbol ? `${code(r.symbol)} in ${link}` : link;
}

/** The Markdown table (header and one line per row). */
export function renderTable(rows: readonly CoverageRow[]): string {
  const lines = [
    '| kernel file | function | versions/notes | model |',
    '| --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const fn = r.fn === null ? '(file)' : code(r.fn);
    lines.push(`| ${code(r.kernelFile)} | ${fn} | ${cell(r.notes)} | ${modelCell(r)} |`);
  }
  return lines.join('\n');
}

/** The whole docs/coverage.md. */
export function renderDocument(tags: readonly KernelTag[]): string {
  const rows = toRows(tags);
  const files = new Set(rows.map((r) => r.kernelFile));
  const fns = new Set(rows.filter((r) => r.fn !== null).map((r) => `${r.kernelFile}:${r.fn}`));
  return [
    '# Kernel coverage',
    '',
    'Generated from the `@kernel` tags of the doc comments in `src/kernel/` by',
    '`scripts/coverage-table.ts`; do not edit by hand. Regenerate with',
    '`npm run build && npm run coverage-table`; CI runs',
    '`node dist/scripts/coverage-table.js --check`.',
    '',
    `${fns.size} kernel functions in ${files.size} kernel files, from ${tags.length} tags.`,
    '',
    renderTable(rows),
    '',
  ].join('\n');
}

/** The model sources under `root/src/kernel`, sorted, as repo-relative `/` paths. */
export function listSources(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) {
        out.push(relative(root, p).split(sep).join('/'));
      }
    }
  };
  const base = join(root, SOURCE_DIR);
  if (existsSync(base)) walk(base);
  return out.sort(cmp);
}

/** Scans the tree under `root` and renders docs/coverage.md. */
export function generate(root: string): string {
  const tags: KernelTag[] = [];
  for (const f of listSources(root)) {
    tags.push(...extractTags(readFileSync(join(root, f), 'utf8'), f));
  }
  return renderDocument(tags);
}

/** The command: returns the exit code and the one-line message to print. */
export function run(args: readonly string[], root: string): { code: number; message: string } {
  const unknown = args.filter((a) => a !== '--check');
  if (unknown.length > 0) {
    return {
      code: 2,
      message: `coverage-table: unknown argument '${unknown[0]}' (usage: coverage-table [--check])`,
    };
  }
  const doc = generate(root);
  const out = join(root, OUTPUT);
  if (args.includes('--check')) {
    if (!existsSync(out)) {
      return {
        code: 1,
        message: `${OUTPUT} is missing: run \`npm run build && npm run coverage-table\``,
      };
    }
    if (readFileSync(out, 'utf8') !== doc) {
      return {
        code: 1,
        message: `${OUTPUT} is out of date: run \`npm run build && npm run coverage-table\``,
      };
    }
    return { code: 0, message: `${OUTPUT} is current` };
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, doc);
  return { code: 0, message: `wrote ${OUTPUT}` };
}

/** The repository root: the nearest directory above `from` holding package.json and src/kernel. */
export function findRoot(from: string): string | null {
  for (let d = resolve(from); ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, SOURCE_DIR))) return d;
    if (dirname(d) === d) return null;
  }
}

function main(): void {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = findRoot(here) ?? findRoot(process.cwd());
  if (!root) {
    process.stderr.write(
      `coverage-table: cannot find the repository root (a directory with package.json and ${SOURCE_DIR}/) above ${here} or ${process.cwd()}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const { code, message } = run(process.argv.slice(2), root);
  (code === 0 ? process.stdout : process.stderr).write(`${message}\n`);
  process.exitCode = code;
}

const invoked = process.argv[1] !== undefined ? resolve(process.argv[1]) : '';
if (invoked === fileURLToPath(import.meta.url)) main();
