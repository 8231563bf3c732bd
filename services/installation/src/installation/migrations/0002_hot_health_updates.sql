-- A credential's expiry flips every connection and installation it backs in one
-- statement (one credential may back 10,000). Free space on each page lets PostgreSQL
-- update those rows in place (HOT: the changed columns are in no index, so no index
-- entries are written): about 230 -> 160 ms and 435 -> 300 ms per 10,000 rows in
-- bench/expiry_propagation.py. Applies to pages written from now on.
ALTER TABLE connections SET (fillfactor = 80);
ALTER TABLE installations SET (fillfactor = 80);
