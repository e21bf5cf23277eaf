/*-------------------------------------------------------------------------
 *
 * router.c
 *	  The placement hash of the ledger_router extension.
 *
 * An account lives on the shard its name hashes to, for good: the hash is
 * defined here (32-bit FNV-1a over the name's bytes) and never changes,
 * unlike hashtext(), which a PostgreSQL release may change.  PL/Proxy
 * sends a call to partition hash & (N - 1).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "ledger.h"

#define FNV_OFFSET_BASIS 2166136261u
#define FNV_PRIME		16777619u

/*
 * ledger_router.hash(account text) RETURNS int4
 *
 * NULL hashes to 0: the call goes to the first shard, which refuses it
 * (22004) as one node would.
 */
PG_FUNCTION_INFO_V1(ledger_router_hash);
Datum
ledger_router_hash(PG_FUNCTION_ARGS)
{
	uint32		hash = FNV_OFFSET_BASIS;
	text	   *name;
	const unsigned char *bytes;
	int			len;

	if (PG_ARGISNULL(0))
		PG_RETURN_INT32(0);
	name = PG_GETARG_TEXT_PP(0);
	bytes = (const unsigned char *) VARDATA_ANY(name);
	len = VARSIZE_ANY_EXHDR(name);
	for (int i = 0; i < len; i++)
	{
		hash ^= bytes[i];
		hash *= FNV_PRIME;
	}
	PG_RETURN_INT32((int32) hash);
}
