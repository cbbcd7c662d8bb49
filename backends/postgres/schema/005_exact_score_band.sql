-- score_band() from the score's decimal digits instead of ln(): ln(numeric) is computed to a precision
-- that follows the input's scale, so `2980.9579870417282` and `2980.9579870417282000000000` (one score)
-- could land in different bands, and rounding near a band edge could order a smaller score first.
--
-- A band is (decimal exponent) * 100 + (first two significant digits): exact, monotone in the score,
-- equal for equal scores however they are written, 90 bands per power of ten.
CREATE OR REPLACE FUNCTION score_band(score numeric) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN score > 0 THEN
        100 * (CASE
                   WHEN score >= 1 THEN length(trunc(score)::text)
                   ELSE -(length(split_part(score::text, '.', 2))
                          - length(ltrim(split_part(score::text, '.', 2), '0')))
               END)
        + rpad(substr(ltrim(replace(score::text, '.', ''), '0'), 1, 2), 2, '0')::integer
    END;

-- Every stored band was computed by the old function: count them again and rebuild the indexes on it.
DELETE FROM board_bands;
INSERT INTO board_bands (community_id, board, band, members)
SELECT community_id, v.board, score_band(v.score), count(*)
  FROM scores CROSS JOIN LATERAL (VALUES ('conviction', conviction), ('activity', activity)) AS v(board, score)
 WHERE v.score > 0
 GROUP BY 1, 2, 3;
REINDEX INDEX scores_conviction_board;
REINDEX INDEX scores_activity_board;
