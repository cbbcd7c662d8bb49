-- An update moves a member on a board only when that board's score (or the join time) changed: a write of
-- activity points leaves the member's conviction key where it was, and its -1 and +1 in the same fence
-- cancel out. Each was still a fence lookup: half of the trigger's work for a batch of activity points
-- (142 ms of a 5,000-update door request). Rows are paired by their key (community, profile); a row whose
-- key changed pairs with nothing and counts whole, as before.
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
    -- One update of the net change per fence, after the community row above is locked. A board's score
    -- written as 0 here is one the row does not move on: the fence lookups below skip it.
    changed := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT community_id, profile_id, joined_at, conviction, activity, 1 AS d FROM new_rows'
        WHEN 'DELETE' THEN 'SELECT community_id, profile_id, joined_at, conviction, activity, -1 AS d FROM old_rows'
        ELSE $u$
            SELECT n.community_id, n.profile_id, n.joined_at,
                   CASE WHEN o.profile_id IS NULL OR o.joined_at <> n.joined_at OR o.conviction <> n.conviction
                        THEN n.conviction ELSE 0 END AS conviction,
                   CASE WHEN o.profile_id IS NULL OR o.joined_at <> n.joined_at OR o.activity <> n.activity
                        THEN n.activity ELSE 0 END AS activity, 1 AS d
              FROM new_rows n LEFT JOIN old_rows o ON (o.community_id, o.profile_id) = (n.community_id, n.profile_id)
            UNION ALL
            SELECT o.community_id, o.profile_id, o.joined_at,
                   CASE WHEN n.profile_id IS NULL OR o.joined_at <> n.joined_at OR o.conviction <> n.conviction
                        THEN o.conviction ELSE 0 END,
                   CASE WHEN n.profile_id IS NULL OR o.joined_at <> n.joined_at OR o.activity <> n.activity
                        THEN o.activity ELSE 0 END, -1
              FROM old_rows o LEFT JOIN new_rows n ON (n.community_id, n.profile_id) = (o.community_id, o.profile_id)$u$
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
