/*
 * test_penalty.c: the hub's failed-login penalty table (relayd/penalty.c).
 * The growth of a key's penalty (free failures, then doubling up to a
 * cap) as a table of settings and expected delays, failures that come
 * while a penalty runs, the exact edges of "under penalty" and of being
 * forgotten, keys kept apart (source and user, opaque strings: grouping
 * an IPv6 source by its /64 is the caller's, hub_source()'s, job), hostile
 * keys, and the bounded table: never more than PENALTY_TABLE_MAX keys,
 * room made from the forgotten first, else from the key nearest to being
 * forgotten.  Time is passed in, so no test waits on a clock.
 *
 * penalty.c keeps its table in file statics: every test starts and ends
 * with penalty_free().
 */
#include <sys/types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relayd.h"

#define T0	1000000ULL	/* a mono ms far from 0 */
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int
reset(void **state)
{
	penalty_free();
	return 0;
}

/* One failure of key at at; returns the penalty's end (0: none). */
static uint64_t
fail_at(const char *key, uint64_t at, uint32_t grace, uint64_t min_ms,
    uint64_t max_ms)
{
	uint64_t	 until = 12345;

	assert_int_equal(penalty_fail(key, at, grace, min_ms, max_ms, &until),
	    0);
	return until;
}

/*
 * Failures served as the hub serves them: each one answered when the
 * penalty before it ends.  delays[i] is the penalty the (i+1)th failure
 * must cost (0: free).
 */
static const struct {
	const char	*name;
	uint32_t	 grace;
	uint64_t	 min_ms;
	uint64_t	 max_ms;
	size_t		 n;
	uint64_t	 delays[14];
} growth[] = {
	{ "defaults", 3, 1000, 60000, 12,
	    { 0, 0, 0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000,
	    60000 } },
	{ "no_grace", 0, 7, 100, 7, { 7, 14, 28, 56, 100, 100, 100 } },
	{ "grace_1", 1, 500, 3000, 7, { 0, 500, 1000, 2000, 3000, 3000,
	    3000 } },
	{ "min_is_max", 0, 1000, 1000, 4, { 1000, 1000, 1000, 1000 } },
	/* A minimum above the maximum: the maximum wins. */
	{ "min_above_max", 0, 5000, 1000, 3, { 1000, 1000, 1000 } },
	{ "cap_not_power", 2, 3, 10, 7, { 0, 0, 3, 6, 10, 10, 10 } },
	{ "big_grace", 10, 1, 2, 13, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2,
	    2 } },
};

static void
test_growth(void **state)
{
	uint64_t	 at, until, got;
	size_t		 i, j;

	for (i = 0; i < NELEM(growth); i++) {
		penalty_free();
		at = T0;
		for (j = 0; j < growth[i].n; j++) {
			until = fail_at("src:192.0.2.1", at, growth[i].grace,
			    growth[i].min_ms, growth[i].max_ms);
			got = until == 0 ? 0 : until - at;
			if (got != growth[i].delays[j])
				fail_msg("%s: failure %zu: penalty %llu ms, "
				    "want %llu", growth[i].name, j + 1,
				    (unsigned long long)got,
				    (unsigned long long)growth[i].delays[j]);
			/* penalty_until() agrees with what penalty_fail said. */
			if (penalty_until("src:192.0.2.1", at) != until)
				fail_msg("%s: failure %zu: penalty_until %llu, "
				    "want %llu", growth[i].name, j + 1,
				    (unsigned long long)penalty_until(
				    "src:192.0.2.1", at),
				    (unsigned long long)until);
			if (until != 0)
				at = until;
			else
				at += 1;
		}
	}
}

/*
 * However many failures, however large the settings, a penalty stays in
 * [min, max] once it applies (the doubling must neither overflow nor
 * wrap).
 */
static void
test_cap_hostile(void **state)
{
	static const struct {
		uint64_t	 min_ms;
		uint64_t	 max_ms;
	} caps[] = {
		{ 1, 86400000 },
		{ 86400000, 86400000 },
		{ 1ULL << 40, 1ULL << 50 },
		{ (1ULL << 40) + 1, UINT64_MAX / 4 },
		{ 3, 1ULL << 62 },
	};
	uint64_t	 until, delay, prev;
	size_t		 i;
	int		 j;

	for (i = 0; i < NELEM(caps); i++) {
		penalty_free();
		/*
		 * Every failure at T0, while the penalties before it run:
		 * each new penalty is added to the end of the last.
		 */
		prev = T0;
		for (j = 0; j < 100; j++) {
			until = fail_at("user:u", T0, 0, caps[i].min_ms,
			    caps[i].max_ms);
			delay = until - prev;
			if (until <= prev || delay < caps[i].min_ms ||
			    delay > caps[i].max_ms)
				fail_msg("caps[%zu]: failure %d: penalty %llu "
				    "outside [%llu, %llu]", i, j + 1,
				    (unsigned long long)delay,
				    (unsigned long long)caps[i].min_ms,
				    (unsigned long long)caps[i].max_ms);
			prev = until;
			/* Stop before until itself would leave 64 bits. */
			if (until > UINT64_MAX / 4)
				break;
		}
	}
}

/*
 * A failure while a penalty runs (another connection of the same source)
 * starts its penalty when the running one ends: penalties queue up.
 */
static void
test_stacking(void **state)
{
	uint64_t	 u1, u2, u3;

	u1 = fail_at("src:198.51.100.7", T0, 0, 1000, 60000);
	assert_int_equal(u1, T0 + 1000);
	u2 = fail_at("src:198.51.100.7", T0 + 10, 0, 1000, 60000);
	assert_int_equal(u2, u1 + 2000);
	u3 = fail_at("src:198.51.100.7", T0 + 20, 0, 1000, 60000);
	assert_int_equal(u3, u2 + 4000);
	assert_int_equal(penalty_until("src:198.51.100.7", T0 + 30), u3);
}

/* Under penalty means now < until: the last millisecond and the first after. */
static void
test_until_edges(void **state)
{
	uint64_t	 until;

	assert_int_equal(penalty_until("src:203.0.113.1", T0), 0);
	until = fail_at("src:203.0.113.1", T0, 0, 1000, 1000);
	assert_int_equal(until, T0 + 1000);
	assert_int_equal(penalty_until("src:203.0.113.1", T0), until);
	assert_int_equal(penalty_until("src:203.0.113.1", until - 1), until);
	assert_int_equal(penalty_until("src:203.0.113.1", until), 0);
	assert_int_equal(penalty_until("src:203.0.113.1", until + 1), 0);
	/* Asking does not record anything. */
	assert_int_equal(penalty_until("src:203.0.113.2", T0), 0);
	assert_int_equal(fail_at("src:203.0.113.2", T0, 1, 1000, 1000), 0);
}

/* max 0 turns the penalty off, and such failures are not even counted. */
static void
test_off(void **state)
{
	uint64_t	 until = 12345;
	int		 i;

	for (i = 0; i < 10; i++) {
		until = 12345;
		assert_int_equal(penalty_fail("user:alice", T0 + i, 0, 1000, 0,
		    &until), 0);
		assert_int_equal(until, 0);
	}
	assert_int_equal(penalty_until("user:alice", T0 + 10), 0);
	/* Turned on: the first failure costs the minimum, not 2^10 of it. */
	assert_int_equal(fail_at("user:alice", T0 + 20, 0, 1000, 60000),
	    T0 + 20 + 1000);
}

/*
 * A key is forgotten PENALTY_FORGET_MS after its last penalty ends (or
 * after its last free failure): then its count starts again.  One
 * millisecond earlier it is still remembered.
 */
static void
test_expiry(void **state)
{
	uint64_t	 u, forget, at;

	/* Remembered until forget - 1: the next penalty doubles. */
	u = fail_at("src:192.0.2.9", T0, 1, 1000, 60000);
	assert_int_equal(u, 0);
	u = fail_at("src:192.0.2.9", T0, 1, 1000, 60000);
	assert_int_equal(u, T0 + 1000);
	forget = u + PENALTY_FORGET_MS;
	at = forget - 1;
	assert_int_equal(fail_at("src:192.0.2.9", at, 1, 1000, 60000),
	    at + 2000);

	/* Forgotten at forget exactly: grace again. */
	penalty_free();
	u = fail_at("src:192.0.2.9", T0, 1, 1000, 60000);
	u = fail_at("src:192.0.2.9", T0, 1, 1000, 60000);
	assert_int_equal(u, T0 + 1000);
	forget = u + PENALTY_FORGET_MS;
	assert_int_equal(fail_at("src:192.0.2.9", forget, 1, 1000, 60000), 0);
	assert_int_equal(fail_at("src:192.0.2.9", forget, 1, 1000, 60000),
	    forget + 1000);

	/* Free failures are forgotten too, from the last one. */
	penalty_free();
	assert_int_equal(fail_at("user:bob", T0, 2, 1000, 60000), 0);
	assert_int_equal(fail_at("user:bob", T0 + 5000, 2, 1000, 60000), 0);
	/* Counted from the second failure: still there after the first's. */
	at = T0 + PENALTY_FORGET_MS + 1;
	assert_int_equal(fail_at("user:bob", at, 2, 1000, 60000), at + 1000);
	penalty_free();
	assert_int_equal(fail_at("user:bob", T0, 2, 1000, 60000), 0);
	assert_int_equal(fail_at("user:bob", T0, 2, 1000, 60000), 0);
	at = T0 + PENALTY_FORGET_MS;
	assert_int_equal(fail_at("user:bob", at, 2, 1000, 60000), 0);
}

/*
 * Keys are compared whole: a source and a user of the same text, prefixes,
 * and IPv6 addresses of one /64 (penalty.c does no grouping: the hub hands
 * it "src:" and the /64 already).
 */
static void
test_keys_apart(void **state)
{
	static const char *const others[] = {
		"user:192.0.2.1",
		"src:192.0.2.10",
		"src:192.0.2.",
		"src:192.0.2.1 ",
		"SRC:192.0.2.1",
		"192.0.2.1",
		"src:2001:db8::1",
		"",
		"src:\xff\xfe",
	};
	uint64_t	 u;
	size_t		 i;
	int		 j;

	for (j = 0; j < 5; j++)
		u = fail_at("src:192.0.2.1", T0, 0, 1000, 60000);
	assert_int_equal(u, T0 + 1000 + 2000 + 4000 + 8000 + 16000);
	for (i = 0; i < NELEM(others); i++) {
		if (penalty_until(others[i], T0) != 0)
			fail_msg("\"%s\" shares the penalty of src:192.0.2.1",
			    others[i]);
		/* Its own first failure costs the minimum. */
		if (fail_at(others[i], T0, 0, 1000, 60000) != T0 + 1000)
			fail_msg("\"%s\": first penalty is not the minimum",
			    others[i]);
	}
	/* The first key's penalty is untouched by the others. */
	assert_int_equal(penalty_until("src:192.0.2.1", T0), u);

	/* Source and user counted apart, as the hub counts one LOGIN. */
	penalty_free();
	for (j = 0; j < 3; j++) {
		if (j < 2)
			assert_int_equal(fail_at("src:2001:db8:1:2::", T0, 2,
			    1000, 60000), 0);
		assert_int_equal(fail_at("user:alice", T0, 3, 1000, 10000), 0);
	}
	/* Past its grace of 2, the source pays; the user, grace 3, not yet. */
	assert_int_equal(fail_at("src:2001:db8:1:2::", T0, 2, 1000, 60000),
	    T0 + 1000);
	assert_int_equal(penalty_until("user:alice", T0), 0);
	assert_int_equal(fail_at("user:alice", T0, 3, 1000, 10000), T0 + 1000);
	assert_int_equal(penalty_until("src:2001:db8:1:2::", T0), T0 + 1000);
	assert_int_equal(penalty_until("src:2001:db8:1:3::", T0), 0);
	assert_int_equal(penalty_until("user:alicf", T0), 0);
}

/*
 * A key longer than penalty.c stores must still add up, not start afresh
 * at each failure (which would let it dodge every penalty and fill the
 * table with copies).
 */
static void
test_long_key(void **state)
{
	char		 key[512], other[16];
	uint64_t	 u, at = T0;
	int		 j;

	memset(key, 'a', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memcpy(key, "user:", 5);
	for (j = 0; j < 4; j++) {
		u = fail_at(key, at, 1, 1000, 60000);
		if (j == 0)
			assert_int_equal(u, 0);
		else
			assert_int_equal(u, at + (1000ULL << (j - 1)));
		assert_int_equal(penalty_until(key, at), u);
		at = u != 0 ? u : at;
	}
	/* A short key it begins with is another key. */
	memcpy(other, key, sizeof(other) - 1);
	other[sizeof(other) - 1] = '\0';
	assert_int_equal(penalty_until(other, T0), 0);
}

/* Keys "k0".."kN", each failing once at T0 + i under a long penalty. */
static void
fill(size_t from, size_t to, uint64_t at0)
{
	char	 key[32];
	size_t	 i;

	for (i = from; i < to; i++) {
		snprintf(key, sizeof(key), "src:10.0.%zu.%zu", i / 256,
		    i % 256);
		(void)fail_at(key, at0 + i, 0, 100000000, 100000000);
	}
}

static int
present(size_t i, uint64_t now)
{
	char	 key[32];

	snprintf(key, sizeof(key), "src:10.0.%zu.%zu", i / 256, i % 256);
	return penalty_until(key, now) != 0;
}

/*
 * A full table makes room by dropping the key nearest to being forgotten
 * (the oldest here), one per new key: it never holds more than
 * PENALTY_TABLE_MAX keys, and keeps the newest.
 */
static void
test_table_bounded(void **state)
{
	const size_t	 n = 2 * PENALTY_TABLE_MAX + 7;
	uint64_t	 now = T0 + n;
	size_t		 i, count = 0;

	fill(0, PENALTY_TABLE_MAX, T0);
	for (i = 0; i < PENALTY_TABLE_MAX; i++)
		assert_true(present(i, T0 + PENALTY_TABLE_MAX));
	/* One more: the oldest goes, the second oldest stays. */
	fill(PENALTY_TABLE_MAX, PENALTY_TABLE_MAX + 1, T0);
	assert_false(present(0, T0 + PENALTY_TABLE_MAX + 1));
	assert_true(present(1, T0 + PENALTY_TABLE_MAX + 1));
	assert_true(present(PENALTY_TABLE_MAX, T0 + PENALTY_TABLE_MAX + 1));

	fill(PENALTY_TABLE_MAX + 1, n, T0);
	for (i = 0; i < n; i++) {
		if (present(i, now)) {
			count++;
			if (i < n - PENALTY_TABLE_MAX)
				fail_msg("key %zu kept, older than the newest "
				    "%d", i, PENALTY_TABLE_MAX);
		}
	}
	assert_int_equal(count, PENALTY_TABLE_MAX);
}

/*
 * A full table whose keys are forgotten by now drops those, not a key
 * still under penalty.
 */
static void
test_table_forgotten_first(void **state)
{
	uint64_t	 later;
	size_t		 i;

	/* Key 0: a short penalty, forgotten long before the others. */
	assert_int_equal(fail_at("src:10.0.0.0", T0, 0, 1000, 1000),
	    T0 + 1000);
	fill(1, PENALTY_TABLE_MAX, T0 + 1);
	later = T0 + 1000 + PENALTY_FORGET_MS + 10;
	/*
	 * The table is full and key 0 forgotten: a new key must not cost a
	 * live one.  (Asking about key 0 first could drop it by the way.)
	 */
	assert_int_equal(fail_at("user:newcomer", later, 0, 1000, 1000),
	    later + 1000);
	for (i = 1; i < PENALTY_TABLE_MAX; i++)
		if (!present(i, later))
			fail_msg("key %zu under penalty was dropped", i);
	assert_int_equal(penalty_until("user:newcomer", later), later + 1000);
	assert_false(present(0, later));
}

/* penalty_free() empties the table, which stays usable. */
static void
test_free_empties(void **state)
{
	(void)fail_at("src:192.0.2.77", T0, 0, 1000, 1000);
	assert_int_not_equal(penalty_until("src:192.0.2.77", T0), 0);
	penalty_free();
	penalty_free();
	assert_int_equal(penalty_until("src:192.0.2.77", T0), 0);
	assert_int_equal(fail_at("src:192.0.2.77", T0, 1, 1000, 1000), 0);
	assert_int_equal(fail_at("src:192.0.2.77", T0, 1, 1000, 1000),
	    T0 + 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_growth, reset, reset),
		cmocka_unit_test_setup_teardown(test_cap_hostile, reset, reset),
		cmocka_unit_test_setup_teardown(test_stacking, reset, reset),
		cmocka_unit_test_setup_teardown(test_until_edges, reset, reset),
		cmocka_unit_test_setup_teardown(test_off, reset, reset),
		cmocka_unit_test_setup_teardown(test_expiry, reset, reset),
		cmocka_unit_test_setup_teardown(test_keys_apart, reset, reset),
		cmocka_unit_test_setup_teardown(test_long_key, reset, reset),
		cmocka_unit_test_setup_teardown(test_table_bounded, reset,
		    reset),
		cmocka_unit_test_setup_teardown(test_table_forgotten_first,
		    reset, reset),
		cmocka_unit_test_setup_teardown(test_free_empties, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
