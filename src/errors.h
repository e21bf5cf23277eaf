/*-------------------------------------------------------------------------
 *
 * errors.h
 *	  The ledger's own SQLSTATEs: class "LG", one code per business rule.
 *
 * Standard codes are used wherever one fits (22023, 22004, 22003, 42501,
 * 55000); these cover what no standard code names.  The client library's
 * status enum mirrors this list: never renumber, only append.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_ERRORS_H
#define LEDGER_ERRORS_H

#include "utils/elog.h"

/* LG001: the posting would take the balance below the account's floor */
#define ERRCODE_LEDGER_INSUFFICIENT_FUNDS		MAKE_SQLSTATE('L','G','0','0','1')

/* LG002: no account has that name */
#define ERRCODE_LEDGER_ACCOUNT_NOT_FOUND		MAKE_SQLSTATE('L','G','0','0','2')

/* LG003: an idempotency key was reused for a different request */
#define ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT		MAKE_SQLSTATE('L','G','0','0','3')

/* LG004: a transfer between accounts of different currencies */
#define ERRCODE_LEDGER_CURRENCY_MISMATCH		MAKE_SQLSTATE('L','G','0','0','4')

/* LG005: an account was opened again with different parameters */
#define ERRCODE_LEDGER_ACCOUNT_EXISTS			MAKE_SQLSTATE('L','G','0','0','5')

/* LG006: no hold has that id */
#define ERRCODE_LEDGER_HOLD_NOT_FOUND			MAKE_SQLSTATE('L','G','0','0','6')

/* LG007: the hold was captured, released or expired: it reserves nothing */
#define ERRCODE_LEDGER_HOLD_NOT_PENDING			MAKE_SQLSTATE('L','G','0','0','7')

#endif							/* LEDGER_ERRORS_H */
