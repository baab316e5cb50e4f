/*
 * test_spool.c: mailboxes (relayd/spool.c) in a private temporary state
 * directory.  Store then list (oldest first, by number, not by text),
 * read back, fresh valid IDs, the count and the mailbox limit, the ACK
 * steps (claim by rename, a second claim losing, unclaim, finish), the
 * startup sweep of what a crash leaves, spool_valid_id() on a table of
 * hostile names, names in a mailbox that are not IDs, hostile user names
 * and IDs that must not reach outside the spool, removing a mailbox with
 * odd things in it, and a mailbox that cannot be written.
 *
 * spool.c keeps its root in a file static: each test has its own state
 * directory, spool_init() in setup and spool_free() in teardown, as
 * relayd.c calls them (spool_init(statedir), then spool_sweep()).
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "relayd.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char	 statedir[256];
static char	 root[PATH_MAX];	/* statedir/spool */

static int
setup(void **state)
{
	const char	*errstr = NULL;

	strlcpy(statedir, "/tmp/test_spool.XXXXXX", sizeof(statedir));
	if (mkdtemp(statedir) == NULL)
		return -1;
	snprintf(root, sizeof(root), "%s/spool", statedir);
	if (spool_init(statedir, &errstr) == -1)
		return -1;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_DP)
		return rmdir(p) == -1 ? -1 : 0;
	return unlink(p) == -1 ? -1 : 0;
}

/* Gives every directory its permissions back, so that rm_one can empty it. */
static int
chmod_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_D || type == FTW_DNR)
		(void)chmod(p, 0700);
	return 0;
}

static int
teardown(void **state)
{
	spool_free();
	(void)nftw(statedir, chmod_one, 16, FTW_PHYS);
	if (nftw(statedir, rm_one, 16, FTW_DEPTH | FTW_PHYS) == -1)
		return -1;
	return 0;
}

/* statedir/spool/rel */
static void
at(char *p, size_t len, const char *rel)
{
	int	 n;

	n = snprintf(p, len, "%s/%s", root, rel);
	assert_true(n > 0 && (size_t)n < len);
}

static void
put_file(const char *rel, const char *content)
{
	char	 p[PATH_MAX * 2];
	int	 fd;

	at(p, sizeof(p), rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		fail_msg("%s: %s", p, strerror(errno));
	assert_int_equal(write(fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	assert_int_equal(close(fd), 0);
}

static void
put_dir(const char *rel)
{
	char	 p[PATH_MAX * 2];

	at(p, sizeof(p), rel);
	if (mkdir(p, 0700) == -1 && errno != EEXIST)
		fail_msg("%s: %s", p, strerror(errno));
}

static int
exists(const char *rel)
{
	char		 p[PATH_MAX * 2];
	struct stat	 st;

	at(p, sizeof(p), rel);
	return lstat(p, &st) == 0;
}

/* The whole content of statedir/spool/rel, or fails the test. */
static void
assert_file(const char *rel, const char *want)
{
	char	 p[PATH_MAX * 2], got[4096];
	ssize_t	 n;
	int	 fd;

	at(p, sizeof(p), rel);
	if ((fd = open(p, O_RDONLY)) == -1)
		fail_msg("%s: %s", rel, strerror(errno));
	n = read(fd, got, sizeof(got) - 1);
	close(fd);
	assert_true(n >= 0);
	got[n] = '\0';
	assert_string_equal(got, want);
}

/* Names in a directory, "." and ".." aside. */
static size_t
entries(const char *rel)
{
	char		 p[PATH_MAX * 2];
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0;

	at(p, sizeof(p), rel);
	if ((d = opendir(p)) == NULL)
		fail_msg("%s: %s", p, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
store(const char *user, const char *content, char *id)
{
	const char	*errstr = NULL;

	if (spool_store(user, content, strlen(content), 0, id, &errstr) == -1)
		fail_msg("store for %s: %s (%s)", user, errstr,
		    strerror(errno));
}

static void
assert_read(const char *user, const char *id, int claimed, const char *want)
{
	struct buf	 b;

	buf_init(&b, REC_MAX);
	if (spool_read(user, id, claimed, &b, REC_MAX) == -1)
		fail_msg("read %s/%s: %s", user, id, strerror(errno));
	assert_int_equal(buf_len(&b), strlen(want));
	assert_memory_equal(buf_data(&b), want, strlen(want));
	buf_free(&b);
}

static size_t
count(const char *user)
{
	size_t	 n = 999;

	assert_int_equal(spool_count(user, &n), 0);
	return n;
}

static void
test_init(void **state)
{
	struct stat	 st;
	const char	*errstr = NULL;
	char		 p[PATH_MAX * 2];

	assert_string_equal(spool_dir(), root);
	assert_int_equal(stat(root, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	/* Again, on the existing tree: fine, and nothing lost. */
	put_dir("alice");
	assert_int_equal(spool_init(statedir, &errstr), 0);
	assert_true(exists("alice"));
	/* A state directory that does not exist: an error in words. */
	snprintf(p, sizeof(p), "%s/missing/deeper", statedir);
	errstr = NULL;
	assert_int_equal(spool_init(p, &errstr), -1);
	assert_non_null(errstr);
	/* The root of before is kept. */
	assert_string_equal(spool_dir(), root);
}

/*
 * Items come back in the order they were stored, with their content, under
 * IDs that are valid, fresh, and made of now and this pid.
 */
static void
test_store_list_read(void **state)
{
	static const char *const items[] = {
		"MSG bob 1700000000 hello",
		"MSG carol 1700000001 two words",
		"RECEIPT 1.000000000.1 bob 1700000002",
		"MSG bob 1700000003 \xff\xfe bytes\n",
		"MSG bob 1700000004 ",
	};
	char			 ids[NELEM(items)][ID_MAX + 1];
	char			 bobid[ID_MAX + 1], pid[32], rel[128];
	struct spool_list	 l;
	size_t			 i, j;
	time_t			 t0 = time(NULL);

	/* A mailbox never used is empty, not an error. */
	assert_int_equal(count("alice"), 0);
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, 0);
	assert_null(l.ids);

	for (i = 0; i < NELEM(items); i++)
		store("alice", items[i], ids[i]);
	store("bob", "MSG alice 1700000000 for bob", bobid);

	snprintf(pid, sizeof(pid), ".%ld", (long)getpid());
	for (i = 0; i < NELEM(items); i++) {
		assert_true(spool_valid_id(ids[i], strlen(ids[i])));
		assert_string_equal(strrchr(ids[i], '.'), pid);
		/* SEC is now, give or take the test's run time. */
		assert_true(strtoll(ids[i], NULL, 10) >= (long long)t0 - 1);
		assert_true(strtoll(ids[i], NULL, 10) <= (long long)time(NULL));
		for (j = 0; j < i; j++)
			assert_string_not_equal(ids[i], ids[j]);
		assert_string_not_equal(ids[i], bobid);
		/* The file holds the item, without its ID. */
		snprintf(rel, sizeof(rel), "alice/%s", ids[i]);
		assert_file(rel, items[i]);
	}

	assert_int_equal(count("alice"), NELEM(items));
	assert_int_equal(count("bob"), 1);
	assert_int_equal(count("carol"), 0);
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, NELEM(items));
	for (i = 0; i < NELEM(items); i++) {
		assert_string_equal(l.ids[i], ids[i]);
		assert_read("alice", l.ids[i], 0, items[i]);
	}
	spool_list_free(&l);
	assert_int_equal(l.n, 0);
	assert_null(l.ids);
	/* Bob's item is his alone. */
	assert_int_equal(spool_list("bob", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.ids[0], bobid);
	spool_list_free(&l);
	/* No temporary file left behind. */
	assert_int_equal(entries("alice"), NELEM(items));
	assert_int_equal(entries("bob"), 1);
}

/* Many stores in a row: every ID fresh, the list in store order. */
static void
test_ids_unique(void **state)
{
	enum { N = 300 };
	static char		 ids[N][ID_MAX + 1];
	char			 content[64];
	struct spool_list	 l;
	size_t			 i, j;

	for (i = 0; i < N; i++) {
		snprintf(content, sizeof(content), "MSG bob 1 item %zu", i);
		store("alice", content, ids[i]);
	}
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, N);
	for (i = 0; i < N; i++) {
		assert_string_equal(l.ids[i], ids[i]);
		for (j = i + 1; j < N; j++)
			if (strcmp(ids[i], ids[j]) == 0)
				fail_msg("ID %s given twice", ids[i]);
	}
	for (i = 0; i < N; i += 37) {
		snprintf(content, sizeof(content), "MSG bob 1 item %zu", i);
		assert_read("alice", l.ids[i], 0, content);
	}
	spool_list_free(&l);
}

/*
 * A list is sorted by the numbers (sec, nsec, pid), not by the text, and
 * holds only names that are IDs: temporary files, claims, IDs of the
 * wrong shape and a directory are not items.  Twice the same answer.
 */
static void
test_list_order(void **state)
{
	static const char *const stored[] = {	/* in no particular order */
		"100.000000000.1",
		"9.000000001.1",
		"9.000000000.20",
		"10.000000000.1",
		"9.000000000.3",
		"9.999999999.0",
		"0.000000000.0",
		"1700000000.123456789.4294967295",
		"18446744073709551.000000000.1",
	};
	static const char *const sorted[] = {
		"0.000000000.0",
		"9.000000000.3",
		"9.000000000.20",
		"9.000000001.1",
		"9.999999999.0",
		"10.000000000.1",
		"100.000000000.1",
		"1700000000.123456789.4294967295",
		"18446744073709551.000000000.1",
	};
	static const char *const not_items[] = {
		".tmp.1234.1",
		".ack.9.000000000.4",
		"README",
		"9.00000000.1",			/* 8 digits of nsec */
		"9.0000000000.1",		/* 10 */
		"9..1",
		"-9.000000000.1",
		"9.000000000.1.bak",
		"9.000000000.",
		".000000000.1",
		"9.000000000.1 ",
		"9 .000000000.1",
		"99999999999999999999.000000000.1",	/* 20 digits */
		"9.000000000.12345678901",		/* pid, 11 */
	};
	struct spool_list	 l, l2;
	char			 rel[128];
	size_t			 i;

	put_dir("alice");
	for (i = 0; i < NELEM(stored); i++) {
		snprintf(rel, sizeof(rel), "alice/%s", stored[i]);
		put_file(rel, stored[i]);
	}
	for (i = 0; i < NELEM(not_items); i++) {
		snprintf(rel, sizeof(rel), "alice/%s", not_items[i]);
		put_file(rel, "MSG x 1 not an item");
	}
	put_dir("alice/subdir");

	assert_int_equal(count("alice"), NELEM(stored));
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(spool_list("alice", &l2), 0);
	assert_int_equal(l.n, NELEM(sorted));
	assert_int_equal(l2.n, NELEM(sorted));
	for (i = 0; i < NELEM(sorted); i++) {
		if (strcmp(l.ids[i], sorted[i]) != 0)
			fail_msg("list[%zu] is %s, want %s", i, l.ids[i],
			    sorted[i]);
		assert_string_equal(l2.ids[i], sorted[i]);
	}
	spool_list_free(&l);
	spool_list_free(&l2);
}

static const struct {
	const char	*id;
	size_t		 len;	/* 0: strlen */
	int		 valid;
} ids[] = {
	{ "1.000000000.1", 0, 1 },
	{ "0.000000000.0", 0, 1 },
	{ "1700000000.123456789.4242", 0, 1 },
	{ "9999999999999999999.999999999.9999999999", 0, 1 },
	/* A prefix of a longer string: the length is what counts. */
	{ "1.000000000.12", 13, 1 },
	{ "", 0, 0 },
	{ ".", 0, 0 },
	{ "..", 0, 0 },
	{ "../1.000000000.1", 0, 0 },
	{ "1.000000000.1/..", 0, 0 },
	{ "/", 0, 0 },
	{ "/etc/passwd", 0, 0 },
	{ "1/000000000.1", 0, 0 },
	{ "1.000000000/1", 0, 0 },
	{ "a.000000000.1", 0, 0 },
	{ "1.00000000a.1", 0, 0 },
	{ "1.000000000.1a", 0, 0 },
	{ "1.00000000.1", 0, 0 },
	{ "1.0000000000.1", 0, 0 },
	{ "1.000000000.", 0, 0 },
	{ ".000000000.1", 0, 0 },
	{ "1..1", 0, 0 },
	{ "1.000000000.1.2", 0, 0 },
	{ " 1.000000000.1", 0, 0 },
	{ "1.000000000.1 ", 0, 0 },
	{ "1.000000000.1\n", 0, 0 },
	{ "+1.000000000.1", 0, 0 },
	{ "-1.000000000.1", 0, 0 },
	{ "1.-00000000.1", 0, 0 },
	{ "1.000000000.-1", 0, 0 },
	{ "1.000000000.0x1", 0, 0 },
	{ "\xff.000000000.1", 0, 0 },
	{ "99999999999999999999.000000000.1", 0, 0 },	/* 20 digits */
	{ "1.000000000.99999999999", 0, 0 },		/* 11 digits */
	{ ".tmp.1.1", 0, 0 },
	{ ".ack.1.000000000.1", 0, 0 },
	/* A NUL inside or at the end, counted in the length. */
	{ "1.000000000.1\0", 14, 0 },
	{ "1.000\0000000.1", 14, 0 },
	{ "\0.000000000.1", 13, 0 },
	/*
	 * ID_MAX characters and one more (no well-formed ID is this long, so
	 * these are refused on length and shape alike).
	 */
	{ "1111111111111111111.000000000.1111111111111111111111111111111111",
	    0, 0 },
	{ "1111111111111111111.000000000.11111111111111111111111111111111111",
	    0, 0 },
};

static void
test_valid_id(void **state)
{
	size_t	 i, len;

	for (i = 0; i < NELEM(ids); i++) {
		len = ids[i].len != 0 ? ids[i].len : strlen(ids[i].id);
		if (spool_valid_id(ids[i].id, len) != ids[i].valid)
			fail_msg("ids[%zu] \"%s\" (%zu bytes): %s", i,
			    ids[i].id, len, ids[i].valid ? "refused" :
			    "accepted");
	}
}

/*
 * User names and IDs from outside never reach outside the spool: a bad
 * one is refused before any file is touched.
 */
static void
test_hostile_names(void **state)
{
	static const char *const users[] = {
		"", "..", ".", "../alice", "alice/..", "a/b", "/tmp", "Alice",
		".alice", "-alice", "alice bob", "al\xff",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",	/* 33 */
	};
	static const char *const bad_ids[] = {
		"", "..", "../x", "/etc/passwd", "1.000000000.1/../../x",
		".ack.1.000000000.1", "x",
	};
	struct spool_list	 l;
	struct buf		 b;
	const char		*errstr;
	char			 id[ID_MAX + 1], rel[128];
	size_t			 i, n;

	buf_init(&b, REC_MAX);
	for (i = 0; i < NELEM(users); i++) {
		errstr = NULL;
		if (spool_store(users[i], "MSG x 1 y", 9, 0, id, &errstr) != -1)
			fail_msg("stored for user \"%s\"", users[i]);
		assert_non_null(errstr);
		errno = 0;
		assert_int_equal(spool_list(users[i], &l), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(l.n, 0);
		assert_int_equal(spool_count(users[i], &n), -1);
		assert_int_equal(spool_claim(users[i], "1.000000000.1"), -1);
		assert_int_equal(spool_read(users[i], "1.000000000.1", 0, &b,
		    REC_MAX), -1);
		assert_int_equal(spool_remove_user(users[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
	/* Nothing was created, in the spool or beside it. */
	assert_int_equal(entries(""), 0);
	assert_int_equal(entries(".."), 1);

	/*
	 * Bad IDs, with a mailbox and a file beside it that a walk out
	 * would reach ("victim"), and a directory of a claim-like name
	 * a path could go through.
	 */
	store("alice", "MSG bob 1 keep", id);
	put_file("alice/victim", "victim");
	put_file("victim", "victim");
	put_dir("alice/.ack.d");
	for (i = 0; i < NELEM(bad_ids); i++) {
		errno = 0;
		if (spool_claim("alice", bad_ids[i]) != -1)
			fail_msg("claimed \"%s\"", bad_ids[i]);
		assert_int_equal(errno, ENOENT);
		assert_int_equal(spool_unclaim("alice", bad_ids[i]), -1);
		assert_int_equal(spool_read("alice", bad_ids[i], 0, &b,
		    REC_MAX), -1);
		assert_int_equal(buf_len(&b), 0);
		assert_int_equal(spool_read("alice", bad_ids[i], 1, &b,
		    REC_MAX), -1);
		if (spool_finish("alice", bad_ids[i]) != -1)
			fail_msg("finished \"%s\"", bad_ids[i]);
	}
	/* Through the .ack.d directory to a file beside it. */
	assert_int_equal(spool_finish("alice", "d/../victim"), -1);
	assert_int_equal(spool_finish("alice", "d/../../victim"), -1);
	assert_int_equal(spool_unclaim("alice", "d/../victim"), -1);
	assert_true(exists("alice/victim"));
	assert_true(exists("victim"));
	snprintf(rel, sizeof(rel), "alice/%s", id);
	assert_file(rel, "MSG bob 1 keep");
	buf_free(&b);
}

/* The ACK steps: claim (once), read the claim, unclaim, finish. */
static void
test_claim(void **state)
{
	struct spool_list	 l;
	struct buf		 b;
	char			 id1[ID_MAX + 1], id2[ID_MAX + 1];
	char			 rel[128];

	store("alice", "MSG bob 1 one", id1);
	store("alice", "MSG bob 2 two", id2);

	assert_int_equal(spool_claim("alice", id1), 0);
	/* Claimed: not an item any more, read under its claim. */
	assert_int_equal(count("alice"), 1);
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.ids[0], id2);
	spool_list_free(&l);
	snprintf(rel, sizeof(rel), "alice/.ack.%s", id1);
	assert_file(rel, "MSG bob 1 one");
	assert_read("alice", id1, 1, "MSG bob 1 one");
	buf_init(&b, REC_MAX);
	errno = 0;
	assert_int_equal(spool_read("alice", id1, 0, &b, REC_MAX), -1);
	assert_int_equal(errno, ENOENT);

	/* A second claim loses. */
	errno = 0;
	assert_int_equal(spool_claim("alice", id1), -1);
	assert_int_equal(errno, ENOENT);

	/* Given back: an item again, in its place. */
	assert_int_equal(spool_unclaim("alice", id1), 0);
	errno = 0;
	assert_int_equal(spool_unclaim("alice", id1), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.ids[0], id1);
	assert_string_equal(l.ids[1], id2);
	spool_list_free(&l);
	errno = 0;
	assert_int_equal(spool_read("alice", id1, 1, &b, REC_MAX), -1);
	assert_int_equal(errno, ENOENT);

	/* Claimed and finished: gone for good. */
	assert_int_equal(spool_claim("alice", id1), 0);
	assert_int_equal(spool_finish("alice", id1), 0);
	errno = 0;
	assert_int_equal(spool_finish("alice", id1), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_claim("alice", id1), -1);
	assert_int_equal(count("alice"), 1);
	assert_int_equal(entries("alice"), 1);
	/* An item never claimed cannot be finished. */
	errno = 0;
	assert_int_equal(spool_finish("alice", id2), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count("alice"), 1);
	/* Another user's ID is not in this mailbox. */
	errno = 0;
	assert_int_equal(spool_claim("bob", id2), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count("alice"), 1);
	buf_free(&b);
}

/* limit > 0 refuses a mailbox that holds that many items; 0 is no limit. */
static void
test_mailbox_limit(void **state)
{
	const char	*errstr;
	char		 id[ID_MAX + 1], first[ID_MAX + 1];
	int		 i;

	for (i = 0; i < 3; i++) {
		errstr = NULL;
		assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 3,
		    i == 0 ? first : id, &errstr), 0);
	}
	errstr = NULL;
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 3, id, &errstr),
	    -1);
	assert_non_null(errstr);
	assert_string_equal(errstr, "mailbox full");
	assert_int_equal(count("alice"), 3);
	/* Refused before any temporary file. */
	assert_int_equal(entries("alice"), 3);
	/* A larger limit, or none, lets it in; another user is not full. */
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 4, id, &errstr),
	    0);
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 0, id, &errstr),
	    0);
	assert_int_equal(spool_store("bob", "MSG b 1 x", 9, 1, id, &errstr),
	    0);
	assert_int_equal(spool_store("bob", "MSG b 1 x", 9, 1, id, &errstr),
	    -1);
	/* A claimed item does not count: an ACK makes room. */
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 5, id, &errstr),
	    -1);
	assert_int_equal(spool_claim("alice", first), 0);
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 5, id, &errstr),
	    0);
	assert_int_equal(count("alice"), 5);
}

/*
 * spool_read(): at most max bytes (exactly max is fine), and within the
 * buffer's own limit however the file's size falls against the chunks it
 * is read in.
 */
static void
test_read_sizes(void **state)
{
	static const struct {
		size_t	 size;		/* of the item */
		size_t	 bufmax;	/* buf_init() */
		size_t	 max;		/* spool_read() */
		int	 ok;
	} sizes[] = {
		{ 0, REC_MAX, REC_MAX, 1 },
		{ 1, REC_MAX, REC_MAX, 1 },
		{ 100, REC_MAX, 100, 1 },
		{ 101, REC_MAX, 100, 0 },
		{ 4096, REC_MAX, 4096, 1 },
		{ 4097, REC_MAX, 4096, 0 },
		{ 8192, REC_MAX, 8191, 0 },
		{ 10000, REC_MAX, 10000, 1 },
		/* The buffer's limit is the size, or close above it. */
		{ 10, 100, 100, 1 },
		{ 4096, 4096, 4096, 1 },
		{ 5000, 8192, 8192, 1 },
		{ 5000, 5000, 5000, 1 },
		{ REC_MAX - 256, REC_MAX, REC_MAX - 256, 1 },
		{ 5001, 5000, 8192, 0 },
	};
	struct buf	 b;
	const char	*errstr;
	char		*content, id[ID_MAX + 1];
	size_t		 i, j;
	int		 rc;

	for (i = 0; i < NELEM(sizes); i++) {
		assert_non_null(content = malloc(sizes[i].size + 1));
		for (j = 0; j < sizes[i].size; j++)
			content[j] = 'a' + (i + j) % 26;
		errstr = NULL;
		assert_int_equal(spool_store("alice", content, sizes[i].size,
		    0, id, &errstr), 0);
		buf_init(&b, sizes[i].bufmax);
		errno = 0;
		rc = spool_read("alice", id, 0, &b, sizes[i].max);
		if (sizes[i].ok) {
			if (rc != 0)
				fail_msg("sizes[%zu]: %zu bytes: %s", i,
				    sizes[i].size, strerror(errno));
			assert_int_equal(buf_len(&b), sizes[i].size);
			if (sizes[i].size > 0)
				assert_memory_equal(buf_data(&b), content,
				    sizes[i].size);
		} else {
			if (rc != -1)
				fail_msg("sizes[%zu]: %zu bytes read", i,
				    sizes[i].size);
			assert_int_equal(errno, EFBIG);
			assert_int_equal(buf_len(&b), 0);
		}
		buf_free(&b);
		free(content);
	}
	/* An item that is not there. */
	buf_init(&b, REC_MAX);
	errno = 0;
	assert_int_equal(spool_read("alice", "1.000000000.1", 0, &b, REC_MAX),
	    -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(spool_read("nobody", "1.000000000.1", 0, &b, REC_MAX),
	    -1);
	assert_int_equal(errno, ENOENT);
	buf_free(&b);
}

/*
 * The startup sweep: a ".tmp.*" goes, a ".ack.ID" becomes ID again (its
 * ACK never answered), the rest stays; directories that are not user
 * names are not touched.
 */
static void
test_sweep(void **state)
{
	struct spool_list	 l;
	char			 id[ID_MAX + 1], rel[128];

	store("alice", "MSG bob 9 stored", id);
	put_file("alice/.tmp.1234.1", "MSG half");
	put_file("alice/.tmp.", "");
	put_file("alice/.ack.5.000000000.1", "MSG bob 5 claimed");
	put_file("alice/.ack.bogus", "x");
	put_file("alice/.ack.", "x");
	put_file("alice/README", "x");
	put_dir("bob");
	put_file("bob/.tmp.9.9", "");
	put_file("bob/.ack.7.000000000.2", "MSG carol 7 hi");
	put_dir("Bad.User");
	put_file("Bad.User/.tmp.1.1", "");
	put_file("Bad.User/.ack.1.000000000.1", "");
	put_dir(".hidden");
	put_file(".hidden/.tmp.1.1", "");
	put_file("carol", "a file where a mailbox could be");
	put_dir("dave");

	assert_int_equal(spool_sweep(), 0);

	assert_false(exists("alice/.tmp.1234.1"));
	assert_false(exists("alice/.tmp."));
	assert_false(exists("alice/.ack.5.000000000.1"));
	assert_file("alice/5.000000000.1", "MSG bob 5 claimed");
	assert_true(exists("alice/.ack.bogus"));
	assert_true(exists("alice/.ack."));
	assert_true(exists("alice/README"));
	assert_false(exists("bob/.tmp.9.9"));
	assert_file("bob/7.000000000.2", "MSG carol 7 hi");
	assert_true(exists("Bad.User/.tmp.1.1"));
	assert_true(exists("Bad.User/.ack.1.000000000.1"));
	assert_true(exists(".hidden/.tmp.1.1"));
	assert_true(exists("carol"));
	snprintf(rel, sizeof(rel), "alice/%s", id);
	assert_file(rel, "MSG bob 9 stored");

	/* The restored item is listed in its place: before the newer one. */
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.ids[0], "5.000000000.1");
	assert_string_equal(l.ids[1], id);
	spool_list_free(&l);
	assert_int_equal(count("bob"), 1);

	/* Twice is once. */
	assert_int_equal(spool_sweep(), 0);
	assert_int_equal(count("alice"), 2);
	assert_int_equal(entries("alice"), 5);

	/* No spool: an error, for relayd.c to stop on. */
	spool_free();
	assert_int_equal(spool_sweep(), -1);
}

/*
 * Removing a mailbox: every file in it goes, whatever it is; a symbolic
 * link goes, not what it points to; a directory inside stops the removal;
 * a mailbox that is a link or a file is not followed nor emptied.
 */
static void
test_remove_user(void **state)
{
	char		 id[ID_MAX + 1], p[PATH_MAX * 2], q[PATH_MAX * 2];
	struct stat	 st;

	/* Beside the spool: what a link could point to. */
	snprintf(p, sizeof(p), "%s/outside", statedir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/outside/file", statedir);
	assert_int_equal(close(open(p, O_WRONLY | O_CREAT, 0600)), 0);

	store("alice", "MSG bob 1 a", id);
	store("alice", "MSG bob 2 b", id);
	put_file("alice/.tmp.1.1", "");
	put_file("alice/.ack.1.000000000.1", "");
	put_file("alice/README", "");
	put_file("alice/.hidden", "");
	at(q, sizeof(q), "alice/fifo");
	assert_int_equal(mkfifo(q, 0600), 0);
	at(q, sizeof(q), "alice/link");
	assert_int_equal(symlink("../../outside/file", q), 0);
	at(q, sizeof(q), "alice/dirlink");
	assert_int_equal(symlink("../../outside", q), 0);
	store("bob", "MSG alice 1 c", id);

	assert_int_equal(spool_remove_user("alice"), 0);
	assert_false(exists("alice"));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(count("bob"), 1);
	/* Gone already: nothing to do. */
	assert_int_equal(spool_remove_user("alice"), 0);
	assert_int_equal(spool_remove_user("carol"), 0);

	/* A directory inside: refused, the mailbox stays. */
	store("dave", "MSG bob 1 d", id);
	put_dir("dave/sub");
	put_file("dave/sub/x", "");
	errno = 0;
	assert_int_equal(spool_remove_user("dave"), -1);
	assert_int_equal(errno, EISDIR);
	assert_true(exists("dave/sub/x"));

	/* The mailbox is a link out of the spool: not followed. */
	at(q, sizeof(q), "eve");
	snprintf(p, sizeof(p), "%s/outside", statedir);
	assert_int_equal(symlink(p, q), 0);
	assert_int_equal(spool_remove_user("eve"), -1);
	snprintf(p, sizeof(p), "%s/outside/file", statedir);
	assert_int_equal(stat(p, &st), 0);

	/* The mailbox is a file. */
	put_file("frank", "x");
	assert_int_equal(spool_remove_user("frank"), -1);
	assert_true(exists("frank"));

	/* No spool set. */
	spool_free();
	errno = 0;
	assert_int_equal(spool_remove_user("bob"), -1);
	assert_int_equal(errno, EINVAL);
}

/*
 * A mailbox that cannot be written to (a file where its directory should
 * be; this works as root, which permission bits do not stop): every call
 * fails with an error, and nothing is lost or created.
 */
static void
test_not_a_directory(void **state)
{
	struct spool_list	 l;
	const char		*errstr;
	char			 id[ID_MAX + 1], old[PATH_MAX * 2];
	size_t			 n;

	put_file("alice", "not a mailbox");
	errstr = NULL;
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 0, id, &errstr),
	    -1);
	assert_string_equal(errstr, "storage error");
	errstr = NULL;
	assert_int_equal(spool_store("alice", "MSG b 1 x", 9, 5, id, &errstr),
	    -1);
	assert_string_equal(errstr, "storage error");
	errno = 0;
	assert_int_equal(spool_list("alice", &l), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(l.n, 0);
	assert_int_equal(spool_count("alice", &n), -1);
	assert_int_equal(spool_claim("alice", "1.000000000.1"), -1);
	assert_file("alice", "not a mailbox");

	/* The spool itself is a file. */
	store("bob", "MSG a 1 x", id);
	snprintf(old, sizeof(old), "%s/old-spool", statedir);
	assert_int_equal(rename(root, old), 0);
	assert_int_equal(close(open(root, O_WRONLY | O_CREAT, 0600)), 0);
	errstr = NULL;
	assert_int_equal(spool_store("bob", "MSG a 1 y", 9, 0, id, &errstr),
	    -1);
	assert_non_null(errstr);
	assert_int_equal(spool_list("bob", &l), -1);
	assert_int_equal(spool_sweep(), -1);
	assert_int_equal(spool_remove_user("bob"), -1);
}

/* Permission bits do not stop root: this one runs as another user only. */
static void
test_unwritable(void **state)
{
	struct spool_list	 l;
	const char		*errstr;
	char			 id[ID_MAX + 1], p[PATH_MAX * 2];

	if (geteuid() == 0) {
		print_message("skipped: as root, mode 0500 does not stop "
		    "writes (test_not_a_directory covers the failure)\n");
		skip();
	}
	store("alice", "MSG b 1 x", id);
	at(p, sizeof(p), "alice");
	assert_int_equal(chmod(p, 0500), 0);
	errstr = NULL;
	assert_int_equal(spool_store("alice", "MSG b 2 y", 9, 0, id, &errstr),
	    -1);
	assert_string_equal(errstr, "storage error");
	errno = 0;
	assert_int_equal(spool_claim("alice", id), -1);
	assert_int_equal(errno, EACCES);
	/* Still readable, nothing lost, nothing half-written. */
	assert_int_equal(spool_list("alice", &l), 0);
	assert_int_equal(l.n, 1);
	spool_list_free(&l);
	assert_read("alice", id, 0, "MSG b 1 x");
	assert_int_equal(entries("alice"), 1);
	assert_int_equal(chmod(p, 0700), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_list_read, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ids_unique, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_order, setup,
		    teardown),
		cmocka_unit_test(test_valid_id),
		cmocka_unit_test_setup_teardown(test_hostile_names, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_read_sizes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_user, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_not_a_directory, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unwritable, setup,
		    teardown),
	};

	log_init(1, LOG_DAEMON);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
