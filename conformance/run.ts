/**
 * `npm run conformance`: runs every (mapping kind x entry point) case on the live kernel
 * (the C probe, when it can run here: Linux, root, a C compiler) and in the model at the
 * live kernel's version, and prints an agreement table.
 *
 *   node dist/conformance/run.js [--recorded] [--version V]
 *
 * --recorded compares the model with the checked-in table (expected-<V>.json) instead of
 * running the probe; without a live kernel it does that anyway and says so. Exit status
 * 1 when a comparable case disagrees.
 */
import { ENTRY_POINTS, MAPPING_KINDS, type ResultTable } from './cases.js';
import { liveKernelVersion, loadExpected, runLive } from './live.js';
import { modelTable } from '../src/scenario/agreement.js';

/** Kinds the model does not cover yet: run live, reported, never compared. */
export const NOT_MODELLED: ReadonlySet<string> = new Set<string>([]);

export interface Agreement {
  readonly version: string;
  readonly source: string;
  readonly rows: readonly {
    kind: string;
    cells: readonly { entry: string; live: string; model: string }[];
  }[];
  readonly agree: number;
  readonly disagree: readonly string[];
  readonly notCompared: number;
}

function comparable(live: string | undefined, model: string | undefined): boolean {
  return (
    live !== undefined &&
    model !== undefined &&
    !live.startsWith('skip:') &&
    !model.startsWith('skip:')
  );
}

/** Compares the two tables case by case. */
export function agreement(
  version: string,
  source: string,
  live: ResultTable,
  model: ResultTable,
): Agreement {
  const rows: Agreement['rows'][number][] = [];
  const disagree: string[] = [];
  let agree = 0;
  let notCompared = 0;
  for (const { id: kind } of MAPPING_KINDS) {
    const cells = ENTRY_POINTS.map(({ id: entry }) => {
      const c = `${kind}/${entry}`;
      const l = live[c] ?? 'skip:none';
      const m = NOT_MODELLED.has(kind) ? 'skip:not-modelled' : (model[c] ?? 'skip:none');
      if (!comparable(l, m)) notCompared++;
      else if (l === m) agree++;
      else disagree.push(`${c}: live ${l}, model ${m}`);
      return { entry, live: l, model: m };
    });
    rows.push({ kind, cells });
  }
  return { version, source, rows, agree, disagree, notCompared };
}

/** The table as text: one row per kind, one column per entry point; '=' when both agree. */
export function renderAgreement(a: Agreement): string {
  const entries = ENTRY_POINTS.map((e) => e.id);
  const w = Math.max(...MAPPING_KINDS.map((k) => k.id.length));
  const colw = entries.map((e) => Math.max(e.length, 9));
  const lines = [
    `Linux ${a.version}: model vs ${a.source}`,
    `${''.padEnd(w)}  ${entries.map((e, i) => e.padEnd(colw[i]!)).join(' ')}`,
  ];
  for (const r of a.rows) {
    const cells = r.cells.map((c, i) => {
      const s = !comparable(c.live, c.model)
        ? `(${c.live})`
        : c.live === c.model
          ? `=${c.live}`
          : `!${c.model}`;
      return s.padEnd(colw[i]!);
    });
    lines.push(`${r.kind.padEnd(w)}  ${cells.join(' ')}`);
  }
  lines.push('');
  lines.push(
    `=x: both gave x   !x: the model gave x, the live kernel something else   (x): not compared`,
  );
  lines.push(`${a.agree} agree, ${a.disagree.length} disagree, ${a.notCompared} not compared`);
  for (const d of a.disagree) lines.push(`  ${d}`);
  return lines.join('\n');
}

function main(argv: readonly string[]): number {
  const recorded = argv.includes('--recorded');
  const vi = argv.indexOf('--version');
  let version = vi >= 0 ? argv[vi + 1]! : '';
  let live: ResultTable;
  let source: string;
  const got = recorded ? { skipped: '--recorded' } : runLive();
  if ('skipped' in got) {
    version ||= '6.18';
    live = loadExpected(version);
    source = `the table recorded on a live ${version} kernel (conformance/expected-${version}.json; live run: ${String(got.skipped)})`;
  } else {
    live = got as ResultTable;
    version ||= liveKernelVersion();
    source = "this machine's live kernel";
  }
  const kinds = MAPPING_KINDS.map((k) => k.id).filter((k) => !NOT_MODELLED.has(k));
  const model = modelTable(
    version,
    kinds,
    ENTRY_POINTS.map((e) => e.id),
  );
  const a = agreement(version, source, live, model);
  process.stdout.write(renderAgreement(a) + '\n');
  return a.disagree.length ? 1 : 0;
}

if (process.argv[1] && /conformance\/run\.js$/.test(process.argv[1])) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`conformance: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  }
}
