-- Key safety (issue 8, "Keys"). A KEK version number alone does not name a key: two
-- rotations from the same base file each make a different "v2". kek_versions fixes
-- the key-check value (KCV: HMAC of a fixed label under the KEK, see keyring.py) of
-- each version the first time it is claimed (by rotate-key or by the first data key
-- wrapped under it); every data key records the KCV of its KEK and the foreign key
-- makes a data key wrapped by a forked KEK impossible to store.
CREATE TABLE kek_versions (
    version    integer     PRIMARY KEY CHECK (version >= 1),
    kek_check  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (version, kek_check)
);

-- encryptions: how many seals this data key may have made (replicas reserve blocks,
-- so it counts high, never low); the next version is minted well before 2^32.
-- Rows written before this migration keep kek_check NULL (not checked).
ALTER TABLE data_keys
    ADD COLUMN kek_check   text,
    ADD COLUMN encryptions bigint NOT NULL DEFAULT 0 CHECK (encryptions >= 0),
    ADD FOREIGN KEY (kek_version, kek_check) REFERENCES kek_versions (version, kek_check);

-- Heartbeats: the ring each replica holds. set-min-version and the data-key drop
-- refuse while a replica seen within the window holds an older (or forked) ring.
CREATE TABLE keyring_replicas (
    replica_id     text        PRIMARY KEY,
    active_version integer     NOT NULL,
    min_version    integer     NOT NULL,
    kek_checks     jsonb       NOT NULL,
    last_seen      timestamptz NOT NULL DEFAULT now()
);

-- The fence: the minimum KEK version new ciphertext may use. set-min-version raises
-- it in the transaction that checks nothing older remains; writers read it FOR SHARE
-- in the statement that picks their data key, so check and write cannot interleave.
CREATE TABLE keyring_fence (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    min_version integer NOT NULL DEFAULT 1 CHECK (min_version >= 1)
);

INSERT INTO keyring_fence DEFAULT VALUES;
