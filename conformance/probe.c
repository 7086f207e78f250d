/*
 * pfnsim conformance probe: runs every (mapping kind x entry point) case of
 * conformance/cases.ts on the live kernel and prints one line per case:
 *
 *   <kind>/<entry> <result>
 *
 * result: ok | short:N | -E<NAME> | SIGBUS | SIGSEGV | skip:<why>  (see cases.ts).
 * Lines starting with '#' describe the machine (uname, sysctls).
 *
 * Each case runs in its own forked child: the child sets up a fresh mapping,
 * touches it, writes "R" to a pipe, runs the entry point on the first 4 KiB of
 * the mapping and writes the result.  A signal after "R" is the case's result;
 * a signal before it makes the case a skip.
 *
 * Build: cc -O2 -Wall -Wextra -o probe conformance/probe.c
 * Usage: probe [-d DIR] [CASE-PREFIX...]
 *   -d DIR  directory on an ext4 file system for the file-backed and O_DIRECT
 *           cases (default /var/tmp); CASE-PREFIX limits the run ("vvar/", ...).
 * Needs root for hugetlb (it raises /proc/sys/vm/nr_hugepages by up to 4 pages
 * and restores the old value at exit), perf_event_open and /proc/self/mem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <linux/magic.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096UL
#define HPAGE (2UL << 20)
#define FILE_LEN (2 * PG)
#define NR_HUGE 4

static const char *const kinds[] = {
	"anon-private", "anon-shared", "devzero-private", "devzero-shared",
	"memfd-shared", "tmpfs-shared", "tmpfs-private", "ext4-shared-rw",
	"ext4-private-rw", "ext4-shared-ro", "ext4-private-ro", "hugetlb-anon",
	"hugetlb-memfd", "thp-anon", "secretmem", "prot-none", "anon-readonly",
	"vvar", "perf-ring", "mixedmap-ring", "aio-ring",
};
static const char *const entries[] = {
	"cpu-read", "cpu-write", "io_uring-register", "process_vm_readv",
	"process_vm_writev", "vmsplice", "proc-mem-read", "proc-mem-write",
	"odirect-read", "odirect-write", "madv-populate-read",
	"madv-populate-write", "mlock", "futex-shared",
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))
#define NENTRIES (sizeof(entries) / sizeof(entries[0]))

static char dir[256] = "/var/tmp";
static char map_path[300], odirect_path[300];
static int dir_is_ext4;
static long old_nr_hugepages = -1;

/* ---- results ---------------------------------------------------------- */

static const struct { int e; const char *name; } errnames[] = {
#define E(x) { x, "-" #x }
	E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(EBADF),
	E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST),
	E(ENODEV), E(EINVAL), E(ENOSPC), E(ESPIPE), E(ERANGE), E(ENOSYS),
	E(EOPNOTSUPP), E(EOVERFLOW), E(EREMOTEIO), E(EHWPOISON),
#undef E
};

static const char *errname(int e)
{
	static char buf[32];

	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].e == e)
			return errnames[i].name;
	snprintf(buf, sizeof(buf), "-ERRNO%d", e);
	return buf;
}

/* A call returning 0 on success, -1 and errno on failure. */
static const char *status(long r)
{
	return r < 0 ? errname(errno) : "ok";
}

/* A call returning a count of bytes. */
static const char *count(long r, size_t want)
{
	static char buf[32];

	if (r < 0)
		return errname(errno);
	if ((size_t)r == want)
		return "ok";
	snprintf(buf, sizeof(buf), "short:%ld", r);
	return buf;
}

/* ---- small helpers ------------------------------------------------------ */

static long read_long(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	long v = -1;

	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = strtol(buf, NULL, 10);
		close(fd);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY), n, ok;

	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	ok = write(fd, buf, n) == n;
	close(fd);
	return ok ? 0 : -1;
}

static void print_setting(const char *key, const char *path)
{
	char buf[256] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("# %s %s\n", key, n > 0 ? buf : "(unreadable)");
}

/* Address range of the line of /proc/self/maps named exactly `name`. */
static char *find_map(const char *name, size_t *len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long lo, hi;
	char *r = NULL;

	while (f && fgets(line, sizeof(line), f)) {
		char *nm = strrchr(line, ' ');

		if (!nm || strcmp(nm + 1, name) != 0 || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		r = (char *)lo;
		*len = hi - lo;
		break;
	}
	if (f)
		fclose(f);
	return r;
}

/* AnonHugePages (kB) of the VMA starting at p, from /proc/self/smaps. */
static long anon_huge_kb(void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long lo, hi;
	int in = 0;
	long kb = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo == (unsigned long)p;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

/* The VmFlags line of /proc/self/smaps for the VMA containing p. */
static void print_vmflags(const char *k, void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long lo, hi;
	int in = 0;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo <= (unsigned long)p && (unsigned long)p < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			printf("# vmflags %s%s", k, line + 8);
	}
	if (f)
		fclose(f);
}

/* Each page written once (or read, for read-only kinds) so it is present. */
static void touch(char *p, size_t len, int write)
{
	for (size_t off = 0; off < len; off += PG) {
		if (write)
			((volatile char *)p)[off] = 1;
		else
			(void)((volatile char *)p)[off];
	}
}

/* ---- mapping kinds -------------------------------------------------------
 * Each returns the mapping (the entry point uses its first 4 KiB) or NULL
 * with *why set.  Runs in the case's child. */

static char *map_fd(int fd, size_t len, int prot, int flags, const char **why)
{
	char *p;

	if (fd < 0) {
		*why = "open";
		return NULL;
	}
	p = mmap(NULL, len, prot, flags, fd, 0);
	if (p == MAP_FAILED) {
		*why = "mmap";
		return NULL;
	}
	return p;
}

static char *map_sized(int fd, size_t len, int flags, const char **why)
{
	if (fd >= 0 && ftruncate(fd, len) < 0) {
		*why = "ftruncate";
		return NULL;
	}
	return map_fd(fd, len, PROT_READ | PROT_WRITE, flags, why);
}

static char *setup(const char *k, const char **why)
{
	const int rw = PROT_READ | PROT_WRITE;
	const int anon = MAP_PRIVATE | MAP_ANONYMOUS;
	char *p = NULL;
	size_t len = FILE_LEN;
	int w = 1; /* touch by writing; 0: by reading; -1: leave untouched */

	*why = "mmap";
	if (!strcmp(k, "anon-private")) {
		p = mmap(NULL, len, rw, anon, -1, 0);
	} else if (!strcmp(k, "anon-shared")) {
		p = mmap(NULL, len, rw, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	} else if (!strcmp(k, "devzero-private") || !strcmp(k, "devzero-shared")) {
		p = map_fd(open("/dev/zero", O_RDWR), len, rw,
			   k[8] == 'p' ? MAP_PRIVATE : MAP_SHARED, why);
	} else if (!strcmp(k, "memfd-shared")) {
		p = map_sized(memfd_create("pfnsim", 0), len, MAP_SHARED, why);
	} else if (!strncmp(k, "tmpfs-", 6)) {
		char path[64];
		struct statfs s;
		int fd;

		snprintf(path, sizeof(path), "/dev/shm/pfnsim-probe-%d", getpid());
		fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		unlink(path);
		if (fd >= 0 && (fstatfs(fd, &s) < 0 || s.f_type != TMPFS_MAGIC)) {
			*why = "dev-shm-not-tmpfs";
			return NULL;
		}
		p = map_sized(fd, len, k[6] == 'p' ? MAP_PRIVATE : MAP_SHARED, why);
	} else if (!strncmp(k, "ext4-", 5)) {
		int ro = strstr(k, "-ro") != NULL;

		if (!dir_is_ext4) {
			*why = "dir-not-ext4";
			return NULL;
		}
		p = map_fd(open(map_path, ro ? O_RDONLY : O_RDWR), len, ro ? PROT_READ : rw,
			   strstr(k, "shared") ? MAP_SHARED : MAP_PRIVATE, why);
		w = !ro;
	} else if (!strcmp(k, "hugetlb-anon")) {
		len = HPAGE;
		p = mmap(NULL, len, rw, anon | MAP_HUGETLB, -1, 0);
		*why = "no-hugepages";
	} else if (!strcmp(k, "hugetlb-memfd")) {
		len = HPAGE;
		p = map_sized(memfd_create("pfnsim", MFD_HUGETLB), len, MAP_SHARED, why);
	} else if (!strcmp(k, "thp-anon")) {
		char *q = mmap(NULL, 2 * HPAGE, rw, anon, -1, 0);

		if (q == MAP_FAILED)
			return NULL;
		p = (char *)(((uintptr_t)q + HPAGE - 1) & ~(HPAGE - 1));
		if (p > q)
			munmap(q, p - q);
		munmap(p + HPAGE, q + HPAGE - p);
		len = HPAGE;
		if (madvise(p, len, MADV_HUGEPAGE) < 0) {
			*why = "madv-hugepage";
			return NULL;
		}
		touch(p, len, 1);
		if (anon_huge_kb(p) < 2048) {
			*why = "no-thp-allocated";
			return NULL;
		}
	} else if (!strcmp(k, "secretmem")) {
		int fd = syscall(SYS_memfd_secret, 0);

		*why = "memfd_secret";
		p = fd < 0 ? NULL : map_sized(fd, len, MAP_SHARED, why);
	} else if (!strcmp(k, "prot-none")) {
		p = mmap(NULL, len, PROT_NONE, anon, -1, 0);
		w = -1;
	} else if (!strcmp(k, "anon-readonly")) {
		p = mmap(NULL, len, PROT_READ, anon, -1, 0);
		w = 0;
	} else if (!strcmp(k, "vvar")) {
		p = find_map("[vvar]\n", &len);
		*why = "no-vvar";
		w = -1;
	} else if (!strcmp(k, "perf-ring")) {
		struct perf_event_attr a = {
			.type = PERF_TYPE_SOFTWARE, .size = sizeof(a),
			.config = PERF_COUNT_SW_DUMMY, .disabled = 1, .exclude_kernel = 1,
		};

		*why = "perf_event_open";
		p = map_fd(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0), len, rw, MAP_SHARED, why);
		w = -1;
	} else if (!strcmp(k, "mixedmap-ring")) {
		struct io_uring_params prm = { 0 };

		/* 256 entries: the SQ/CQ ring region spans 3 pages; map 2. */
		*why = "io_uring_setup";
		p = map_fd(syscall(SYS_io_uring_setup, 256, &prm), len, rw, MAP_SHARED, why);
		w = -1;
	} else if (!strcmp(k, "aio-ring")) {
		aio_context_t ctx = 0;

		/* The ring is mapped by io_setup; the context id is its address. */
		*why = "io_setup";
		p = syscall(SYS_io_setup, 128, &ctx) < 0 ? NULL : (char *)ctx;
		w = -1;
	}
	if (p == MAP_FAILED)
		p = NULL;
	if (p && w >= 0 && strcmp(k, "thp-anon"))
		touch(p, len, w);
	return p;
}

/* ---- entry points ------------------------------------------------------- */

static const char *run_entry(const char *e, char *p)
{
	static char buf[PG] __attribute__((aligned(PG)));
	struct iovec local = { buf, PG }, remote = { p, PG };
	off_t at = (off_t)(uintptr_t)p;
	int fd;

	if (!strcmp(e, "cpu-read")) {
		(void)*(volatile char *)p;
		return "ok";
	}
	if (!strcmp(e, "cpu-write")) {
		*(volatile char *)p = 0;
		return "ok";
	}
	if (!strcmp(e, "io_uring-register")) {
		struct io_uring_params prm = { 0 };
		long r;

		fd = syscall(SYS_io_uring_setup, 4, &prm);
		if (fd < 0)
			return "skip:io_uring_setup";
		r = syscall(SYS_io_uring_register, fd, IORING_REGISTER_BUFFERS, &remote, 1);
		if (r == 0)
			syscall(SYS_io_uring_register, fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
		return status(r);
	}
	if (!strcmp(e, "process_vm_readv"))
		return count(process_vm_readv(getpid(), &local, 1, &remote, 1, 0), PG);
	if (!strcmp(e, "process_vm_writev"))
		return count(process_vm_writev(getpid(), &local, 1, &remote, 1, 0), PG);
	if (!strcmp(e, "vmsplice")) {
		int pfd[2];

		if (pipe(pfd) < 0)
			return "skip:pipe";
		return count(vmsplice(pfd[1], &remote, 1, 0), PG);
	}
	if (!strncmp(e, "proc-mem-", 9)) {
		fd = open("/proc/self/mem", O_RDWR);
		if (fd < 0)
			return "skip:open-proc-self-mem";
		if (e[9] == 'r')
			return count(pread(fd, buf, PG, at), PG);
		return count(pwrite(fd, buf, PG, at), PG);
	}
	if (!strncmp(e, "odirect-", 8)) {
		if (!dir_is_ext4)
			return "skip:dir-not-ext4";
		fd = open(odirect_path, O_RDWR | O_DIRECT);
		if (fd < 0)
			return "skip:open-o_direct";
		if (e[8] == 'r')
			return count(pread(fd, p, PG, 0), PG);
		return count(pwrite(fd, p, PG, 0), PG);
	}
	if (!strcmp(e, "madv-populate-read"))
		return status(madvise(p, PG, MADV_POPULATE_READ));
	if (!strcmp(e, "madv-populate-write"))
		return status(madvise(p, PG, MADV_POPULATE_WRITE));
	if (!strcmp(e, "mlock"))
		return status(mlock(p, PG));
	if (!strcmp(e, "futex-shared")) {
		long r = syscall(SYS_futex, p, FUTEX_WAKE, 1, NULL, NULL, 0);

		return r < 0 ? errname(errno) : "ok";
	}
	return "skip:unknown-entry";
}

/* ---- one case ----------------------------------------------------------- */

static void child(int out, const char *k, const char *e)
{
	const char *why, *r;
	char *p;

	alarm(10);
	p = setup(k, &why);
	if (!p) {
		dprintf(out, "skip:%s%s", why, errno ? errname(errno) : "");
		_exit(0);
	}
	if (write(out, "R", 1) != 1)
		_exit(1);
	r = run_entry(e, p);
	if (write(out, r, strlen(r)) < 0)
		_exit(1);
	_exit(0);
}

/* One child per kind: set it up and print its VmFlags. */
static void describe_kind(const char *k)
{
	const char *why;
	pid_t pid;
	char *p;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		alarm(10);
		p = setup(k, &why);
		if (p)
			print_vmflags(k, p);
		else
			printf("# vmflags %s (setup failed: %s)\n", k, why);
		fflush(stdout);
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void run_case(const char *k, const char *e)
{
	char res[128] = "";
	size_t n = 0;
	ssize_t got;
	int pfd[2], st;
	pid_t pid;

	fflush(stdout);
	if (pipe(pfd) < 0 || (pid = fork()) < 0) {
		perror("pipe/fork");
		exit(2);
	}
	if (pid == 0) {
		close(pfd[0]);
		errno = 0;
		child(pfd[1], k, e);
	}
	close(pfd[1]);
	while (n < sizeof(res) - 1 && (got = read(pfd[0], res + n, sizeof(res) - 1 - n)) > 0)
		n += got;
	res[n] = 0;
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		const char *name = sig == SIGBUS ? "SIGBUS" : sig == SIGSEGV ? "SIGSEGV"
				 : sig == SIGALRM ? "TIMEOUT" : "SIGNAL";

		if (res[0] == 'R' && sig != SIGALRM)
			printf("%s/%s %s\n", k, e, name);
		else
			printf("%s/%s skip:%s-%s\n", k, e, res[0] == 'R' ? "entry" : "setup", name);
	} else if (res[0] == 'R') {
		printf("%s/%s %s\n", k, e, res[1] ? res + 1 : "skip:entry-no-result");
	} else {
		printf("%s/%s %s\n", k, e, n ? res : "skip:child-failed");
	}
}

/* ---- machine setup and main --------------------------------------------- */

static void cleanup(void)
{
	if (old_nr_hugepages >= 0)
		write_long("/proc/sys/vm/nr_hugepages", old_nr_hugepages);
	if (map_path[0])
		unlink(map_path);
	if (odirect_path[0])
		unlink(odirect_path);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int make_file(char *path, size_t size, const char *name)
{
	char data[FILE_LEN];
	int fd;

	snprintf(path, 300, "%s/pfnsim-probe-%d-%s", dir, getpid(), name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	memset(data, 'p', sizeof(data));
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || fsync(fd) < 0) {
		perror(path);
		path[0] = 0;
		return -1;
	}
	close(fd);
	return 0;
}

/* Make NR_HUGE free 2 MiB pages available; remember the old pool size. */
static void reserve_hugepages(void)
{
	const char *nr = "/proc/sys/vm/nr_hugepages";
	const char *fr = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
	long old = read_long(nr), free = read_long(fr);

	printf("# nr_hugepages_before_run %ld\n", old);
	if (free < 0)
		free = 0;
	if (old >= 0 && free < NR_HUGE) {
		old_nr_hugepages = old;
		if (write_long(nr, old + NR_HUGE - free) < 0)
			printf("# nr_hugepages_raise_failed %s\n", strerror(errno));
	}
	printf("# hugepages_free_for_run %ld\n", read_long(fr));
}

int main(int argc, char **argv)
{
	struct utsname u;
	struct statfs s;
	size_t vlen = 0;
	char *v;
	int opt;

	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt != 'd') {
			fprintf(stderr, "usage: %s [-d DIR] [CASE-PREFIX...]\n", argv[0]);
			return 2;
		}
		snprintf(dir, sizeof(dir), "%s", optarg);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	uname(&u);
	printf("# uname-r %s\n", u.release);
	printf("# uid %d\n", (int)getuid());
	print_setting("thp_enabled", "/sys/kernel/mm/transparent_hugepage/enabled");
	print_setting("thp_defrag", "/sys/kernel/mm/transparent_hugepage/defrag");
	print_setting("perf_event_paranoid", "/proc/sys/kernel/perf_event_paranoid");
	print_setting("io_uring_disabled", "/proc/sys/kernel/io_uring_disabled");
	print_setting("secretmem_enable", "/sys/module/secretmem/parameters/enable");
	v = find_map("[vvar]\n", &vlen);
	printf("# vvar %zu pages", v ? vlen / PG : 0);
	v = find_map("[vvar_vclock]\n", &vlen);
	printf("%s\n", v ? "; [vvar_vclock] is a separate VMA (not used)" : "");
	dir_is_ext4 = statfs(dir, &s) == 0 && s.f_type == EXT4_SUPER_MAGIC;
	printf("# dir %s %s\n", dir, dir_is_ext4 ? "ext4" : "not-ext4");

	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	if (dir_is_ext4 && (make_file(map_path, FILE_LEN, "map") < 0 ||
			    make_file(odirect_path, FILE_LEN, "odirect") < 0))
		dir_is_ext4 = 0;
	reserve_hugepages();

	for (size_t i = 0; i < NKINDS; i++)
		describe_kind(kinds[i]);
	for (size_t i = 0; i < NKINDS; i++) {
		for (size_t j = 0; j < NENTRIES; j++) {
			char id[80];
			int want = optind == argc;

			snprintf(id, sizeof(id), "%s/%s", kinds[i], entries[j]);
			for (int a = optind; a < argc; a++)
				want |= !strncmp(id, argv[a], strlen(argv[a]));
			if (want)
				run_case(kinds[i], entries[j]);
		}
	}
	return 0;
}
