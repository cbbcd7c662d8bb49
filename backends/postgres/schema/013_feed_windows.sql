-- The score feed's HTTP requests per community and minute, counted where every bot process sees them:
-- a community's limit holds however many processes run a door.
CREATE TABLE feed_windows (
    community_id bigint      PRIMARY KEY REFERENCES communities ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    requests     integer     NOT NULL
);
