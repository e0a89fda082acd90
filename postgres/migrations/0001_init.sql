-- drainpipe's PostgreSQL schema, version 1. Text keys use the "C"
-- collation: byte order, as the embedded SQLite store sorts, and cheaper
-- comparisons than a linguistic collation.

CREATE TABLE apps (
	name        text COLLATE "C" PRIMARY KEY,
	created_at  timestamptz NOT NULL,
	drain_user  text NOT NULL,
	secret_hash text NOT NULL,
	token_hash  text NOT NULL UNIQUE
);

-- meta holds single values; journal_position is the position of a local
-- journal that Apply has absorbed (role "all" with an embedded journal).
CREATE TABLE meta (
	key   text PRIMARY KEY,
	value bigint NOT NULL
);
INSERT INTO meta(key, value) VALUES ('journal_position', 0);

-- The bucket tiers. Each is range-partitioned on ts; the partitions
-- (buckets_<tier>_p<YYYYMMDD of their start>) are created ahead of time by
-- Store.Maintain and on demand for late data, and dropped whole by
-- Store.DropExpired, with fillfactor 80 so that the merges, which rewrite
-- rows in place many times a minute, stay heap-only (HOT) updates: no
-- indexed column ever changes. data is a metrics.Bucket in its own codec;
-- requests and err5xx repeat its counts so fleet summaries need not decode
-- it.
CREATE TABLE buckets_1m (
	app      text COLLATE "C" NOT NULL,
	ptype    text COLLATE "C" NOT NULL,
	ts       timestamptz NOT NULL,
	requests bigint NOT NULL,
	err5xx   bigint NOT NULL,
	data     bytea NOT NULL,
	PRIMARY KEY (app, ts, ptype)
) PARTITION BY RANGE (ts);
CREATE INDEX buckets_1m_ts ON buckets_1m (ts);

CREATE TABLE buckets_10m (LIKE buckets_1m INCLUDING ALL) PARTITION BY RANGE (ts);
CREATE TABLE buckets_1h (LIKE buckets_1m INCLUDING ALL) PARTITION BY RANGE (ts);

-- Events keep their time in Unix nanoseconds, exactly as parsed. The
-- table is append-only and grows for the longest retention, so it is
-- range-partitioned on that time too (events_p<YYYYMMDD>, 30 days each)
-- and retention drops whole partitions instead of deleting rows. id only
-- orders events of the same nanosecond.
CREATE TABLE events (
	id     bigserial NOT NULL,
	app    text COLLATE "C" NOT NULL,
	ts_ns  bigint NOT NULL,
	ptype  text COLLATE "C" NOT NULL,
	dyno   text COLLATE "C" NOT NULL,
	kind   text NOT NULL,
	code   text NOT NULL,
	detail text NOT NULL
) PARTITION BY RANGE (ts_ns);
CREATE INDEX events_app_ts ON events (app, ts_ns);
CREATE INDEX events_last ON events (app, ts_ns DESC, id DESC)
	WHERE kind IN ('deploy', 'release', 'restart', 'crash');

CREATE TABLE dynos (
	app       text COLLATE "C" NOT NULL,
	ptype     text COLLATE "C" NOT NULL,
	dyno      text COLLATE "C" NOT NULL,
	last_seen timestamptz NOT NULL,
	PRIMARY KEY (app, ptype, dyno)
);

CREATE TABLE custom_names (
	app  text COLLATE "C" NOT NULL,
	name text COLLATE "C" NOT NULL,
	kind smallint NOT NULL,
	PRIMARY KEY (app, name, kind)
);

-- Stored buckets that failed to decode, moved aside bytes intact.
CREATE TABLE quarantine (
	id       bigserial PRIMARY KEY,
	tbl      text NOT NULL,
	app      text NOT NULL,
	ptype    text NOT NULL,
	ts       timestamptz NOT NULL,
	data     bytea NOT NULL,
	error    text NOT NULL,
	moved_at timestamptz NOT NULL DEFAULT now()
);

-- The next Kafka offset to consume per consumer group and partition,
-- moved in the same transaction as the aggregates it covers.
CREATE TABLE partition_offsets (
	grp         text NOT NULL,
	topic       text NOT NULL,
	part        integer NOT NULL,
	next_offset bigint NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (grp, topic, part)
);

-- Logplex-Frame-Ids already aggregated, for deduplication across ingest
-- processes; pruned after 24 hours.
CREATE TABLE seen_frames (
	app      text COLLATE "C" NOT NULL,
	frame_id text COLLATE "C" NOT NULL,
	seen_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (app, frame_id)
);
CREATE INDEX seen_frames_seen_at ON seen_frames (seen_at);
