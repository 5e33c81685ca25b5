-- bench/update.sql — the UPDATE workload: every row of table :tbl, two columns changed.
UPDATE :"tbl" SET a = a + 1, c = c || 'x';
