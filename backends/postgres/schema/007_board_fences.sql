-- Ranks in O(fence) whatever the shape of the scores. Score bands bounded a rank's cost by the members of
-- one band, and a band is every member on one score: in a holder community where most members hold the
-- same amount, that is most of the board. Fences cut the board by its whole order instead, (score DESC,
-- joined_at, profile_id), so ties are cut too:
--
--   a fence is a board key; its `members` are the ranked members from its key up to the next fence's.
--
-- "How many are ahead of me" is the sum over the fences before mine (N / ~600 rows) plus a count inside
-- mine (at most 2 * 512 index entries); a deep page starts at the fence holding its first rank. Every
-- board has a first fence at the lowest possible key, so every member has a fence. A write adds its
-- net change to each fence it touches; at commit, a fence that grew past 1024 is split into fences of 512
-- and one that fell under 128 is merged into the one before it (not earlier: an upsert fires its INSERT
-- and UPDATE triggers one after the other, and a split between them would count rows twice). Writers
-- of one community queue on its `communities` row (the ranked counts below lock it first), so fences
-- change one writer at a time.

CREATE TABLE board_fences (
    community_id bigint  NOT NULL,
    board        text    NOT NULL CHECK (board IN ('conviction', 'activity')),
    neg_score    numeric NOT NULL,
    joined_at    timestamptz NOT NULL,
    profile_id   uuid    NOT NULL,
    members      bigint  NOT NULL,
    PRIMARY KEY (community_id, board, neg_score, joined_at, profile_id)
);
-- Almost always empty: the fences a write left out of bounds.
CREATE INDEX board_fences_unsettled ON board_fences (community_id, board)
    WHERE members > 1024 OR (members < 128 AND neg_score <> '-Infinity');

-- Cut the fence at the given key into fences of 512 from its own rows (the last one takes a short rest).
CREATE FUNCTION split_board_fence(c bigint, b text, n numeric, j timestamptz, p uuid) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    nx record;
BEGIN
    SELECT f.neg_score, f.joined_at, f.profile_id INTO nx FROM board_fences f
     WHERE f.community_id = c AND f.board = b AND (f.neg_score, f.joined_at, f.profile_id) > (n, j, p)
     ORDER BY f.neg_score, f.joined_at, f.profile_id LIMIT 1;
    EXECUTE format($q$
        WITH seg AS (
            SELECT -s.%1$I AS neg, s.joined_at, s.profile_id,
                   row_number() OVER (ORDER BY -s.%1$I, s.joined_at, s.profile_id) - 1 AS i,
                   count(*) OVER () AS total
              FROM scores s
             WHERE s.community_id = $1 AND s.%1$I > 0
               AND (-s.%1$I, s.joined_at, s.profile_id) >= ($3, $4, $5)
               AND ($6::numeric IS NULL OR (-s.%1$I, s.joined_at, s.profile_id) < ($6, $7, $8))
        ), cuts AS (
            SELECT neg, joined_at, profile_id, i,
                   coalesce(lead(i) OVER (ORDER BY i), total) - i AS members
              FROM seg WHERE i %% 512 = 0 AND (i = 0 OR total - i >= 128)
        ), head AS (
            UPDATE board_fences f SET members = cuts.members FROM cuts
             WHERE cuts.i = 0 AND (f.community_id, f.board, f.neg_score, f.joined_at, f.profile_id) = ($1, $2, $3, $4, $5)
        )
        INSERT INTO board_fences (community_id, board, neg_score, joined_at, profile_id, members)
        SELECT $1, $2, neg, joined_at, profile_id, members FROM cuts WHERE i > 0$q$, b)
    USING c, b, n, j, p, nx.neg_score, nx.joined_at, nx.profile_id;
END $$;

-- Split or merge every out-of-bounds fence of these communities until none is left.
CREATE FUNCTION settle_board_fences(cs bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    LOOP
        SELECT * INTO f FROM board_fences
         WHERE community_id = ANY(cs) AND (members > 1024 OR (members < 128 AND neg_score <> '-Infinity'))
         LIMIT 1;
        EXIT WHEN NOT FOUND;
        IF f.members > 1024 THEN
            PERFORM split_board_fence(f.community_id, f.board, f.neg_score, f.joined_at, f.profile_id);
        ELSE
            DELETE FROM board_fences
             WHERE (community_id, board, neg_score, joined_at, profile_id)
                   = (f.community_id, f.board, f.neg_score, f.joined_at, f.profile_id);
            UPDATE board_fences SET members = members + f.members
             WHERE (community_id, board, neg_score, joined_at, profile_id) = (
                 SELECT community_id, board, neg_score, joined_at, profile_id FROM board_fences
                  WHERE community_id = f.community_id AND board = f.board
                    AND (neg_score, joined_at, profile_id) < (f.neg_score, f.joined_at, f.profile_id)
                  ORDER BY neg_score DESC, joined_at DESC, profile_id DESC LIMIT 1);
        END IF;
    END LOOP;
END $$;

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
        INSERT INTO board_fences (community_id, board, neg_score, joined_at, profile_id, members)
        SELECT DISTINCT r.community_id, v.board, '-Infinity'::numeric, '-infinity'::timestamptz,
               '00000000-0000-0000-0000-000000000000'::uuid, 0::bigint
          FROM new_rows r CROSS JOIN (VALUES ('conviction'), ('activity')) AS v(board)
        ON CONFLICT DO NOTHING;
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
    -- One update of the net change per fence, after the community row above is locked.
    changed := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT community_id, profile_id, joined_at, conviction, activity, 1 AS d FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT community_id, profile_id, joined_at, conviction, activity, -1 AS d FROM old_rows'
        ELSE 'SELECT community_id, profile_id, joined_at, conviction, activity, 1 AS d FROM new_rows'
             ' UNION ALL SELECT community_id, profile_id, joined_at, conviction, activity, -1 FROM old_rows'
    END;
    EXECUTE format($q$
        WITH r AS (
            SELECT r.community_id, v.board, -v.score AS neg, r.joined_at, r.profile_id, r.d FROM (%s) r
             CROSS JOIN LATERAL (VALUES ('conviction', r.conviction), ('activity', r.activity)) AS v(board, score)
             WHERE v.score > 0
        ), moved AS (
            SELECT r.community_id, r.board, f.neg_score, f.joined_at, f.profile_id, sum(r.d) AS d FROM r
             CROSS JOIN LATERAL (
                SELECT f.neg_score, f.joined_at, f.profile_id FROM board_fences f
                 WHERE f.community_id = r.community_id AND f.board = r.board
                   AND (f.neg_score, f.joined_at, f.profile_id) <= (r.neg, r.joined_at, r.profile_id)
                 ORDER BY f.neg_score DESC, f.joined_at DESC, f.profile_id DESC LIMIT 1) f
             GROUP BY 1, 2, 3, 4, 5 HAVING sum(r.d) <> 0
        ), counted AS (
            UPDATE board_fences f SET members = f.members + moved.d FROM moved
             WHERE (f.community_id, f.board, f.neg_score, f.joined_at, f.profile_id)
                   = (moved.community_id, moved.board, moved.neg_score, moved.joined_at, moved.profile_id)
            RETURNING 1
        )
        SELECT count(*) FROM counted$q$, changed);
    RETURN NULL;
END $$;

CREATE FUNCTION board_fences_settle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settle_board_fences(ARRAY[NEW.community_id]);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER board_fences_settle_at_commit AFTER INSERT OR UPDATE ON board_fences
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.members > 1024 OR (NEW.members < 128 AND NEW.neg_score <> '-Infinity'))
    EXECUTE FUNCTION board_fences_settle();

-- The board indexes in board order alone, carrying the score for index-only counts and pages.
DROP INDEX scores_conviction_board;
DROP INDEX scores_activity_board;
CREATE INDEX scores_conviction_board
    ON scores (community_id, (-conviction), joined_at, profile_id) INCLUDE (conviction) WHERE conviction > 0;
CREATE INDEX scores_activity_board
    ON scores (community_id, (-activity), joined_at, profile_id) INCLUDE (activity) WHERE activity > 0;
DROP TABLE board_bands;
DROP FUNCTION score_band(numeric);

-- Every existing board starts as one fence holding all its members, then is cut.
INSERT INTO board_fences (community_id, board, neg_score, joined_at, profile_id, members)
SELECT c.community_id, v.board, '-Infinity'::numeric, '-infinity'::timestamptz,
       '00000000-0000-0000-0000-000000000000'::uuid,
       CASE v.board WHEN 'conviction' THEN c.ranked_conviction ELSE c.ranked_activity END
  FROM communities c CROSS JOIN (VALUES ('conviction'), ('activity')) AS v(board);
SELECT settle_board_fences(array_agg(community_id)) FROM communities;
