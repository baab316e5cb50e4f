/*
 * userdb.c: the users file.  Lines are NAME:MD5HEX (the MD5 of the
 * password, 32 lowercase hex characters), with `#' comments and blank
 * lines.  The whole file is loaded into a table sorted by name, so a
 * lookup is a binary search; a bad line refuses the whole file with
 * "FILE:LINE: reason" and the caller keeps whatever table it had.
 * userdb_add, userdb_remove and userdb_save change the table and write it
 * back atomically (temporary file, fsync, rename, directory fsync).
 *
 * The hashes are password-equivalent for the protocol: the file must not
 * be readable by group or others, and tables are wiped when freed.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relayd.h"

#define USERDB_LINE_MAX	256

struct userdb_entry {
	char	 name[USER_MAX + 1];
	char	 md5[MD5_HEX_LEN + 1];
};

struct userdb {
	struct userdb_entry	*e;
	size_t			 n;
	size_t			 cap;
};

/*
 * The entries live in their own pages, marked MADV_WIPEONFORK, so that
 * a process forked from the hub would find zeros there.  None is: the
 * workers come from the spawner (spawn.c), forked before the table was
 * loaded; this is the second line.
 */

static size_t
userdb_bytes(size_t cap)
{
	size_t	 pg = (size_t)sysconf(_SC_PAGESIZE);

	return (cap * sizeof(struct userdb_entry) + pg - 1) / pg * pg;
}

/* Zeroed room for cap entries, or NULL (cap must not overflow). */
static struct userdb_entry *
userdb_alloc(size_t cap)
{
	void	*p;
	size_t	 len;

	if (cap > SIZE_MAX / 2 / sizeof(struct userdb_entry)) {
		errno = ENOMEM;
		return NULL;
	}
	len = userdb_bytes(cap);
	if ((p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		return NULL;
	/* Where the kernel lacks it, the first line still holds. */
	(void)madvise(p, len, MADV_WIPEONFORK);
	return p;
}

static void
userdb_release(struct userdb_entry *e, size_t cap)
{
	if (e == NULL)
		return;
	explicit_bzero(e, cap * sizeof(*e));
	munmap(e, userdb_bytes(cap));
}

struct userdb *
userdb_new(void)
{
	return calloc(1, sizeof(struct userdb));
}

void
userdb_free(struct userdb *db)
{
	if (db == NULL)
		return;
	userdb_release(db->e, db->cap);
	free(db);
}

static int
userdb_cmp(const void *a, const void *b)
{
	const struct userdb_entry *ea = a, *eb = b;

	return strcmp(ea->name, eb->name);
}

static int
userdb_valid_md5(const char *s, size_t len)
{
	size_t	 i;

	if (len != MD5_HEX_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
userdb_grow(struct userdb *db)
{
	struct userdb_entry	*ne;
	size_t			 ncap;

	if (db->n < db->cap)
		return 0;
	ncap = db->cap == 0 ? 16 : db->cap * 2;
	if ((ne = userdb_alloc(ncap)) == NULL)
		return -1;
	if (db->e != NULL) {
		memcpy(ne, db->e, db->n * sizeof(*ne));
		userdb_release(db->e, db->cap);
	}
	db->e = ne;
	db->cap = ncap;
	return 0;
}

/*
 * Parses one line (no terminator) into the table.  Returns NULL or the
 * reason the line is bad.
 */
static const char *
userdb_parse_line(struct userdb *db, char *line, size_t len)
{
	struct userdb_entry	*e;
	char			*colon;
	size_t			 i, namelen;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len || line[i] == '#')
		return NULL;
	if (memchr(line, '\0', len) != NULL)
		return "NUL byte in line";
	if ((colon = strchr(line, ':')) == NULL)
		return "missing ':' between name and hash";
	namelen = colon - line;
	if (!proto_valid_user(line, namelen))
		return "bad user name";
	if (!userdb_valid_md5(colon + 1, len - namelen - 1))
		return "bad MD5 hash (need 32 lowercase hex digits)";
	if (userdb_grow(db) == -1)
		return "out of memory";
	e = &db->e[db->n++];
	memcpy(e->name, line, namelen);
	e->name[namelen] = '\0';
	memcpy(e->md5, colon + 1, MD5_HEX_LEN);
	e->md5[MD5_HEX_LEN] = '\0';
	return NULL;
}

/*
 * Refuses a users file that group or others may access, as ssh does for
 * private keys: the hashes in it are as good as passwords here.
 */
int
userdb_check_mode(const char *path, char *err, size_t errlen)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s: bad permissions %04o, must not be "
		    "accessible by group or others (chmod 600)", path,
		    (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/*
 * Loads path into a new table.  On success *dbp is the table; on failure
 * err holds "FILE:LINE: reason" (or "FILE: reason") and *dbp is untouched.
 */
int
userdb_load(const char *path, struct userdb **dbp, char *err, size_t errlen)
{
	struct userdb	*db;
	FILE		*fp;
	char		*line = NULL;
	size_t		 linecap = 0, i;
	ssize_t		 len;
	unsigned long	 lineno = 0;
	const char	*why;
	int		 rc = -1;

	if (userdb_check_mode(path, err, errlen) == -1)
		return -1;
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((db = userdb_new()) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(fp);
		return -1;
	}
	while ((len = getline(&line, &linecap, fp)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > USERDB_LINE_MAX) {
			snprintf(err, errlen, "%s:%lu: line too long", path,
			    lineno);
			goto done;
		}
		if ((why = userdb_parse_line(db, line, len)) != NULL) {
			snprintf(err, errlen, "%s:%lu: %s", path, lineno, why);
			goto done;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (db->n > 0)
		qsort(db->e, db->n, sizeof(*db->e), userdb_cmp);
	for (i = 1; i < db->n; i++) {
		if (strcmp(db->e[i - 1].name, db->e[i].name) == 0) {
			snprintf(err, errlen, "%s: duplicate user %s", path,
			    db->e[i].name);
			goto done;
		}
	}
	*dbp = db;
	db = NULL;
	rc = 0;
 done:
	if (line != NULL) {
		explicit_bzero(line, linecap);
		free(line);
	}
	fclose(fp);
	userdb_free(db);
	return rc;
}

/* Returns the MD5 hex of user (name, len), or NULL. */
const char *
userdb_lookup(const struct userdb *db, const char *name, size_t len)
{
	struct userdb_entry	 key;
	struct userdb_entry	*e;

	if (db == NULL || db->n == 0 || !proto_valid_user(name, len))
		return NULL;
	memcpy(key.name, name, len);
	key.name[len] = '\0';
	e = bsearch(&key, db->e, db->n, sizeof(*db->e), userdb_cmp);
	return e == NULL ? NULL : e->md5;
}

size_t
userdb_count(const struct userdb *db)
{
	return db == NULL ? 0 : db->n;
}

/* Adds or replaces a user.  -1: bad name or hash (EINVAL), or ENOMEM. */
int
userdb_add(struct userdb *db, const char *name, const char *md5)
{
	struct userdb_entry	*e;
	size_t			 len = strlen(name), i;

	if (!proto_valid_user(name, len) ||
	    !userdb_valid_md5(md5, strlen(md5))) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < db->n; i++) {
		if (strcmp(db->e[i].name, name) == 0) {
			memcpy(db->e[i].md5, md5, MD5_HEX_LEN + 1);
			return 0;
		}
	}
	if (userdb_grow(db) == -1)
		return -1;
	e = &db->e[db->n++];
	memcpy(e->name, name, len + 1);
	memcpy(e->md5, md5, MD5_HEX_LEN + 1);
	qsort(db->e, db->n, sizeof(*db->e), userdb_cmp);
	return 0;
}

/* Removes a user.  -1 with ENOENT if there is none. */
int
userdb_remove(struct userdb *db, const char *name)
{
	size_t	 i;

	for (i = 0; i < db->n; i++) {
		if (strcmp(db->e[i].name, name) == 0) {
			memmove(&db->e[i], &db->e[i + 1],
			    (db->n - i - 1) * sizeof(*db->e));
			db->n--;
			explicit_bzero(&db->e[db->n], sizeof(*db->e));
			return 0;
		}
	}
	errno = ENOENT;
	return -1;
}

/*
 * Writes the table to path atomically: a temporary file beside it (mode
 * 0600), fsync, rename over path, fsync of the directory.  Comments in
 * the old file are not kept.
 */
int
userdb_save(const struct userdb *db, const char *path, char *err,
    size_t errlen)
{
	char	 tmp[PATH_MAX], dir[PATH_MAX];
	FILE	*fp = NULL;
	size_t	 i;
	int	 fd = -1, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp) || strlcpy(dir, path, sizeof(dir)) >=
	    sizeof(dir)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		unlink(tmp);
		return -1;
	}
	for (i = 0; i < db->n; i++)
		fprintf(fp, "%s:%s\n", db->e[i].name, db->e[i].md5);
	if (fflush(fp) == EOF || ferror(fp) || fsync(fileno(fp)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		fclose(fp);
		unlink(tmp);
		return -1;
	}
	if (fclose(fp) == EOF || rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) !=
	    -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/*
 * A copy of the table, for a change that must reach the file before it
 * replaces the table in use.  NULL when out of memory.
 */
struct userdb *
userdb_dup(const struct userdb *db)
{
	struct userdb	*n;

	if ((n = userdb_new()) == NULL)
		return NULL;
	if (db == NULL || db->n == 0)
		return n;
	if ((n->e = userdb_alloc(db->n)) == NULL) {
		free(n);
		return NULL;
	}
	memcpy(n->e, db->e, db->n * sizeof(*n->e));
	n->n = n->cap = db->n;
	return n;
}

/* The name of user i (0 to userdb_count() - 1), in byte order. */
const char *
userdb_name(const struct userdb *db, size_t i)
{
	if (db == NULL || i >= db->n)
		return NULL;
	return db->e[i].name;
}
