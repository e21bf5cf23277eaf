/*-------------------------------------------------------------------------
 *
 * names.c
 *	  Account names and idempotency keys: which are valid, when two are the
 *	  same, and an index from a name to its position in a set.
 *
 * Names and keys are identifiers compared byte for byte, as the "C"
 * collation of their columns does; never sorted for people.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"

#include "ledger.h"

/* Up to this many names the index is a list: cheaper than a hash table. */
#define SMALL_INDEX		8

#define NAME_KEY_SIZE	(LEDGER_MAX_NAME_BYTES + 1)

typedef struct NameEntry
{
	char		name[NAME_KEY_SIZE];	/* NUL-terminated */
	int			position;
} NameEntry;

struct LedgerNameIndex
{
	int			count;
	text	   *names[SMALL_INDEX];
	int			positions[SMALL_INDEX];
	HTAB	   *hash;			/* once past SMALL_INDEX */
};

/* 1 to 255 bytes. */
bool
ledger_name_is_valid(text *name)
{
	int			len = VARSIZE_ANY_EXHDR(name);

	return len >= 1 && len <= LEDGER_MAX_NAME_BYTES;
}

bool
ledger_same_text(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

LedgerNameIndex *
ledger_names_create(int expected)
{
	LedgerNameIndex *index = palloc0(sizeof(LedgerNameIndex));

	if (expected > SMALL_INDEX)
	{
		HASHCTL		ctl;

		ctl.keysize = NAME_KEY_SIZE;
		ctl.entrysize = sizeof(NameEntry);
		ctl.hcxt = CurrentMemoryContext;
		index->hash = hash_create("ledger names", expected, &ctl,
								  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	return index;
}

/* The NUL-terminated hash key of a valid name. */
static void
hash_key(text *name, char *key)
{
	int			len = VARSIZE_ANY_EXHDR(name);

	memcpy(key, VARDATA_ANY(name), len);
	key[len] = '\0';
}

/* The position of a valid name, or -1 if it is not in the index. */
int
ledger_names_find(LedgerNameIndex *index, text *name)
{
	char		key[NAME_KEY_SIZE];
	NameEntry  *entry;

	if (index->hash == NULL)
	{
		for (int i = 0; i < index->count; i++)
			if (ledger_same_text(index->names[i], name))
				return index->positions[i];
		return -1;
	}
	hash_key(name, key);
	entry = hash_search(index->hash, key, HASH_FIND, NULL);
	return entry != NULL ? entry->position : -1;
}

/* Add a valid name that is not in the index yet. */
void
ledger_names_add(LedgerNameIndex *index, text *name, int position)
{
	char		key[NAME_KEY_SIZE];
	NameEntry  *entry;

	Assert(ledger_names_find(index, name) < 0);
	if (index->hash == NULL && index->count < SMALL_INDEX)
	{
		index->names[index->count] = name;
		index->positions[index->count++] = position;
		return;
	}
	if (index->hash == NULL)
	{
		/* past the small list: move to a hash table */
		LedgerNameIndex *grown = ledger_names_create(SMALL_INDEX * 4);

		for (int i = 0; i < index->count; i++)
			ledger_names_add(grown, index->names[i], index->positions[i]);
		index->hash = grown->hash;
		pfree(grown);
	}
	hash_key(name, key);
	entry = hash_search(index->hash, key, HASH_ENTER, NULL);
	entry->position = position;
	index->count++;
}
