import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanNotes,
  extractTags,
  findRoot,
  generate,
  listSources,
  parseTagText,
  renderDocument,
  renderTable,
  run,
  symbolAfter,
  toRows,
  type KernelTag,
} from './coverage-table.js';

describe('parseTagText', () => {
  it('reads one file:function pair and its version notes', () => {
    expect(parseTagText('mm/memory.c:remap_pfn_range_internal (v5.7+; v6.12 moved)')).toEqual({
      refs: [{ file: 'mm/memory.c', fn: 'remap_pfn_range_internal' }],
      notes: 'v5.7+; v6.12 moved',
    });
  });

  it('reads several files without a function', () => {
    expect(parseTagText('include/linux/spinlock.h, include/linux/mutex.h (all versions)')).toEqual({
      refs: [
        { file: 'include/linux/spinlock.h', fn: null },
        { file: 'include/linux/mutex.h', fn: null },
      ],
      notes: 'all versions',
    });
  });

  it('gives a bare name the file of the ref before it', () => {
    expect(
      parseTagText('mm/page_alloc.c:free_unref_page, __free_pages_ok (all versions)').refs,
    ).toEqual([
      { file: 'mm/page_alloc.c', fn: 'free_unref_page' },
      { file: 'mm/page_alloc.c', fn: '__free_pages_ok' },
    ]);
    expect(
      parseTagText('include/linux/page_ref.h, include/linux/mm.h:folio_get, folio_put (all)').refs,
    ).toEqual([
      { file: 'include/linux/page_ref.h', fn: null },
      { file: 'include/linux/mm.h', fn: 'folio_get' },
      { file: 'include/linux/mm.h', fn: 'folio_put' },
    ]);
  });

  it('mixes files and functions across kernel files', () => {
    expect(
      parseTagText('include/asm-generic/bug.h:BUG, arch/x86/kernel/dumpstack.c:die (all versions)')
        .refs,
    ).toEqual([
      { file: 'include/asm-generic/bug.h', fn: 'BUG' },
      { file: 'arch/x86/kernel/dumpstack.c', fn: 'die' },
    ]);
  });

  it('accepts wildcards, struct names and a trailing ()', () => {
    expect(parseTagText('include/linux/panic.h:TAINT_* (all versions)').refs).toEqual([
      { file: 'include/linux/panic.h', fn: 'TAINT_*' },
    ]);
    expect(parseTagText('include/linux/sched.h:struct task_struct (all versions)')).toEqual({
      refs: [{ file: 'include/linux/sched.h', fn: 'struct task_struct' }],
      notes: 'all versions',
    });
    expect(parseTagText('include/linux/mm_types.h:struct page, struct folio').refs).toEqual([
      { file: 'include/linux/mm_types.h', fn: 'struct page' },
      { file: 'include/linux/mm_types.h', fn: 'struct folio' },
    ]);
    expect(parseTagText('mm/gup.c:get_user_pages() v5.7+').refs).toEqual([
      { file: 'mm/gup.c', fn: 'get_user_pages' },
    ]);
  });

  it('keeps notes without parentheses, and a version after a comma as notes', () => {
    expect(parseTagText('mm/gup.c:follow_page v5.7..v6.5')).toEqual({
      refs: [{ file: 'mm/gup.c', fn: 'follow_page' }],
      notes: 'v5.7..v6.5',
    });
    expect(parseTagText('mm/gup.c:follow_page, v5.7+').notes).toBe('v5.7+');
  });

  it('accepts a file with no directory only when it has a source extension', () => {
    expect(parseTagText('memory.c:foo').refs).toEqual([{ file: 'memory.c', fn: 'foo' }]);
    expect(parseTagText('something else entirely')).toEqual({ refs: [], notes: '' });
    expect(parseTagText('')).toEqual({ refs: [], notes: '' });
  });
});

describe('cleanNotes', () => {
  it('drops one pair of parentheses around the whole text only', () => {
    expect(cleanNotes('(all versions)')).toBe('all versions');
    expect(cleanNotes('(v5.7+) and (v6.1+)')).toBe('(v5.7+) and (v6.1+)');
    expect(cleanNotes('((nested))')).toBe('(nested)');
    expect(cleanNotes('  v6.12+ \n  (commit abc)  ')).toBe('v6.12+ (commit abc)');
  });
});

describe('symbolAfter', () => {
  const at = (src: string): string | null => symbolAfter(src, src.indexOf('*/') + 2);

  it('names exported functions, generators, consts, classes, interfaces and types', () => {
    expect(at('/** x */\nexport function foo(a: number) {}')).toBe('foo');
    expect(at('/** x */\nexport function* bar(): Op<void> {}')).toBe('bar');
    expect(at('/** x */\n\nexport const BAZ = 1;')).toBe('BAZ');
    expect(at('/** x */\nexport class resource {}')).toBe('resource');
    expect(at('/** x */\nexport interface task_struct {}')).toBe('task_struct');
    expect(at('/** x */\nexport type pte_t = number;')).toBe('pte_t');
    expect(at('/** x */ export const ONE = 1;')).toBe('ONE');
  });

  it('names a non-exported declaration', () => {
    expect(at('/** x */\nfunction __warn() {}')).toBe('__warn');
  });

  it('names a method as Class.method', () => {
    const src = 'export class Foo {\n  x = 1;\n  /** doc */\n  *lock(what = 1): Op<void> {}\n}';
    expect(at(src)).toBe('Foo.lock');
  });

  it('gives null for a file header followed by imports, or nothing', () => {
    expect(at("/** header */\nimport { a } from './a.js';")).toBeNull();
    expect(at('/** trailing */\n')).toBeNull();
  });
});

describe('extractTags', () => {
  it('finds each tag with its comment symbol, file and line', () => {
    const src = [
      '/**',
      ' * The file.',
      ' * @kernel mm/memory.c (all versions)',
      ' */',
      "import { x } from './x.js';",
      '',
      '/**',
      ' * Does a thing.',
      ' * @kernel mm/memory.c:do_thing (v6.1+)',
      ' * Locking: none.',
      ' */',
      'export function do_thing(): void {}',
    ].join('\n');
    expect(extractTags(src, 'src/kernel/mm/memory.ts')).toEqual([
      {
        refs: [{ file: 'mm/memory.c', fn: null }],
        notes: 'all versions',
        modelFile: 'src/kernel/mm/memory.ts',
        symbol: null,
        line: 3,
      },
      {
        refs: [{ file: 'mm/memory.c', fn: 'do_thing' }],
        notes: 'v6.1+',
        modelFile: 'src/kernel/mm/memory.ts',
        symbol: 'do_thing',
        line: 9,
      },
    ]);
  });

  it('joins indented continuation lines, lines after a trailing comma, and open parentheses', () => {
    const src = [
      '/**',
      ' * @kernel include/linux/pgtable.h, include/linux/mm.h:pte_offset_map_lock, pmd_lock,',
      ' *   pud_lock, mm/memory.c:__pte_alloc (all versions;',
      ' * see commit 0123abcd)',
      ' * Locking: none.',
      ' */',
      'export function f(): void {}',
    ].join('\n');
    const [t] = extractTags(src, 'm.ts');
    expect(t!.refs.map((r) => `${r.file}:${r.fn}`)).toEqual([
      'include/linux/pgtable.h:null',
      'include/linux/mm.h:pte_offset_map_lock',
      'include/linux/mm.h:pmd_lock',
      'include/linux/mm.h:pud_lock',
      'mm/memory.c:__pte_alloc',
    ]);
    expect(t!.notes).toBe('all versions; see commit 0123abcd');
  });

  it('does not join an unindented line that follows a complete tag', () => {
    const src =
      '/**\n * @kernel mm/a.c:f (all versions)\n * Return: 0.\n */\nexport function f() {}';
    expect(extractTags(src, 'm.ts')[0]!.notes).toBe('all versions');
  });

  it('reads a one-line doc comment', () => {
    const src =
      '/** @kernel include/linux/panic.h:TAINT_* (all versions) */\nexport const TAINT_A = 0;';
    expect(extractTags(src, 'p.ts')).toEqual([
      {
        refs: [{ file: 'include/linux/panic.h', fn: 'TAINT_*' }],
        notes: 'all versions',
        modelFile: 'p.ts',
        symbol: 'TAINT_A',
        line: 1,
      },
    ]);
  });

  it('ignores @kernel that is not at the start of a comment line, and plain comments', () => {
    const src = [
      '/** mentions @kernel mm/a.c:f in prose */',
      'export const A = 1;',
      '/* @kernel mm/b.c:g (not a doc comment) */',
      '// @kernel mm/c.c:h',
      'export const B = 2;',
    ].join('\n');
    expect(extractTags(src, 'x.ts')).toEqual([]);
  });

  it('finds several tags in one comment', () => {
    const src =
      '/**\n * @kernel mm/a.c:f (v5.7)\n * @kernel mm/b.c:g (v6.1+)\n */\nexport function fg() {}';
    expect(extractTags(src, 'x.ts').map((t) => [t.refs[0]!.file, t.notes, t.symbol])).toEqual([
      ['mm/a.c', 'v5.7', 'fg'],
      ['mm/b.c', 'v6.1+', 'fg'],
    ]);
  });
});

function tag(
  refs: Array<[string, string | null]>,
  notes: string,
  modelFile: string,
  symbol: string | null,
): KernelTag {
  return { refs: refs.map(([file, fn]) => ({ file, fn })), notes, modelFile, symbol, line: 1 };
}

describe('toRows', () => {
  it('makes one row per ref, sorted by kernel file then function, file-only rows first', () => {
    const rows = toRows([
      tag([['mm/memory.c', 'zap_pte_range']], 'all', 'src/kernel/mm/memory.ts', 'zap_pte_range'),
      tag(
        [
          ['mm/gup.c', 'get_user_pages'],
          ['include/linux/mm.h', null],
        ],
        'v5.7+',
        'src/kernel/mm/gup.ts',
        'get_user_pages',
      ),
      tag([['mm/memory.c', null]], 'all', 'src/kernel/mm/memory.ts', null),
      tag([['mm/memory.c', 'do_wp_page']], 'all', 'src/kernel/mm/memory.ts', 'do_wp_page'),
      tag([['mm/memory.c', 'Zed']], 'all', 'src/kernel/mm/memory.ts', 'Zed'),
    ]);
    expect(rows.map((r) => `${r.kernelFile}:${r.fn ?? ''}`)).toEqual([
      'include/linux/mm.h:',
      'mm/gup.c:get_user_pages',
      'mm/memory.c:',
      'mm/memory.c:Zed',
      'mm/memory.c:do_wp_page',
      'mm/memory.c:zap_pte_range',
    ]);
    expect(rows[0]).toEqual({
      kernelFile: 'include/linux/mm.h',
      fn: null,
      notes: 'v5.7+',
      modelFile: 'src/kernel/mm/gup.ts',
      symbol: 'get_user_pages',
    });
  });

  it('orders rows for the same function by model file', () => {
    const rows = toRows([
      tag([['mm/a.c', 'f']], 'x', 'src/kernel/z.ts', 'f'),
      tag([['mm/a.c', 'f']], 'x', 'src/kernel/a.ts', 'f'),
    ]);
    expect(rows.map((r) => r.modelFile)).toEqual(['src/kernel/a.ts', 'src/kernel/z.ts']);
  });
});

describe('renderTable', () => {
  it('renders the header and one line per row, escaping pipes', () => {
    const out = renderTable(
      toRows([
        tag([['mm/memory.c', 'f']], 'v5.7+ | v6.1', 'src/kernel/mm/memory.ts', 'f'),
        tag([['mm/memory.c', null]], '', 'src/kernel/mm/memory.ts', null),
      ]),
    );
    expect(out.split('\n')).toEqual([
      '| kernel file | function | versions/notes | model |',
      '| --- | --- | --- | --- |',
      '| `mm/memory.c` | (file) |  | [mm/memory.ts](../src/kernel/mm/memory.ts) |',
      '| `mm/memory.c` | `f` | v5.7+ \\| v6.1 | `f` in [mm/memory.ts](../src/kernel/mm/memory.ts) |',
    ]);
  });
});

describe('renderDocument', () => {
  it('counts functions, files and tags, and ends with a newline', () => {
    const doc = renderDocument([
      tag(
        [
          ['mm/a.c', 'f'],
          ['mm/a.c', 'g'],
        ],
        'all',
        'src/kernel/mm/a.ts',
        'f',
      ),
      tag([['mm/b.c', null]], 'all', 'src/kernel/mm/b.ts', null),
    ]);
    expect(doc).toMatch(/^# Kernel coverage\n/);
    expect(doc).toContain('2 kernel functions in 2 kernel files, from 2 tags.');
    expect(doc.endsWith('|\n')).toBe(true);
  });

  it('is the same for the same tags in any order', () => {
    const a = tag([['mm/a.c', 'f']], 'all', 'src/kernel/mm/a.ts', 'f');
    const b = tag([['mm/b.c', 'g']], 'all', 'src/kernel/mm/b.ts', 'g');
    expect(renderDocument([a, b])).toBe(renderDocument([b, a]));
  });
});

describe('the command on a tree', () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  function tree(): string {
    dir = mkdtempSync(join(tmpdir(), 'coverage-table-'));
    writeFileSync(join(dir, 'package.json'), '{}');
    mkdirSync(join(dir, 'src/kernel/mm'), { recursive: true });
    writeFileSync(
      join(dir, 'src/kernel/mm/memory.ts'),
      '/**\n * @kernel mm/memory.c:do_thing (v6.1+)\n */\nexport function do_thing() {}\n',
    );
    writeFileSync(
      join(dir, 'src/kernel/mm/memory.test.ts'),
      '/**\n * @kernel mm/test.c:not_scanned\n */\nexport function t() {}\n',
    );
    return dir;
  }

  it('lists model sources, not tests', () => {
    const root = tree();
    expect(listSources(root)).toEqual(['src/kernel/mm/memory.ts']);
    expect(findRoot(join(root, 'src/kernel/mm'))).toBe(root);
  });

  it('writes docs/coverage.md, then --check passes until a tag changes', () => {
    const root = tree();
    expect(run(['--check'], root)).toEqual({
      code: 1,
      message: 'docs/coverage.md is missing: run `npm run build && npm run coverage-table`',
    });
    expect(run([], root)).toEqual({ code: 0, message: 'wrote docs/coverage.md' });
    const doc = readFileSync(join(root, 'docs/coverage.md'), 'utf8');
    expect(doc).toBe(generate(root));
    expect(doc).toContain('| `mm/memory.c` | `do_thing` | v6.1+ |');
    expect(doc).not.toContain('not_scanned');
    expect(run(['--check'], root)).toEqual({ code: 0, message: 'docs/coverage.md is current' });

    writeFileSync(
      join(root, 'src/kernel/mm/memory.ts'),
      '/**\n * @kernel mm/memory.c:do_thing (v6.2+)\n */\nexport function do_thing() {}\n',
    );
    const stale = run(['--check'], root);
    expect(stale.code).toBe(1);
    expect(stale.message).toBe(
      'docs/coverage.md is out of date: run `npm run build && npm run coverage-table`',
    );
    expect(stale.message).not.toContain('\n');
  });

  it('rejects unknown arguments', () => {
    const root = tree();
    expect(run(['--chek'], root).code).toBe(2);
    expect(run(['--chek'], root).message).toMatch(/unknown argument '--chek'/);
  });
});
