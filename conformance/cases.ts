/**
 * The agreement cases: every (mapping kind x entry point) pair is run on the live kernel
 * by the C probe (conformance/probe.c) and in the model at the live kernel's version.
 * The ids are shared by both sides; a result is a short string:
 *   'ok'               the call succeeded (for counts: the whole range was done)
 *   'short:N'          a count N smaller than asked
 *   '-EFAULT', ...     the negated errno the call returned
 *   'SIGBUS', 'SIGSEGV' a CPU access (or the call) raised the signal
 *   'skip:<why>'       the case cannot be set up here (reported, never compared)
 *
 * Setup (conformance/README.md has the details): each case runs in a fresh process with a
 * fresh mapping of 2 pages (hugetlb and THP: one 2 MiB page). The mapping is touched before
 * the entry point runs: each page written once if the mapping is writable, read once if it is
 * read-only; prot-none and the kernel-made mappings (vvar, perf-ring, mixedmap-ring,
 * aio-ring) are left as mmap/io_setup made them. Every entry point acts on the first
 * 4096 bytes of the mapping.
 */
export const MAPPING_KINDS = [
  { id: 'anon-private', what: 'mmap(MAP_PRIVATE|MAP_ANONYMOUS, PROT_READ|PROT_WRITE), touched' },
  { id: 'anon-shared', what: 'mmap(MAP_SHARED|MAP_ANONYMOUS, PROT_READ|PROT_WRITE), touched' },
  { id: 'devzero-private', what: 'mmap of /dev/zero, MAP_PRIVATE, read-write, touched' },
  { id: 'devzero-shared', what: 'mmap of /dev/zero, MAP_SHARED, read-write, touched' },
  { id: 'memfd-shared', what: 'memfd_create + ftruncate, MAP_SHARED read-write, touched' },
  { id: 'tmpfs-shared', what: 'a file on tmpfs (/dev/shm), MAP_SHARED read-write, touched' },
  {
    id: 'tmpfs-private',
    what: 'a file on tmpfs, MAP_PRIVATE read-write, touched (so COWed to anon pages)',
  },
  {
    id: 'ext4-shared-rw',
    what: 'a file on the root (ext4) fs opened O_RDWR, MAP_SHARED read-write, touched',
  },
  {
    id: 'ext4-private-rw',
    what: 'a file on ext4 opened O_RDWR, MAP_PRIVATE read-write, touched (so COWed to anon pages)',
  },
  {
    id: 'ext4-shared-ro',
    what: 'a file on ext4 opened O_RDONLY, MAP_SHARED PROT_READ, touched (read)',
  },
  {
    id: 'ext4-private-ro',
    what: 'a file on ext4 opened O_RDONLY, MAP_PRIVATE PROT_READ, touched (read: page-cache pages)',
  },
  {
    id: 'hugetlb-anon',
    what: 'mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB), one 2 MiB page, touched',
  },
  {
    id: 'hugetlb-memfd',
    what: 'memfd_create(MFD_HUGETLB) + ftruncate, MAP_SHARED, one 2 MiB page, touched',
  },
  { id: 'thp-anon', what: 'a 2 MiB-aligned private anonymous range with MADV_HUGEPAGE, touched' },
  { id: 'secretmem', what: 'memfd_secret + ftruncate, MAP_SHARED, touched' },
  { id: 'prot-none', what: 'private anonymous PROT_NONE, untouched' },
  {
    id: 'anon-readonly',
    what: 'private anonymous PROT_READ, touched by reading (zero page), never written',
  },
  {
    id: 'vvar',
    what: "the process's [vvar] mapping (VM_IO|VM_PFNMAP, fault handler inserts pfns), untouched",
  },
  {
    id: 'perf-ring',
    what: 'perf_event_open(PERF_COUNT_SW_DUMMY) ring, 1+1 pages: remap_pfn_range at mmap, read-only PTEs, pfn_mkwrite allows page 0 and SIGBUSes past it',
  },
  {
    id: 'mixedmap-ring',
    what: 'io_uring SQ ring mmap, first 2 pages (VM_MIXEDMAP via vm_insert_pages at mmap)',
  },
  {
    id: 'aio-ring',
    what: 'the AIO ring of io_setup(128) (shared file mapping with page_mkwrite), untouched',
  },
] as const;

export const ENTRY_POINTS = [
  { id: 'cpu-read', what: 'a plain load' },
  { id: 'cpu-write', what: 'a plain store' },
  {
    id: 'io_uring-register',
    what: 'IORING_REGISTER_BUFFERS: pin_user_pages_fast(FOLL_WRITE|FOLL_LONGTERM)',
  },
  { id: 'process_vm_readv', what: 'process_vm_readv from the range: pin_user_pages_remote' },
  {
    id: 'process_vm_writev',
    what: 'process_vm_writev into the range: pin_user_pages_remote(FOLL_WRITE)',
  },
  { id: 'vmsplice', what: 'vmsplice of the range into a pipe: FOLL_GET' },
  {
    id: 'proc-mem-read',
    what: 'pread of /proc/self/mem: get_user_pages_remote(FOLL_FORCE), ->access fallback',
  },
  {
    id: 'proc-mem-write',
    what: 'pwrite of /proc/self/mem: FOLL_FORCE|FOLL_WRITE, ->access fallback',
  },
  {
    id: 'odirect-read',
    what: 'O_DIRECT read from an ext4 file into the range: FOLL_PIN|FOLL_WRITE',
  },
  { id: 'odirect-write', what: 'O_DIRECT write of the range to an ext4 file: FOLL_PIN' },
  { id: 'madv-populate-read', what: 'MADV_POPULATE_READ' },
  { id: 'madv-populate-write', what: 'MADV_POPULATE_WRITE' },
  { id: 'mlock', what: 'mlock of the range' },
  { id: 'futex-shared', what: 'FUTEX_WAKE (shared) on the first word: get_futex_key' },
] as const;

export type MappingKindId = (typeof MAPPING_KINDS)[number]['id'];
export type EntryPointId = (typeof ENTRY_POINTS)[number]['id'];
/** Results keyed `${kind}/${entry}`. */
export type ResultTable = Record<string, string>;
