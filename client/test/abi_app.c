/*
 * abi_app.c: a program built against libledger that uses one call of a
 * chosen release, for the ABI check of test/client.sh (client/Makefile).
 * It prints "ran" when it got as far as main: a program needing a newer
 * library than the one installed must not.
 */
#include <stdio.h>

#include "ledger.h"

int
main(void)
{
	LedgerStatus st = LEDGER_OK;

	printf("ran\n");
#if defined(USE_1_2)
	st = ledger_set_timeout(NULL, 1);	/* since 1.2 */
#elif defined(USE_1_1)
	st = ledger_post_batch(NULL, NULL, 0);	/* since 1.1 */
#else
	st = ledger_balance(NULL, "x", NULL);	/* since 1.0 */
#endif
	printf("%s\n", ledger_status_name(st));
	return 0;
}
