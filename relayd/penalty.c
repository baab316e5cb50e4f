/*
 * penalty.c: the hub's table of failed logins, in the spirit of OpenSSH's
 * PerSourcePenalties.  A key is a source address ("src:ADDR", IPv6 by its
 * /64) or a user name ("user:NAME"); each failure past a few free ones
 * puts the key under a penalty that doubles with every further failure,
 * up to a maximum.  While a key is under penalty, the hub answers a LOGIN
 * from it only when the penalty is over (it holds the reply on a timer),
 * and each failure then starts the next penalty from that answer: the
 * guesses of an attacker are served one at a time, however many
 * connections the attacker opens.
 *
 * The table is bounded: at most PENALTY_TABLE_MAX keys, in hash chains
 * under a per-process random seed.  A key is forgotten PENALTY_FORGET_MS
 * after its last penalty ends; when the table is full the key closest to
 * being forgotten makes room.  Pure: it neither logs nor exits.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relayd.h"

#define PENALTY_BUCKETS		1024	/* a power of 2 */
#define PENALTY_KEY_MAX		(5 + USER_MAX + 48)

struct penalty_entry {
	LIST_ENTRY(penalty_entry) chain;
	char		 key[PENALTY_KEY_MAX + 1];
	uint32_t	 fails;
	uint64_t	 until;		/* mono ms; penalised before this */
	uint64_t	 forget;	/* mono ms */
};

LIST_HEAD(penalty_chain, penalty_entry);

static struct penalty_chain	 penalty_buckets[PENALTY_BUCKETS];
static size_t			 penalty_n;
static uint64_t			 penalty_seed;
static int			 penalty_ready;

static void
penalty_setup(void)
{
	size_t	 i;

	for (i = 0; i < PENALTY_BUCKETS; i++)
		LIST_INIT(&penalty_buckets[i]);
	random_bytes(&penalty_seed, sizeof(penalty_seed));
	penalty_ready = 1;
}

/*
 * FNV-1a from a random seed: chains an outsider cannot aim at at will.
 * A key is its first PENALTY_KEY_MAX bytes, as stored: a longer one must
 * still find its entry.
 */
static struct penalty_chain *
penalty_bucket(const char *key)
{
	uint64_t	 h = penalty_seed ^ 0xcbf29ce484222325ULL;
	size_t		 i;

	for (i = 0; i < PENALTY_KEY_MAX && key[i] != '\0'; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 29;
	return &penalty_buckets[h & (PENALTY_BUCKETS - 1)];
}

static void
penalty_remove(struct penalty_entry *e)
{
	LIST_REMOVE(e, chain);
	free(e);
	penalty_n--;
}

/* The live entry for key, or NULL; drops forgotten entries on the way. */
static struct penalty_entry *
penalty_find(const char *key, uint64_t now)
{
	struct penalty_chain	*c;
	struct penalty_entry	*e, *next;

	if (!penalty_ready)
		penalty_setup();
	c = penalty_bucket(key);
	LIST_FOREACH_SAFE(e, c, chain, next) {
		if (e->forget <= now) {
			penalty_remove(e);
			continue;
		}
		if (strncmp(e->key, key, PENALTY_KEY_MAX) == 0)
			return e;
	}
	return NULL;
}

/* Makes room in a full table: the forgotten, else the nearest to it. */
static void
penalty_evict(uint64_t now)
{
	struct penalty_entry	*e, *next, *victim = NULL;
	size_t			 i;

	for (i = 0; i < PENALTY_BUCKETS; i++)
		LIST_FOREACH_SAFE(e, &penalty_buckets[i], chain, next) {
			if (e->forget <= now)
				penalty_remove(e);
			else if (victim == NULL || e->forget < victim->forget)
				victim = e;
		}
	if (penalty_n >= PENALTY_TABLE_MAX && victim != NULL)
		penalty_remove(victim);
}

/* When key's penalty ends (mono ms), or 0 if it is under none at now. */
uint64_t
penalty_until(const char *key, uint64_t now)
{
	struct penalty_entry	*e;

	if ((e = penalty_find(key, now)) == NULL || e->until <= now)
		return 0;
	return e->until;
}

/*
 * Records a failure of key answered at time at (mono ms).  The first
 * grace failures cost nothing; the next costs min_ms, each later one
 * twice the one before, at most max_ms.  max_ms 0 turns the penalty off
 * for this key.  Returns when the new penalty ends (0: none).  -1 when
 * there is no memory for a new key (then nothing is recorded).
 */
int
penalty_fail(const char *key, uint64_t at, uint32_t grace, uint64_t min_ms,
    uint64_t max_ms, uint64_t *until)
{
	struct penalty_entry	*e;
	uint64_t		 delay;
	uint32_t		 over;

	*until = 0;
	if (max_ms == 0)
		return 0;
	if ((e = penalty_find(key, at)) == NULL) {
		if (penalty_n >= PENALTY_TABLE_MAX)
			penalty_evict(at);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return -1;
		strlcpy(e->key, key, sizeof(e->key));
		LIST_INSERT_HEAD(penalty_bucket(key), e, chain);
		penalty_n++;
	}
	if (e->fails < UINT32_MAX)
		e->fails++;
	if (e->fails > grace) {
		over = e->fails - grace - 1;
		delay = over >= 32 ? max_ms : min_ms << over;
		if (delay > max_ms || delay < min_ms)
			delay = max_ms;
		e->until = (e->until > at ? e->until : at) + delay;
		*until = e->until;
	}
	e->forget = (e->until > at ? e->until : at) + PENALTY_FORGET_MS;
	return 0;
}

void
penalty_free(void)
{
	struct penalty_entry	*e;
	size_t			 i;

	if (!penalty_ready)
		return;
	for (i = 0; i < PENALTY_BUCKETS; i++)
		while ((e = LIST_FIRST(&penalty_buckets[i])) != NULL)
			/* LIST_REMOVE updates the head. */
			/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
			penalty_remove(e);
}
