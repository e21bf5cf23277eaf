-- The upgrade path from the first shipped version, one step at a time.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger VERSION '1.0';
RESET client_min_messages;

SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT ledger_open_account('alice') > 0 AS opened;
SELECT ledger_credit('alice', 100, 'before-upgrade') AS balance;
SELECT count(*) AS batch_functions FROM pg_proc WHERE proname LIKE 'ledger\_%\_batch';

ALTER EXTENSION ledger UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';

-- data and keys survive, the new functions work, and PUBLIC cannot run them
SELECT ledger_credit('alice', 100, 'before-upgrade') AS replayed;
SELECT * FROM ledger_debit_batch(ARRAY['alice'], ARRAY[40]);
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute,
       p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.proname LIKE 'ledger\_%\_batch'
 ORDER BY 1;
SELECT * FROM ledger_verify();

-- 1.1 -> 1.2 rewrites no table: every filenode stays
CREATE TEMP TABLE filenodes AS
SELECT c.relname, pg_relation_filenode(c.oid) AS filenode
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ledger' AND c.relkind IN ('r', 'i');
ALTER EXTENSION ledger UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT f.relname, f.filenode = pg_relation_filenode(('ledger.' || f.relname)::regclass) AS same_filenode
  FROM filenodes f ORDER BY 1;

-- the guards are in place and in force, and the ledger still posts
SELECT tgrelid::regclass AS tab, tgname, tgenabled
  FROM pg_trigger
 WHERE tgfoid = 'ledger.guard_write()'::regprocedure
 ORDER BY 1, 2;
SELECT ledger_debit('alice', 10, 'after-upgrade') AS balance;
SELECT * FROM ledger_verify();

-- 1.2 -> 1.3 (escrow mode) rewrites no table either
DROP TABLE filenodes;
CREATE TEMP TABLE filenodes AS
SELECT c.relname, pg_relation_filenode(c.oid) AS filenode
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ledger' AND c.relkind IN ('r', 'i');
ALTER EXTENSION ledger UPDATE TO '1.3';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT f.relname, f.filenode = pg_relation_filenode(('ledger.' || f.relname)::regclass) AS same_filenode
  FROM filenodes f ORDER BY 1;
SELECT ledger_account_mode('alice') AS mode, ledger_debit('alice', 10, 'after-1.3') AS balance;
SELECT * FROM ledger_verify();

-- 1.3 -> 1.4 (the shard side of cross-shard transfers) adds a table and
-- functions; it rewrites no table
DROP TABLE filenodes;
CREATE TEMP TABLE filenodes AS
SELECT c.relname, pg_relation_filenode(c.oid) AS filenode
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'ledger' AND c.relkind IN ('r', 'i');
ALTER EXTENSION ledger UPDATE TO '1.4';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT f.relname, f.filenode = pg_relation_filenode(('ledger.' || f.relname)::regclass) AS same_filenode
  FROM filenodes f ORDER BY 1;
SELECT ledger_transfer_out('alice', 'elsewhere', 'XXX', 5, 'after-1.4') > 0 AS transfer_out,
       ledger_transfer_finish('after-1.4') > 0 AS finished,
       ledger_balance('alice') AS balance;
SELECT * FROM ledger_verify();

-- a fresh install has the same objects as an upgraded one
CREATE TEMP TABLE upgraded AS
SELECT pg_describe_object(classid, objid, objsubid) AS object
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ledger');
SET client_min_messages = warning;
DROP EXTENSION ledger CASCADE;
CREATE EXTENSION ledger;
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT object AS only_in_one FROM (
  (SELECT object FROM upgraded
   EXCEPT
   SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ledger'))
  UNION ALL
  (SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ledger')
   EXCEPT
   SELECT object FROM upgraded)) d;
