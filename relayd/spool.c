/*
 * spool.c: mailboxes.  STATEDIR/spool/USER/ holds one file per item, named
 * by its ID "SEC.NSEC.PID" (CLOCK_REALTIME when stored, nanoseconds as 9
 * digits, the storing worker's pid).  A file holds the item's push without
 * the ID: "MSG FROM TIME BODY" or "RECEIPT MSGID READER TIME".
 *
 * Many workers may use one mailbox at once without a lock, because every
 * change is one atomic file-system operation:
 * - store: write ".tmp.PID.N", fsync, link() to the ID (EEXIST: take a new
 *   ID), unlink the temporary name, fsync the directory.  A reader never
 *   sees a partial item and an ID is never reused.
 * - ACK: rename ID to ".ack.ID" claims the item (only one rename wins);
 *   the caller then stores the receipt and calls spool_finish(), which
 *   unlinks the claim and fsyncs the directory.
 * - startup sweep: a ".ack.*" left by a crash goes back to its ID (the ACK
 *   never answered, so the item must stay), a ".tmp.*" is removed.
 * A list is the names that parse as IDs, sorted by (sec, nsec, pid): the
 * order items were stored in, stable across restarts.
 *
 * User names reach this file only after proto_valid_user(), and IDs only
 * after spool_valid_id(), so no name can walk out of the spool.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relayd.h"

#define SPOOL_TMP	".tmp."
#define SPOOL_ACK	".ack."

static char	*spool_root;
static unsigned long spool_tmpseq;

struct spool_key {
	uint64_t	 sec;
	uint64_t	 nsec;
	uint64_t	 pid;
	char		*id;
};

/* Sets STATEDIR/spool as the root, created 0700 if missing. */
int
spool_init(const char *statedir, const char **errstr)
{
	char	*root;

	if (asprintf(&root, "%s/spool", statedir) == -1) {
		*errstr = "out of memory";
		return -1;
	}
	if (mkdir(root, 0700) == -1 && errno != EEXIST) {
		*errstr = strerror(errno);
		free(root);
		return -1;
	}
	free(spool_root);
	spool_root = root;
	return 0;
}

void
spool_free(void)
{
	free(spool_root);
	spool_root = NULL;
}

/* The mailbox tree's path, for the hub (sandbox.c hands it to workers). */
const char *
spool_dir(void)
{
	return spool_root;
}

/*
 * In a worker that has chrooted into the mailbox tree: every path is now
 * relative to the working directory, the new root.
 */
int
spool_chrooted(void)
{
	char	*root;

	if ((root = strdup(".")) == NULL)
		return -1;
	free(spool_root);
	spool_root = root;
	return 0;
}

static int
spool_digits(const char *s, size_t len, size_t max, uint64_t *v)
{
	size_t	 i;

	if (len == 0 || len > max)
		return -1;
	*v = 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* Parses "SEC.NSEC.PID" (NSEC exactly 9 digits).  0 if ok, else -1. */
static int
spool_parse_id(const char *id, size_t len, struct spool_key *k)
{
	const char	*d1, *d2, *end = id + len;

	if (len == 0 || len > ID_MAX)
		return -1;
	if ((d1 = memchr(id, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', end - d1 - 1)) == NULL)
		return -1;
	if (spool_digits(id, d1 - id, 19, &k->sec) == -1 ||
	    d2 - d1 - 1 != 9 ||
	    spool_digits(d1 + 1, 9, 9, &k->nsec) == -1 ||
	    spool_digits(d2 + 1, end - d2 - 1, 10, &k->pid) == -1)
		return -1;
	return 0;
}

int
spool_valid_id(const char *id, size_t len)
{
	struct spool_key	 k;

	return spool_parse_id(id, len, &k) == 0;
}

static int
spool_path(char *p, size_t len, const char *user, const char *prefix,
    const char *name)
{
	int	 n;

	if (spool_root == NULL || !proto_valid_user(user, strlen(user))) {
		errno = EINVAL;
		return -1;
	}
	if (name == NULL)
		n = snprintf(p, len, "%s/%s", spool_root, user);
	else
		n = snprintf(p, len, "%s/%s/%s%s", spool_root, user, prefix,
		    name);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
spool_fsync_dir(const char *dir)
{
	int	 fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
spool_key_cmp(const void *a, const void *b)
{
	const struct spool_key *ka = a, *kb = b;

	if (ka->sec != kb->sec)
		return ka->sec < kb->sec ? -1 : 1;
	if (ka->nsec != kb->nsec)
		return ka->nsec < kb->nsec ? -1 : 1;
	if (ka->pid != kb->pid)
		return ka->pid < kb->pid ? -1 : 1;
	return 0;
}

void
spool_list_free(struct spool_list *l)
{
	size_t	 i;

	for (i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
	l->ids = NULL;
	l->n = 0;
}

/*
 * Lists user's items, oldest first.  A mailbox that does not exist yet is
 * empty.  0 on success, -1 with errno.
 */
int
spool_list(const char *user, struct spool_list *l)
{
	char			 dir[PATH_MAX];
	struct spool_key	*k = NULL, *nk;
	struct dirent		*de;
	DIR			*d;
	size_t			 n = 0, cap = 0, i;
	int			 saved;

	l->ids = NULL;
	l->n = 0;
	if (spool_path(dir, sizeof(dir), user, NULL, NULL) == -1)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct spool_key	 key;

		if (spool_parse_id(de->d_name, strlen(de->d_name), &key) == -1)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((nk = reallocarray(k, cap, sizeof(*k))) == NULL)
				goto fail;
			k = nk;
		}
		if ((key.id = strdup(de->d_name)) == NULL)
			goto fail;
		k[n++] = key;
	}
	if (errno != 0)
		goto fail;
	closedir(d);
	if (n == 0) {
		free(k);
		return 0;
	}
	qsort(k, n, sizeof(*k), spool_key_cmp);
	if ((l->ids = reallocarray(NULL, n, sizeof(char *))) == NULL) {
		saved = errno;
		for (i = 0; i < n; i++)
			free(k[i].id);
		free(k);
		errno = saved;
		return -1;
	}
	for (i = 0; i < n; i++)
		l->ids[i] = k[i].id;
	l->n = n;
	free(k);
	return 0;
 fail:
	saved = errno;
	closedir(d);
	for (i = 0; i < n; i++)
		free(k[i].id);
	free(k);
	errno = saved;
	return -1;
}

/* Counts user's items without keeping their names. */
int
spool_count(const char *user, size_t *count)
{
	char		 dir[PATH_MAX];
	struct dirent	*de;
	DIR		*d;

	*count = 0;
	if (spool_path(dir, sizeof(dir), user, NULL, NULL) == -1)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((errno = 0, de = readdir(d)) != NULL)
		if (spool_valid_id(de->d_name, strlen(de->d_name)))
			(*count)++;
	if (errno != 0) {
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

static int
spool_write_all(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* A full file system is worth saying so in the ERR reply. */
static void
spool_nospace(const char **errstr)
{
	if (errno == ENOSPC || errno == EDQUOT)
		*errstr = "no space left for mailboxes";
}

/*
 * Stores content (an item without its ID) in user's mailbox and returns
 * its new ID in id (ID_MAX + 1 bytes).  limit > 0 refuses a mailbox that
 * already holds that many items.  The item is durable when this returns
 * 0; on -1, *errstr says why in words fit for an ERR reply.
 */
int
spool_store(const char *user, const char *content, size_t len, size_t limit,
    char *id, const char **errstr)
{
	char		 dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	char		 tname[64];
	struct timespec	 ts;
	size_t		 count;
	int		 fd, tries;

	*errstr = "storage error";
	if (spool_path(dir, sizeof(dir), user, NULL, NULL) == -1)
		return -1;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		spool_nospace(errstr);
		log_warn("spool: mkdir %s", dir);
		return -1;
	}
	if (limit > 0) {
		if (spool_count(user, &count) == -1) {
			log_warn("spool: %s", dir);
			return -1;
		}
		if (count >= limit) {
			*errstr = "mailbox full";
			return -1;
		}
	}
	snprintf(tname, sizeof(tname), "%ld.%lu", (long)getpid(),
	    ++spool_tmpseq);
	if (spool_path(tmp, sizeof(tmp), user, SPOOL_TMP, tname) == -1)
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1) {
		spool_nospace(errstr);
		log_warn("spool: %s", tmp);
		return -1;
	}
	if (spool_write_all(fd, content, len) == -1 || fsync(fd) == -1) {
		spool_nospace(errstr);
		log_warn("spool: %s", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) == -1) {
		log_warn("spool: %s", tmp);
		unlink(tmp);
		return -1;
	}
	for (tries = 0; ; tries++) {
		if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
			fatal("clock_gettime");
		snprintf(id, ID_MAX + 1, "%lld.%09ld.%ld",
		    (long long)ts.tv_sec, ts.tv_nsec, (long)getpid());
		if (spool_path(path, sizeof(path), user, "", id) == -1) {
			unlink(tmp);
			return -1;
		}
		if (link(tmp, path) == 0)
			break;
		if (errno != EEXIST || tries > 100) {
			spool_nospace(errstr);
			log_warn("spool: link %s", path);
			unlink(tmp);
			return -1;
		}
	}
	if (unlink(tmp) == -1)
		log_warn("spool: unlink %s", tmp);
	if (spool_fsync_dir(dir) == -1) {
		/* The item is there but maybe not durable: do not claim it. */
		log_warn("spool: fsync %s", dir);
		unlink(path);
		return -1;
	}
	return 0;
}

/*
 * Reads one item (claimed: its ".ack." name) into b, at most max bytes.
 * -1 with ENOENT when the item is gone, EFBIG when it is too large.
 */
int
spool_read(const char *user, const char *id, int claimed, struct buf *b,
    size_t max)
{
	char		 path[PATH_MAX];
	unsigned char	 chunk[4096];
	size_t		 total = 0;
	ssize_t		 n;
	int		 fd, saved;

	buf_reset(b);
	if (!spool_valid_id(id, strlen(id))) {
		errno = ENOENT;
		return -1;
	}
	if (spool_path(path, sizeof(path), user, claimed ? SPOOL_ACK : "",
	    id) == -1)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	/*
	 * Through a chunk of our own: reserving a whole chunk in b would
	 * refuse an item that fits b but ends less than a chunk below its
	 * limit.
	 */
	for (;;) {
		if ((n = read(fd, chunk, sizeof(chunk))) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		total += n;
		if (total > max || buf_add(b, chunk, n) == -1) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	return 0;
 fail:
	saved = errno;
	close(fd);
	buf_reset(b);
	errno = saved;
	return -1;
}

static int
spool_rename(const char *user, const char *id, int claim)
{
	char	 from[PATH_MAX], to[PATH_MAX];

	if (!spool_valid_id(id, strlen(id))) {
		errno = ENOENT;
		return -1;
	}
	if (spool_path(from, sizeof(from), user, claim ? "" : SPOOL_ACK,
	    id) == -1 ||
	    spool_path(to, sizeof(to), user, claim ? SPOOL_ACK : "", id) == -1)
		return -1;
	return rename(from, to);
}

/* Claims an item for ACK.  -1 with ENOENT when it is not (or no longer) there. */
int
spool_claim(const char *user, const char *id)
{
	return spool_rename(user, id, 1);
}

/* Gives a claimed item back, when its ACK could not complete. */
int
spool_unclaim(const char *user, const char *id)
{
	return spool_rename(user, id, 0);
}

/* Removes a claimed item for good, durably. */
int
spool_finish(const char *user, const char *id)
{
	char	 path[PATH_MAX], dir[PATH_MAX];

	if (!spool_valid_id(id, strlen(id))) {
		errno = ENOENT;
		return -1;
	}
	if (spool_path(path, sizeof(path), user, SPOOL_ACK, id) == -1 ||
	    spool_path(dir, sizeof(dir), user, NULL, NULL) == -1)
		return -1;
	if (unlink(path) == -1)
		return -1;
	return spool_fsync_dir(dir);
}

static void
spool_sweep_dir(const char *user)
{
	char		 dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct dirent	*de;
	DIR		*d;
	const char	*name;
	int		 changed = 0;

	if (spool_path(dir, sizeof(dir), user, NULL, NULL) == -1)
		return;
	if ((d = opendir(dir)) == NULL) {
		log_warn("spool: %s", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		name = de->d_name;
		if (strncmp(name, SPOOL_TMP, strlen(SPOOL_TMP)) == 0) {
			if (spool_path(from, sizeof(from), user, "", name) ==
			    0 && unlink(from) == -1)
				log_warn("spool: unlink %s", from);
			changed = 1;
		} else if (strncmp(name, SPOOL_ACK, strlen(SPOOL_ACK)) == 0) {
			name += strlen(SPOOL_ACK);
			if (!spool_valid_id(name, strlen(name)))
				continue;
			if (spool_path(from, sizeof(from), user, SPOOL_ACK,
			    name) == -1 ||
			    spool_path(to, sizeof(to), user, "", name) == -1)
				continue;
			if (rename(from, to) == -1)
				log_warn("spool: rename %s", from);
			else
				log_info("spool: %s/%s: unfinished ACK undone",
				    user, name);
			changed = 1;
		}
	}
	closedir(d);
	if (changed && spool_fsync_dir(dir) == -1)
		log_warn("spool: fsync %s", dir);
}

/*
 * Run by the hub at start, before any worker: repairs what a crash in the
 * middle of a store or an ACK left behind.
 */
int
spool_sweep(void)
{
	struct dirent	*de;
	DIR		*d;

	if (spool_root == NULL || (d = opendir(spool_root)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!proto_valid_user(de->d_name, strlen(de->d_name)))
			continue;
		spool_sweep_dir(de->d_name);
	}
	closedir(d);
	return 0;
}

/*
 * Removes user's whole mailbox (relayctl deluser -r), run by the hub once
 * the user is gone from the users file.  The directory is opened without
 * following a symbolic link and emptied through its descriptor, so that
 * nothing outside the spool can be reached; only files are removed, and
 * a directory found inside is left with the mailbox (EISDIR).  An item
 * stored meanwhile by a session that still saw the user (ENOTEMPTY) is
 * removed by a second pass.  0 when there is no mailbox left.
 */
int
spool_remove_user(const char *user)
{
	struct dirent	*de;
	DIR		*d;
	int		 rootfd, fd, pass, rc = -1, saved;

	if (spool_root == NULL || !proto_valid_user(user, strlen(user))) {
		errno = EINVAL;
		return -1;
	}
	if ((rootfd = open(spool_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	for (pass = 0; pass < 3; pass++) {
		if ((fd = openat(rootfd, user, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) == -1) {
			if (errno == ENOENT)
				rc = 0;
			break;
		}
		if ((d = fdopendir(fd)) == NULL) {
			close(fd);
			break;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == -1 &&
			    errno != ENOENT)
				break;
		}
		saved = errno;
		closedir(d);
		if (de != NULL) {
			errno = saved;
			break;
		}
		if (unlinkat(rootfd, user, AT_REMOVEDIR) == 0) {
			(void)fsync(rootfd);
			rc = 0;
			break;
		}
		if (errno != ENOTEMPTY && errno != EEXIST)
			break;
	}
	saved = errno;
	close(rootfd);
	errno = saved;
	return rc;
}
