/*
 * test_userdb.c: the users file (relayd/userdb.c).  Loading good files
 * and refusing bad ones with FILE:LINE and the reason (a table of corrupt
 * files named after what is wrong with them), the mode check, lookups,
 * add/replace/remove, the copy that relayctl's changes are made on, and
 * the atomic save: mode 0600, content that loads back, no temporary file
 * left, and the old file kept when the save cannot happen.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "relayd.h"

#define MD5A	"0123456789abcdef0123456789abcdef"
#define MD5B	"fedcba9876543210fedcba9876543210"

static char	 dir[PATH_MAX];
static char	 path[PATH_MAX + 16];

static int
setup(void **state)
{
	strlcpy(dir, "/tmp/test_userdb.XXXXXX", sizeof(dir));
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/users", dir);
	return 0;
}

static int
teardown(void **state)
{
	struct dirent	*de;
	DIR		*d;
	char		 p[PATH_MAX * 2];

	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
			    strcmp(de->d_name, "..") == 0))
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
	return 0;
}

static void
write_file(const char *content, mode_t mode)
{
	int	 fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_load_good(void **state)
{
	struct userdb	*db = NULL;
	char		 err[PATH_MAX + 128];

	write_file("# comment\n\n  \t\nzed:" MD5B "\nalice:" MD5A "\r\n"
	    "d.e-f_9:" MD5B "\n", 0600);
	assert_int_equal(userdb_load(path, &db, err, sizeof(err)), 0);
	assert_int_equal(userdb_count(db), 3);
	assert_string_equal(userdb_lookup(db, "alice", 5), MD5A);
	assert_string_equal(userdb_lookup(db, "zed", 3), MD5B);
	assert_null(userdb_lookup(db, "bob", 3));
	assert_null(userdb_lookup(db, "ALICE", 5));
	assert_null(userdb_lookup(db, "alice", 4));
	/* Names come in byte order. */
	assert_string_equal(userdb_name(db, 0), "alice");
	assert_string_equal(userdb_name(db, 1), "d.e-f_9");
	assert_string_equal(userdb_name(db, 2), "zed");
	assert_null(userdb_name(db, 3));
	userdb_free(db);
}

static const struct {
	const char	*name;		/* what is wrong */
	const char	*content;
	const char	*why;		/* in the error */
} bad_files[] = {
	{ "missing_colon", "alice " MD5A "\n", ":1: missing ':'" },
	{ "bad_name_upper", "Alice:" MD5A "\n", ":1: bad user name" },
	{ "bad_name_dot_first", ".alice:" MD5A "\n", ":1: bad user name" },
	{ "bad_name_too_long",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:" MD5A "\n",
	    ":1: bad user name" },
	{ "empty_name", ":" MD5A "\n", ":1: bad user name" },
	{ "hash_upper", "alice:0123456789ABCDEF0123456789abcdef\n",
	    ":1: bad MD5" },
	{ "hash_short", "alice:0123\n", ":1: bad MD5" },
	{ "hash_trailing_space", "alice:" MD5A " \n", ":1: bad MD5" },
	{ "second_line_bad", "alice:" MD5A "\nbob\n", ":2: missing ':'" },
	{ "duplicate_user", "bob:" MD5A "\nbob:" MD5B "\n",
	    "duplicate user bob" },
};

static void
test_load_bad(void **state)
{
	struct userdb	*db, *keep = (struct userdb *)&db;
	char		 err[PATH_MAX + 128];
	size_t		 i;

	for (i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		db = keep;
		write_file(bad_files[i].content, 0600);
		err[0] = '\0';
		if (userdb_load(path, &db, err, sizeof(err)) != -1)
			fail_msg("%s: loaded", bad_files[i].name);
		if (strstr(err, bad_files[i].why) == NULL ||
		    strncmp(err, path, strlen(path)) != 0)
			fail_msg("%s: error \"%s\"", bad_files[i].name, err);
		/* The caller's table is untouched. */
		assert_ptr_equal(db, keep);
	}
}

static void
test_load_mode(void **state)
{
	struct userdb	*db = NULL;
	char		 err[PATH_MAX + 128];

	write_file("alice:" MD5A "\n", 0640);
	assert_int_equal(userdb_load(path, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(db);
	unlink(path);
	assert_int_equal(userdb_load(path, &db, err, sizeof(err)), -1);
	assert_null(db);
}

static void
test_change(void **state)
{
	struct userdb	*db, *copy;

	assert_non_null(db = userdb_new());
	assert_int_equal(userdb_add(db, "bob", MD5A), 0);
	assert_int_equal(userdb_add(db, "alice", MD5A), 0);
	assert_int_equal(userdb_add(db, "bob", MD5B), 0);	/* replaces */
	assert_int_equal(userdb_count(db), 2);
	assert_string_equal(userdb_lookup(db, "bob", 3), MD5B);
	assert_int_equal(userdb_add(db, "Bad", MD5A), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(userdb_add(db, "carol", "xyz"), -1);
	assert_int_equal(errno, EINVAL);

	/* A change to the copy leaves the original alone. */
	assert_non_null(copy = userdb_dup(db));
	assert_int_equal(userdb_remove(copy, "alice"), 0);
	assert_int_equal(userdb_add(copy, "carol", MD5A), 0);
	assert_int_equal(userdb_count(copy), 2);
	assert_null(userdb_lookup(copy, "alice", 5));
	assert_string_equal(userdb_lookup(db, "alice", 5), MD5A);
	assert_null(userdb_lookup(db, "carol", 5));
	assert_int_equal(userdb_remove(copy, "alice"), -1);
	assert_int_equal(errno, ENOENT);
	userdb_free(copy);

	/* A copy of no table is an empty one. */
	assert_non_null(copy = userdb_dup(NULL));
	assert_int_equal(userdb_count(copy), 0);
	userdb_free(copy);
	userdb_free(db);
}

static void
test_save(void **state)
{
	struct userdb	*db, *back = NULL;
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	char		 err[PATH_MAX + 128], name[16], bad[PATH_MAX + 32];
	int		 i, n;

	assert_non_null(db = userdb_new());
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "u%03d", i);
		assert_int_equal(userdb_add(db, name, i % 2 ? MD5A : MD5B), 0);
	}
	write_file("# old\nold:" MD5A "\n", 0600);
	assert_int_equal(userdb_save(db, path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(userdb_load(path, &back, err, sizeof(err)), 0);
	assert_int_equal(userdb_count(back), 100);
	assert_null(userdb_lookup(back, "old", 3));
	assert_string_equal(userdb_lookup(back, "u001", 4), MD5A);
	assert_string_equal(userdb_lookup(back, "u098", 4), MD5B);
	userdb_free(back);

	/* Nothing but the file is left in the directory. */
	assert_non_null(d = opendir(dir));
	n = 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 1);

	/* A save that cannot happen leaves the file as it was. */
	write_file("kept:" MD5A "\n", 0600);
	snprintf(bad, sizeof(bad), "%s/nosuch/users", dir);
	assert_int_equal(userdb_save(db, bad, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nosuch"));
	back = NULL;
	assert_int_equal(userdb_load(path, &back, err, sizeof(err)), 0);
	assert_int_equal(userdb_count(back), 1);
	userdb_free(back);
	userdb_free(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_good, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_mode, setup,
		    teardown),
		cmocka_unit_test(test_change),
		cmocka_unit_test_setup_teardown(test_save, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
