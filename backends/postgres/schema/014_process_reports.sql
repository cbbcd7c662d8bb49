-- What each bot process last said of itself (its recent latencies, shadow results and breakers), for the
-- migration page: every process writes its own row every few seconds, the page reads the fresh ones.
CREATE TABLE process_reports (
    process     text        PRIMARY KEY,
    shards      integer[]   NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    report      jsonb       NOT NULL
);
