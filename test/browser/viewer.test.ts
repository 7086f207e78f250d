/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The HTML trace viewer in a real browser (Debian's Chromium via playwright-core): the
 * hand-written counterexample fixture (a VFIO type1 DMA map racing munmap: follow_pfnmap
 * hands out pfn 0x1a2b2, the driver frees it, a victim reuses it, the device DMAs into it
 * through the stale IOMMU entry) and a real scenario's trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { main } from '../../src/cli/main.js';
import { renderHtml } from '../../src/report/html.js';
import type { Trace } from '../../src/report/format.js';
import { runDemo } from '../../src/scenario/examples/driver-mmap.js';
import { formatSchedule, parseSchedule } from '../../src/sched/index.js';
import {
  HAVE_BROWSER,
  cleanup,
  fixture,
  launch,
  measurePng,
  openHtml,
  openTrace,
  type Opened,
} from './browser.js';

const FIXTURE = 'vfio-follow-pfnmap-zap.json';
const PFN = 0x1a2b2; // the frame that changes owner under the IOMMU entry

const selected = (page: Page) => page.getAttribute('html', 'data-selected-step');
const texts = (page: Page, sel: string) =>
  page.$$eval(sel, (els) => els.map((e) => (e.textContent ?? '').trim()));

/** Whether the row of `step` is fully visible in the timeline pane, below the sticky header. */
function rowVisible(page: Page, step: number): Promise<boolean> {
  return page.evaluate((s) => {
    const pane = document.getElementById('timeline-pane')!.getBoundingClientRect();
    const head = document.querySelector('#timeline thead')!.getBoundingClientRect();
    const row = document.querySelector(`tr.step[data-step="${s}"]`)!.getBoundingClientRect();
    return row.top >= head.bottom - 1 && row.bottom <= pane.bottom + 1 && row.height > 0;
  }, step);
}

describe.skipIf(!HAVE_BROWSER)('renderHtml in Chromium', () => {
  let browser: Browser;
  const opened: Opened[] = [];
  const open = async (t: Trace, o?: Parameters<typeof openTrace>[2]) => {
    const x = await openTrace(browser, t, o);
    opened.push(x);
    return x;
  };

  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    for (const o of opened) await o.context.close();
    await browser?.close();
    cleanup();
  });

  it('header: scenario, kernel version, verdict, status, schedule and replay command', async () => {
    const t = fixture(FIXTURE);
    const { page, errors } = await open(t);
    expect(await page.textContent('#scenario')).toBe('vfio-follow-pfnmap-zap');
    expect(await page.textContent('#kernel')).toBe('Linux 6.12');
    expect(await page.textContent('#verdict')).toBe('stale-pfn');
    expect(await page.getAttribute('#verdict', 'class')).toContain('bad');
    expect(await page.textContent('#status')).toBe('done');
    expect(await page.textContent('#schedule')).toBe(t.schedule.join(''));
    expect(await page.textContent('#replay')).toBe(t.replay);
    expect(await page.title()).toBe('pfnsim trace: vfio-follow-pfnmap-zap on Linux 6.12');
    expect(errors).toEqual([]);
  });

  it('threads are columns grouped by kind: CPU threads, drivers, DMA engines, the IOMMU', async () => {
    const { page } = await open(fixture(FIXTURE));
    expect(await texts(page, '#timeline tr.groups th.group')).toEqual([
      'CPU threads',
      'Drivers',
      'DMA engines',
      'IOMMU',
    ]);
    expect(
      await page.$$eval('#timeline tr.groups th.group', (els) =>
        els.map((e) => Number(e.getAttribute('colspan'))),
      ),
    ).toEqual([2, 1, 1, 1]);
    expect(
      await page.$$eval('#timeline tr.lanes th.lane', (els) =>
        els.map((e) => [e.getAttribute('data-tid'), e.getAttribute('data-kind')]),
      ),
    ).toEqual([
      ['1', 'cpu'], // munmap
      ['2', 'cpu'], // victim
      ['0', 'driver'], // vfio_dma_map
      ['3', 'dma'], // dev0.dma
      ['4', 'iommu'], // iommu
    ]);
  });

  it('steps are rows (plus setup); each step sits in its thread column with object, kind, what and locks held', async () => {
    const t = fixture(FIXTURE);
    const { page } = await open(t);
    const rows = await page.$$eval('#timeline tbody tr.step', (els) =>
      els.map((e) => Number(e.getAttribute('data-step'))),
    );
    expect(rows).toEqual([-1, ...t.steps.map((s) => s.index)]);
    // Every step's one filled cell is in the column of its thread.
    const placed = await page.$$eval('#timeline tbody tr.step', (els) =>
      els.slice(1).map((tr) => {
        const cells = [...tr.querySelectorAll('td.lane')];
        const filled = cells.filter((c) => c.querySelector('.op'));
        return {
          col: cells.indexOf(filled[0]!),
          n: filled.length,
          tid: Number(filled[0]!.getAttribute('data-tid')),
        };
      }),
    );
    const laneOrder = [1, 2, 0, 3, 4];
    for (const [i, p] of placed.entries()) {
      expect(p.n).toBe(1);
      expect(p.tid).toBe(t.steps[i]!.tid);
      expect(p.col).toBe(laneOrder.indexOf(t.steps[i]!.tid));
    }
    // Step 4: the lookup takes the PTE lock while holding mmap_lock for read.
    const op4 = await page.textContent('tr[data-step="4"] .op');
    expect(op4).toContain('spin_lock');
    expect(op4).toContain('acquire');
    expect(op4).toContain('mm1.pte4.ptl');
    expect(await page.textContent('tr[data-step="4"] .op .held')).toBe(
      'holds mm1.mmap_lock (read), mm1.pte4.ptl',
    );
    expect(await page.textContent('tr[data-step="6"] .op .held')).toBe('holds no locks');
  });

  it('notes and kernel log lines are shown at their steps', async () => {
    const { page } = await open(fixture(FIXTURE));
    const annotOf = (step: number) => `tr.annot[data-owner="${step}"]`;
    expect(await page.textContent(annotOf(-1))).toContain('Linux version 6.12.0-pfnsim');
    expect(await page.textContent(`${annotOf(4)} .note`)).toContain(
      'follow_pfnmap_start: 0x7f0000002000 -> pfn 0x1a2b2',
    );
    const log7 = await page.textContent(`${annotOf(7)} pre.klog`);
    expect(log7).toContain('BUG: pfnsan: stale-pfn in iommu_map');
    expect(log7).toContain('Disabling lock debugging due to kernel taint');
    // A step without notes or log has no annotation row.
    expect(await page.$(annotOf(9))).toBeNull();
  });

  it('keyboard: ArrowDown/j and ArrowUp/k step, Home/End jump; the selection stays in view and the state follows', async () => {
    const { page, errors } = await open(fixture(FIXTURE), { height: 600 });
    // Opens on the first report's step.
    expect(await selected(page)).toBe('7');
    await page.keyboard.press('Home');
    expect(await selected(page)).toBe('-1');
    expect(await page.textContent('#step-title')).toBe('Setup');
    await page.keyboard.press('j');
    expect(await selected(page)).toBe('0');
    for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowDown');
    expect(await selected(page)).toBe('6');
    expect(await page.getAttribute('tr[data-step="6"]', 'aria-current')).toBe('step');
    expect(await page.$$('tr.step[aria-current]')).toHaveLength(1);
    // Before iommu_map: the setup snapshot, no IOMMU entry.
    expect(await page.textContent('#snapinfo')).toBe(
      'After setup, the latest snapshot at or before step 6.',
    );
    expect(await page.textContent('#iommu-table')).toBe('none');
    await page.keyboard.press('j');
    expect(await selected(page)).toBe('7');
    expect(await page.textContent('#snapinfo')).toBe('After step 7.');
    expect(await page.$$('#iommu-table tbody tr')).toHaveLength(1);
    expect(await page.getAttribute('#iommu-table tbody tr', 'data-stale')).toBe('false');
    await page.keyboard.press('k');
    expect(await selected(page)).toBe('6');
    await page.keyboard.press('ArrowUp');
    expect(await selected(page)).toBe('5');
    expect(await page.textContent('#stepinfo')).toContain('spin_unlock');
    await page.keyboard.press('End');
    expect(await selected(page)).toBe('29');
    expect(await rowVisible(page, 29)).toBe(true);
    expect(await rowVisible(page, -1)).toBe(false); // the pane scrolled, a 600px window
    await page.keyboard.press('Home');
    expect(await rowVisible(page, -1)).toBe(true);
    expect(await rowVisible(page, 29)).toBe(false);
    // The page itself never scrolls: only the timeline pane does.
    expect(await page.evaluate(() => document.scrollingElement!.scrollTop)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('state: the frame whose owner changed under the live IOMMU entry is highlighted with its owner and generation', async () => {
    const { page } = await open(fixture(FIXTURE), { hash: '#step=17' });
    expect(await selected(page)).toBe('17');
    const frameRow = `#frames-table tr[data-pfn="${PFN}"]`;
    // After the driver's __free_pages: pfn 0x1a2b2 is free (gen 2), the IOMMU entry still
    // points at it for gen 1.
    expect(await page.getAttribute(frameRow, 'data-stale')).toBe('true');
    expect(await page.getAttribute(frameRow, 'class')).toContain('stale');
    expect(await page.textContent(`${frameRow} td:nth-child(2)`)).toBe('free');
    expect(await page.textContent(`${frameRow} td:nth-child(3)`)).toBe('2');
    expect(await page.textContent('#iommu-table tbody tr')).toContain(
      'made for gen 1, frame is gen 2',
    );
    // A frame no live mapping refers to is not highlighted.
    expect(await page.getAttribute(`#frames-table tr[data-pfn="${PFN + 1}"]`, 'data-stale')).toBe(
      'false',
    );
    // The app's VMA and PTEs are gone after munmap.
    expect(await page.textContent('.process[data-pid="1"]')).toContain('VMAs (0)');
    await page.keyboard.press('End');
    expect(await page.textContent(`${frameRow} td:nth-child(2)`)).toBe(
      'anon memory of pid 2 (victim)',
    );
    expect(await page.textContent(`${frameRow} td:nth-child(3)`)).toBe('3');
    expect(await page.getAttribute('#iommu-table tbody tr', 'data-stale')).toBe('true');
    // The victim's own PTE maps the frame; its frame column flags the frame as stale.
    expect(await page.textContent(`.process[data-pid="2"] tr.pte[data-pfn="${PFN}"]`)).toContain(
      'stale frame',
    );
    // The highlight is drawn: the stale row's background differs from a plain row's.
    const bg = (sel: string) =>
      page.$eval(sel, (e) => getComputedStyle(e.querySelector('td')!).backgroundColor);
    expect(await bg(frameRow)).not.toBe(await bg(`#frames-table tr[data-pfn="${PFN + 1}"]`));
  });

  it('reports: marked on their rows; clicking one shows its text and three call-path links that select their steps', async () => {
    const { page, errors } = await open(fixture(FIXTURE));
    expect(
      await page.$$eval('tr.step.has-report', (els) => els.map((e) => e.getAttribute('data-step'))),
    ).toEqual(['7', '28']);
    expect(await texts(page, 'tr[data-step="28"] button.report-mark')).toEqual([
      '\u26a0 cross-owner',
    ]);
    await page.click('tr[data-step="28"] button.report-mark');
    expect(await selected(page)).toBe('28');
    expect(await page.getAttribute('tr[data-step="28"] button.report-mark', 'aria-pressed')).toBe(
      'true',
    );
    expect(await page.textContent('#report-detail h3')).toBe(
      'BUG: pfnsan: cross-owner in dma_write',
    );
    const links = await page.$$eval('#report-detail .sites a.site-link', (els) =>
      els.map((e) => [e.getAttribute('data-site'), e.getAttribute('data-step'), e.textContent]),
    );
    expect(links).toEqual([
      ['obtained', '7', 'step 7 \u00b7 vfio_dma_map \u00b7 iommu_map'],
      ['ended', '17', 'step 17 \u00b7 munmap \u00b7 __free_pages'],
      ['used', '28', 'step 28 \u00b7 dev0.dma \u00b7 dma_write'],
    ]);
    expect(await texts(page, '#report-detail .site.ended ol.callpath li')).toEqual([
      '__free_pages (mm/page_alloc.c)',
      'accel_vm_close (drivers/misc/accel0.c)',
      'remove_vma (mm/vma.c)',
      'vms_complete_munmap_vmas (mm/vma.c)',
      'do_vmi_munmap (mm/vma.c)',
      '__vm_munmap (mm/vma.c)',
    ]);
    // The three sites are marked on the timeline.
    for (const [site, step] of [
      ['obtained', 7],
      ['ended', 17],
      ['used', 28],
    ] as const)
      expect(await page.textContent(`tr[data-step="${step}"] .site-chip.${site}`)).toBe(site);
    await page.click('#report-detail summary');
    expect(await page.textContent('#report-text')).toContain(
      'the frame is now generation 3: anon memory of pid 2 (victim)',
    );
    // Clicking a call-path link selects that step and shows the state there.
    await page.click('#report-detail a.site-link[data-site="ended"]');
    expect(await selected(page)).toBe('17');
    expect(await page.getAttribute('tr[data-step="17"]', 'aria-current')).toBe('step');
    expect(await rowVisible(page, 17)).toBe(true);
    expect(await page.textContent('#snapinfo')).toBe('After step 17.');
    await page.click('#report-detail a.site-link[data-site="obtained"]');
    expect(await selected(page)).toBe('7');
    // The report stays selected while its steps are visited; 'p' goes to the other one.
    expect(await page.textContent('#report-detail h3')).toBe(
      'BUG: pfnsan: cross-owner in dma_write',
    );
    await page.keyboard.press('p');
    expect(await page.textContent('#report-detail h3')).toBe('BUG: pfnsan: stale-pfn in iommu_map');
    expect(
      await page.$$eval('#report-detail .sites a.site-link', (els) =>
        els.map((e) => e.getAttribute('data-step')),
      ),
    ).toEqual(['4', '5', '7']);
    await page.click('#report-detail a.site-link[data-site="obtained"]');
    expect(await selected(page)).toBe('4');
    expect(errors).toEqual([]);
  });

  it('no request leaves the page: only the file itself is loaded', async () => {
    const { page, requests, file } = await open(fixture(FIXTURE));
    await page.keyboard.press('End');
    await page.click('tr[data-step="7"] button.report-mark');
    await page.click('#report-detail a.site-link[data-site="ended"]');
    await page.click('#theme');
    expect(requests.length).toBeGreaterThan(0);
    for (const u of requests) expect(u.startsWith('file:')).toBe(true);
    expect(requests.every((u) => u.includes(file.split('/').pop()!))).toBe(true);
  });

  it('screenshot: the page draws a timeline and a state panel (fails on an empty or broken page)', async () => {
    const { page } = await open(fixture(FIXTURE));
    const m = await measurePng(browser, await page.screenshot());
    expect(m.width).toBe(1400);
    expect(m.colours).toBeGreaterThanOrEqual(24);
    expect(m.inked).toBeGreaterThan(0.08);
    // Layout: the timeline and the side panel fill the window side by side.
    const boxes = await page.evaluate(() =>
      ['#timeline-pane', '#side', '#timeline', '#state'].map((s) => {
        const r = document.querySelector(s)!.getBoundingClientRect();
        return { w: r.width, h: r.height, x: r.x };
      }),
    );
    const [pane, side, table, state] = boxes as [
      { w: number; h: number; x: number },
      { w: number; h: number; x: number },
      { w: number; h: number; x: number },
      { w: number; h: number; x: number },
    ];
    expect(pane.w).toBeGreaterThan(600);
    expect(pane.h).toBeGreaterThan(600);
    expect(side.x).toBeGreaterThanOrEqual(pane.x + pane.w - 1);
    expect(table.h).toBeGreaterThan(pane.h); // 31 rows overflow the pane
    expect(state.h).toBeGreaterThan(200);

    // The same measure on an empty page and on a page whose script is missing fails.
    const empty = await openHtml(browser, '<!doctype html><title>x</title><body></body>', {
      waitReady: false,
    });
    opened.push(empty);
    const e = await measurePng(browser, await empty.page.screenshot());
    expect(e.colours < 24 || e.inked <= 0.08).toBe(true);
    const broken = await openHtml(
      browser,
      renderHtml(fixture(FIXTURE)).replace(/<script>[\s\S]*<\/script>/, ''),
      { waitReady: false },
    );
    opened.push(broken);
    const b = await measurePng(browser, await broken.page.screenshot());
    expect(b.colours < 24 || b.inked <= 0.08).toBe(true);
  });

  it('light and dark: the page follows the colour scheme, with readable contrast in both', async () => {
    const contrast = (page: Page) =>
      page.evaluate(() => {
        const rgb = (s: string) => (s.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map(Number);
        const lum = (c: number[]) => {
          const [r, g, b] = c.map((v) => {
            const x = v / 255;
            return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
          }) as [number, number, number];
          return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const ratio = (a: number[], b: number[]) => {
          const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p) as [number, number];
          return (x + 0.05) / (y + 0.05);
        };
        const body = getComputedStyle(document.body);
        const bg = rgb(body.backgroundColor);
        const out = { bg: lum(bg), text: ratio(rgb(body.color), bg), pairs: [] as number[] };
        // Muted text, links, report marks, stale rows, on their backgrounds.
        for (const sel of [
          '.meta dt',
          '#report-detail a.site-link',
          'button.report-mark',
          '#frames-table tr.stale td',
          '.op .kind',
        ]) {
          const el = document.querySelector(sel);
          if (!el) throw new Error(`missing ${sel}`);
          let b: Element | null = el;
          let back = 'rgba(0, 0, 0, 0)';
          while (b && /rgba\(0, 0, 0, 0\)|transparent/.test(back)) {
            back = getComputedStyle(b).backgroundColor;
            b = b.parentElement;
          }
          if (/rgba\(0, 0, 0, 0\)/.test(back)) back = body.backgroundColor;
          out.pairs.push(ratio(rgb(getComputedStyle(el).color), rgb(back)));
        }
        return out;
      });
    const light = await open(fixture(FIXTURE), { colorScheme: 'light', hash: '#step=28' });
    await light.page.click('tr[data-step="28"] button.report-mark');
    const dark = await open(fixture(FIXTURE), { colorScheme: 'dark', hash: '#step=28' });
    await dark.page.click('tr[data-step="28"] button.report-mark');
    const l = await contrast(light.page);
    const d = await contrast(dark.page);
    expect(l.bg).toBeGreaterThan(0.8);
    expect(d.bg).toBeLessThan(0.05);
    expect(l.text).toBeGreaterThan(7);
    expect(d.text).toBeGreaterThan(7);
    for (const r of [...l.pairs, ...d.pairs]) expect(r).toBeGreaterThan(4.5);
    // The theme button overrides the system's choice.
    await dark.page.click('#theme'); // auto -> light
    expect((await contrast(dark.page)).bg).toBeGreaterThan(0.8);
  });

  it('accessibility: named buttons and regions, the selected row marked as the current step, a live status', async () => {
    const { page } = await open(fixture(FIXTURE));
    const unnamed = await page.$$eval(
      'button',
      (els) =>
        els.filter((b) => !(b.getAttribute('aria-label') ?? b.textContent ?? '').trim()).length,
    );
    expect(unnamed).toBe(0);
    expect(await page.getAttribute('#timeline', 'aria-label')).toContain('one row per step');
    expect(await page.getAttribute('#state', 'aria-label')).toBe(
      'Machine state at the selected step',
    );
    expect(await page.getAttribute('tr[data-step="7"] button.stepbtn', 'aria-label')).toBe(
      'Step 7, vfio_dma_map (driver): iommu_map write dom0.iopt3[256]',
    );
    await page.focus('tr[data-step="3"] button.stepbtn');
    await page.keyboard.press('Enter');
    expect(await selected(page)).toBe('3');
    expect(await page.textContent('#live')).toBe(
      'Step 3: vfio_dma_map pmdp_get_lockless read mm1.pmd3[0]',
    );
    expect(await page.getAttribute('html', 'lang')).toBe('en');
  });

  it('trace text is shown as text, never run as markup', async () => {
    const t = fixture(FIXTURE);
    const evil = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">';
    const hostile: Trace = {
      ...t,
      scenario: evil,
      notes: [...t.notes, { step: 2, thread: 'x', text: evil }],
    };
    const { page, requests, errors } = await open(hostile);
    expect(await page.evaluate(() => (window as { pwned?: number }).pwned)).toBeUndefined();
    expect(await page.textContent('#scenario')).toBe(evil);
    expect(await page.textContent('tr.annot[data-owner="2"] .note')).toContain(evil);
    expect(requests.every((u) => u.startsWith('file:'))).toBe(true);
    expect(errors).toEqual([]);
  });

  it('an unknown format or version shows a clear message instead of a trace', async () => {
    const t = fixture(FIXTURE);
    const cases: [unknown, RegExp][] = [
      [{ ...t, version: 3 }, /pfnsim-trace version 3; this viewer reads version 2 only/],
      [{ ...t, version: 1 }, /version 1; this viewer reads version 2 only/],
      [{ ...t, format: 'chrome-trace' }, /its "format" is "chrome-trace"/],
      [{ ...t, snapshots: undefined }, /incomplete: "snapshots" is missing, expected a list/],
      [[1, 2], /expected a JSON object, found a list/],
    ];
    for (const [doc, msg] of cases) {
      const { page, errors } = await open(doc as Trace);
      expect(await page.getAttribute('html', 'data-ready')).toBe('error');
      expect(await page.getAttribute('#fatal', 'role')).toBe('alert');
      expect(await page.textContent('#fatal h1')).toBe('Cannot show this trace');
      expect(await page.textContent('#fatal p')).toMatch(msg);
      expect(await page.$('#timeline')).toBeNull();
      expect(errors).toEqual([]);
    }
  });

  it('a real scenario trace (the driver-mmap example, 6.12) renders every step', async () => {
    const t = runDemo('6.12', {}, []);
    const { page, errors } = await open(t);
    expect(await page.getAttribute('html', 'data-ready')).toBe('true');
    expect(await page.$$('#timeline tbody tr.step')).toHaveLength(t.steps.length + 1);
    expect(await texts(page, '#timeline tr.lanes th.lane')).toEqual(
      t.threads.map((th) => expect.stringContaining(th.name)),
    );
    expect(await page.textContent('#reports')).toContain('No sanitizer reports');
    // The lookup's note at step 5 (follow_pfnmap_start, PTE lock held until _end).
    const note5 = t.notes.find((n) => n.step === 5)!;
    expect(await page.textContent('tr.annot[data-owner="5"]')).toContain(note5.text);
    await page.keyboard.press('End');
    expect(await selected(page)).toBe(String(t.steps.at(-1)!.index));
    expect(errors).toEqual([]);
  });
});

describe.skipIf(!HAVE_BROWSER)(
  'renderHtml of a library scenario counterexample (pfnsim check, then run --json)',
  () => {
    let browser: Browser;
    let context: BrowserContext | undefined;
    beforeAll(async () => {
      browser = await launch();
    });
    afterAll(async () => {
      await context?.close();
      await browser?.close();
      cleanup();
    });

    /** Runs the CLI in-process and returns what it printed. */
    async function cli(argv: string[]): Promise<string> {
      let out = '';
      let err = '';
      const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) });
      if (code !== 0 && code !== 1) throw new Error(`pfnsim ${argv.join(' ')}: ${code} ${err}`);
      return out;
    }

    it('driver-mmap/unsafe on 6.12: the stale-pfn report, its three call paths, the state', async () => {
      const results = JSON.parse(
        await cli(['check', 'driver-mmap/unsafe', '-k', '6.12', '--json']),
      ) as { counterexample?: { replay: string } }[];
      const replay = results[0]!.counterexample!.replay;
      const args = replay.replace(/^pfnsim /, '').split(' ');
      const t = JSON.parse(await cli([...args, '--json'])) as Trace;
      expect(t.reports.length).toBeGreaterThan(0);
      const r = t.reports[0]!;
      const o = await openTrace(browser, t);
      context = o.context;
      const { page, errors, requests } = o;
      expect(await page.textContent('#verdict')).toBe(t.verdict);
      // The trace's own replay command: the counterexample's schedule (which ends at the
      // report) extended by the steps the run then took without preemption.
      expect(await page.textContent('#replay')).toBe(t.replay);
      const prefix = /--schedule (\S+)/.exec(replay)![1]!;
      expect(formatSchedule(t.schedule.slice(0, parseSchedule(prefix).length))).toBe(prefix);
      expect(await page.$$('#timeline tbody tr.step')).toHaveLength(t.steps.length + 1);
      // Opens on the report's step; the report is marked on its row.
      expect(await selected(page)).toBe(String(r.step));
      await page.click(`tr[data-step="${r.step}"] button.report-mark`);
      expect(await page.textContent('#report-detail h3')).toBe(r.title);
      const sites = (['obtained', 'ended', 'used'] as const).filter((k) => r[k]);
      expect(
        await page.$$eval('#report-detail .sites a.site-link', (els) =>
          els.map((e) => [e.getAttribute('data-site'), Number(e.getAttribute('data-step'))]),
        ),
      ).toEqual(sites.map((k) => [k, r[k]!.step]));
      for (const k of sites) {
        await page.click(`#report-detail a.site-link[data-site="${k}"]`);
        expect(await selected(page)).toBe(String(r[k]!.step));
        expect(await page.getAttribute(`tr[data-step="${r[k]!.step}"]`, 'aria-current')).toBe(
          'step',
        );
      }
      // The state panel shows the snapshot at or before the selected step, with the frame.
      const snap = [...t.snapshots].reverse().find((s) => s.step <= r[sites.at(-1)!]!.step);
      if (snap) {
        expect(await page.getAttribute('#snapinfo', 'data-snapshot')).toBe(String(snap.step));
        if (snap.frames.some((f) => f.pfn === r.pfn))
          expect(await page.$(`#frames-table tr[data-pfn="${r.pfn}"]`)).not.toBeNull();
      }
      expect(requests.every((u) => u.startsWith('file:'))).toBe(true);
      expect(errors).toEqual([]);
    });
  },
);
