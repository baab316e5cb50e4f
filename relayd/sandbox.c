/*
 * sandbox.c: what a worker gives up right after fork, before it reads a
 * byte from its client.
 *
 * Started as root, relayd keeps root only in the hub.  At start-up the
 * hub looks up the unprivileged user (relayd_conf.user, default
 * RELAYD_USER) and makes the mailbox tree STATEDIR/spool that user's.
 * Each worker then chroots into the mailbox tree, so that the users file,
 * the key file and the rest of the system are out of its reach, and
 * becomes that user: setgroups, setresgid, setresuid, then a check that
 * root cannot be had back.  Started as anyone else, relayd runs as that
 * user and says so once.
 *
 * Then every worker, privileged start or not, enters a seccomp-bpf filter
 * that allows the system calls a session needs and kills the process on
 * any other.  A compromised worker can at worst end its own session: it
 * cannot open a connection, run a program, trace or signal another
 * process, or map executable memory.  The filter is compiled once, by
 * libseccomp in the hub at start-up; a worker only writes its own pid
 * into the program and loads it: building it in each worker cost more
 * than the rest of a login, and some 50 KiB of private heap per session.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relayd.h"

/*
 * Under valgrind (make valgrind) a worker runs on valgrind's core, whose
 * own system calls (executable mappings of its translations among them)
 * the filter would kill: there, and only there, workers run unfiltered.
 * RUNNING_ON_VALGRIND is 0 on a real CPU.
 */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND	0
#endif

/*
 * The system calls of a worker.  Names that do not exist on this
 * architecture (open on arm64, say) are skipped.
 */
static const char *const sandbox_allow[] = {
	/* the client socket, the hub's pipes, the event loop */
	"read", "write", "writev", "ppoll", "shutdown", "close",
	/* mailboxes (spool.c): store, list, read, claim, remove */
	"open", "openat", "fstat", "newfstatat", "statx", "lseek", "fcntl",
	"getdents64", "fsync", "fdatasync", "mkdir", "mkdirat", "link",
	"linkat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
	/* clocks (the vDSO's fallbacks), Fernet IVs and nonces, IDs */
	"clock_gettime", "gettimeofday", "time", "getrandom", "getpid",
	/* qsort(3) of a mailbox list: glibc sizes its buffer by RAM */
	"sysinfo",
	/* malloc(3); mmap and mprotect are allowed below without PROT_EXEC */
	"brk", "munmap", "mremap", "madvise",
	/* signals: SIGTERM from the hub, set up once the filter is in */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	/* syslog(3), whose socket is opened before the chroot */
	"sendto",
	/* exit(3): libcrypto's exit handlers take its locks */
	"futex", "exit", "exit_group",
	/*
	 * The sanitizers' runtime (make asan), which calls these itself:
	 * sigaltstack for its stack-overflow handler, gettid and
	 * sched_yield in its locks, readlink of /proc/self/exe and prctl
	 * (PR_GET_DUMPABLE, PR_SET_VMA) when it reports an error.  None
	 * of them reaches outside the process.
	 */
	"sigaltstack", "gettid", "sched_yield", "readlink", "readlinkat",
	"prctl",
};

/*
 * The compiled filter stands this value for the worker's pid in its one
 * tgkill(2) rule: above any pid (PID_MAX_LIMIT is 2^22), and unlike any
 * system call number, architecture or argument that the filter compares.
 */
#define SANDBOX_PID_MARK	0x3ffffffeU
#define SANDBOX_PROG_MAX	512	/* instructions; ours has ~100 */

static struct sandbox {
	int		 entered;	/* this process is a confined worker */
	int		 privsep;	/* chroot and setresuid in workers */
	uid_t		 uid;
	gid_t		 gid;
	char		 user[64];
	char		*root;		/* the mailbox tree */
	unsigned short	 nprog;		/* instructions in prog */
	unsigned short	 pidat;		/* the one that compares the pid */
	struct sock_filter prog[SANDBOX_PROG_MAX];
} sandbox;

static void	 sandbox_compile(void);
static void	 sandbox_filter(void);

/*
 * The sanitizers' runtime, when relayd is built with it (make asan):
 * told before the chroot, it keeps what it needs from /proc for its
 * reports.  Weak, so a plain build has neither symbol.
 */
void	 __sanitizer_sandbox_on_notify(void *) __attribute__((__weak__));
int	 __lsan_is_turned_off(void);

/*
 * LeakSanitizer calls this at exit.  Its check stops the process with
 * ptrace(2) from a clone(2)d task and reads /proc, none of which a
 * confined worker may do (the filter would kill it at exit), so it is
 * off in workers; the hub, and every other program, are still checked.
 */
int
__lsan_is_turned_off(void)
{
	return sandbox.entered;
}

/* Gives one file of the mailbox tree to the workers' user. */
static void
sandbox_chown(int dirfd, const char *name, const char *path)
{
	struct stat	 st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		log_warn("%s", path);
		return;
	}
	if (S_ISLNK(st.st_mode) || (st.st_uid == sandbox.uid &&
	    st.st_gid == sandbox.gid))
		return;
	if (fchownat(dirfd, name, sandbox.uid, sandbox.gid,
	    AT_SYMLINK_NOFOLLOW) == -1)
		log_warn("chown %s", path);
}

/*
 * Makes STATEDIR/spool, each mailbox and each item the workers' user's,
 * so that a worker can store, read and remove there after it has given
 * up root.  Symbolic links are neither followed nor changed.
 */
static void
sandbox_chown_spool(void)
{
	struct dirent	*de, *ie;
	DIR		*d, *ud;
	int		 fd;

	sandbox_chown(AT_FDCWD, sandbox.root, sandbox.root);
	if ((fd = open(sandbox.root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL)
		fatal("%s", sandbox.root);
	while ((de = readdir(d)) != NULL) {
		if (!proto_valid_user(de->d_name, strlen(de->d_name)))
			continue;
		sandbox_chown(dirfd(d), de->d_name, de->d_name);
		if ((fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) == -1)
			continue;
		if ((ud = fdopendir(fd)) == NULL) {
			close(fd);
			continue;
		}
		while ((ie = readdir(ud)) != NULL)
			if (strcmp(ie->d_name, ".") != 0 &&
			    strcmp(ie->d_name, "..") != 0)
				sandbox_chown(dirfd(ud), ie->d_name,
				    ie->d_name);
		closedir(ud);
	}
	closedir(d);
}

/*
 * Called by the hub at start-up, before any worker: compiles the filter;
 * as root, finds user (fatal if it does not exist) and hands it the
 * mailbox tree spooldir.
 */
void
sandbox_init(const char *user, const char *spooldir)
{
	struct passwd	*pw;

	if (user == NULL)
		user = RELAYD_USER;
	if ((sandbox.root = strdup(spooldir)) == NULL)
		fatal("strdup");
	/* libseccomp's probes of the kernel fail on valgrind's core. */
	if (!RUNNING_ON_VALGRIND)
		sandbox_compile();
	if (geteuid() != 0) {
		pw = getpwuid(geteuid());
		log_info("running as %s: no privilege separation",
		    pw != NULL ? pw->pw_name : "a normal user");
		return;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		if (errno != 0)
			fatal("user %s", user);
		fatalx("user %s does not exist: relayd runs its sessions as "
		    "that user; create it with: useradd --system "
		    "--no-create-home --shell /usr/sbin/nologin %s", user,
		    user);
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0)
		fatalx("user %s: has uid or gid 0; relayd needs an "
		    "unprivileged user", user);
	if (strlcpy(sandbox.user, user, sizeof(sandbox.user)) >=
	    sizeof(sandbox.user))
		fatalx("user %s: name too long", user);
	sandbox.uid = pw->pw_uid;
	sandbox.gid = pw->pw_gid;
	sandbox.privsep = 1;
	sandbox_chown_spool();
	endpwent();
	log_info("sessions run as %s in %s", sandbox.user, sandbox.root);
}

/* The mailbox tree, and root: chroot and become the unprivileged user. */
static void
sandbox_drop(void)
{
	uid_t	 r, e, s;
	gid_t	 gr, ge, gs;

	if (chroot(sandbox.root) == -1)
		fatal("chroot %s", sandbox.root);
	if (chdir("/") == -1)
		fatal("chdir /");
	if (setgroups(1, &sandbox.gid) == -1)
		fatal("setgroups");
	if (setresgid(sandbox.gid, sandbox.gid, sandbox.gid) == -1)
		fatal("setresgid");
	if (setresuid(sandbox.uid, sandbox.uid, sandbox.uid) == -1)
		fatal("setresuid");
	/* Every id must be the user's, and root must be out of reach. */
	if (getresuid(&r, &e, &s) == -1 || getresgid(&gr, &ge, &gs) == -1)
		fatal("getresuid");
	if (r != sandbox.uid || e != sandbox.uid || s != sandbox.uid ||
	    gr != sandbox.gid || ge != sandbox.gid || gs != sandbox.gid)
		fatalx("ids not dropped to %s", sandbox.user);
	if (setresuid(0, 0, 0) != -1 || setuid(0) != -1 ||
	    setegid(0) != -1)
		fatalx("root could be regained after dropping to %s",
		    sandbox.user);
	if (spool_chrooted() == -1)
		fatal("spool");
}

static void
sandbox_rule(scmp_filter_ctx ctx, uint32_t action, const char *name,
    unsigned int n, const struct scmp_arg_cmp *cmp)
{
	int	 nr, rc;

	if ((nr = seccomp_syscall_resolve_name(name)) == __NR_SCMP_ERROR)
		return;		/* not a system call on this architecture */
	if ((rc = seccomp_rule_add_array(ctx, action, nr, n, cmp)) < 0)
		fatalx("seccomp: %s: %s", name, strerror(-rc));
}

/*
 * The filter.  Beyond the list: memory may be mapped or protected but
 * never executable; a signal may go only to this very process, and only
 * SIGABRT (abort(3)); socket(2) and connect(2) fail with EACCES instead
 * of killing, because syslog(3) tries them to reconnect when syslogd has
 * restarted: no log from this session, then, but it goes on.
 *
 * Compiled in the hub, with SANDBOX_PID_MARK for the pid, into
 * sandbox.prog: libseccomp writes the program to a memory file, and the
 * one instruction that compares against the mark is remembered.
 */
static void
sandbox_compile(void)
{
	scmp_filter_ctx		 ctx;
	struct scmp_arg_cmp	 cmp[2];
	struct stat		 st;
	size_t			 i, n;
	ssize_t			 r;
	int			 fd, rc, marks = 0;

	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		fatalx("seccomp_init failed");
	for (i = 0; i < sizeof(sandbox_allow) / sizeof(*sandbox_allow); i++)
		sandbox_rule(ctx, SCMP_ACT_ALLOW, sandbox_allow[i], 0, NULL);
	cmp[0] = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, cmp);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, "mprotect", 1, cmp);
	cmp[0] = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)SANDBOX_PID_MARK);
	cmp[1] = SCMP_A2(SCMP_CMP_EQ, SIGABRT);
	sandbox_rule(ctx, SCMP_ACT_ALLOW, "tgkill", 2, cmp);
	sandbox_rule(ctx, SCMP_ACT_ERRNO(EACCES), "socket", 0, NULL);
	sandbox_rule(ctx, SCMP_ACT_ERRNO(EACCES), "connect", 0, NULL);

	if ((fd = memfd_create("relayd-filter", MFD_CLOEXEC)) == -1)
		fatal("memfd_create");
	if ((rc = seccomp_export_bpf(ctx, fd)) < 0)
		fatalx("seccomp_export_bpf: %s", strerror(-rc));
	seccomp_release(ctx);
	if (fstat(fd, &st) == -1)
		fatal("seccomp filter");
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
	    (size_t)st.st_size > sizeof(sandbox.prog))
		fatalx("seccomp filter: %lld bytes", (long long)st.st_size);
	if ((r = pread(fd, sandbox.prog, st.st_size, 0)) != st.st_size)
		fatalx("seccomp filter: short read");
	close(fd);
	n = st.st_size / sizeof(struct sock_filter);
	for (i = 0; i < n; i++) {
		if (sandbox.prog[i].code == (BPF_JMP | BPF_JEQ | BPF_K) &&
		    sandbox.prog[i].k == SANDBOX_PID_MARK) {
			sandbox.pidat = i;
			marks++;
		}
	}
	if (marks != 1)
		fatalx("seccomp filter: %d pid comparisons, not 1", marks);
	sandbox.nprog = n;
}

/* In the worker: its own pid in the compiled program, then load it. */
static void
sandbox_filter(void)
{
	struct sock_fprog	 fp;

	sandbox.prog[sandbox.pidat].k = (uint32_t)getpid();
	fp.len = sandbox.nprog;
	fp.filter = sandbox.prog;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl PR_SET_NO_NEW_PRIVS");
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) == -1)
		fatal("prctl PR_SET_SECCOMP");
}

/*
 * Called in a new worker right after fork, with only its client socket
 * and its two pipes open (and syslog's socket).  Fatal on any failure:
 * a worker that cannot be confined does not serve.
 */
void
sandbox_worker(void)
{
	sandbox.entered = 1;
	if (__sanitizer_sandbox_on_notify != NULL)
		__sanitizer_sandbox_on_notify(NULL);
	if (sandbox.privsep)
		sandbox_drop();
	free(sandbox.root);
	sandbox.root = NULL;
	if (RUNNING_ON_VALGRIND) {
		log_info("under valgrind: no system call filter");
		return;
	}
	sandbox_filter();
}
