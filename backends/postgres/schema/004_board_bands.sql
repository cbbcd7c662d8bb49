-- Ranks in O(band) instead of O(rank): members are counted per score band, so "how many are ahead of
-- me" is the sum of the bands above mine (a few hundred rows) plus a count inside my own band, and a
-- deep page starts from the first member of the band it falls in instead of an OFFSET from the top.
--
-- A band spans 1/32 of an e-fold of the score (about 3 %): enough bands that one holds a small share
-- of a large community, few enough that summing them is cheap. The band only ever grows with the
-- score, so ordering by (band DESC, score DESC, joined_at, profile_id) is the board order.

CREATE FUNCTION score_band(score numeric) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN score > 0 THEN floor(ln(score) * 32)::integer END;

CREATE TABLE board_bands (
    community_id bigint  NOT NULL,
    board        text    NOT NULL CHECK (board IN ('conviction', 'activity')),
    band         integer NOT NULL,
    members      bigint  NOT NULL,
    PRIMARY KEY (community_id, board, band)
);

INSERT INTO board_bands (community_id, board, band, members)
SELECT community_id, v.board, score_band(v.score), count(*)
  FROM scores CROSS JOIN LATERAL (VALUES ('conviction', conviction), ('activity', activity)) AS v(board, score)
 WHERE v.score > 0
 GROUP BY 1, 2, 3;

-- The board indexes lead with the band and carry the score itself, so counts and pages are
-- index-only scans (an index on expressions alone sends every entry to the heap for the score).
DROP INDEX scores_conviction_board;
DROP INDEX scores_activity_board;
CREATE INDEX scores_conviction_board
    ON scores (community_id, (-score_band(conviction)), (-conviction), joined_at, profile_id) INCLUDE (conviction)
    WHERE conviction > 0;
CREATE INDEX scores_activity_board
    ON scores (community_id, (-score_band(activity)), (-activity), joined_at, profile_id) INCLUDE (activity)
    WHERE activity > 0;

CREATE OR REPLACE FUNCTION scores_count_ranked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    -- Each branch only names the transition table its event has.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE communities c
           SET ranked_conviction = c.ranked_conviction + d.conviction,
               ranked_activity = c.ranked_activity + d.activity
          FROM (SELECT community_id, count(*) FILTER (WHERE conviction > 0) AS conviction,
                       count(*) FILTER (WHERE activity > 0) AS activity
                  FROM new_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id AND (d.conviction > 0 OR d.activity > 0);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE communities c
           SET ranked_conviction = c.ranked_conviction - d.conviction,
               ranked_activity = c.ranked_activity - d.activity
          FROM (SELECT community_id, count(*) FILTER (WHERE conviction > 0) AS conviction,
                       count(*) FILTER (WHERE activity > 0) AS activity
                  FROM old_rows GROUP BY community_id) d
         WHERE c.community_id = d.community_id AND (d.conviction > 0 OR d.activity > 0);
    END IF;
    -- One upsert of the net change per band, in key order, after the community row above is locked:
    -- writers of one community queue on that row, so band rows are never locked in two orders.
    changed := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT community_id, conviction, activity, 1 AS d FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT community_id, conviction, activity, -1 AS d FROM old_rows'
        ELSE 'SELECT community_id, conviction, activity, 1 AS d FROM new_rows'
             ' UNION ALL SELECT community_id, conviction, activity, -1 FROM old_rows'
    END;
    EXECUTE format(
        'INSERT INTO board_bands AS b (community_id, board, band, members)'
        ' SELECT r.community_id, v.board, score_band(v.score), sum(r.d) FROM (%s) r'
        ' CROSS JOIN LATERAL (VALUES (''conviction'', r.conviction), (''activity'', r.activity)) AS v(board, score)'
        ' WHERE v.score > 0 GROUP BY 1, 2, 3 HAVING sum(r.d) <> 0 ORDER BY 1, 2, 3'
        ' ON CONFLICT (community_id, board, band) DO UPDATE SET members = b.members + EXCLUDED.members',
        changed);
    RETURN NULL;
END $$;
