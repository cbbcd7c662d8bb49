-- A range's running sum over the fences, and a rank's sum of the fences before it, read the fences in
-- board order. With `members` outside the index, the planner read every fence of the board and sorted
-- them (a quicksort of ~1,900 rows per page at 1M members, 5-14 ms when most keys share one score);
-- with it inside, both are index-only scans in order, and a range stops at the fence holding its
-- first rank (0.2 ms for the entry rank, 2 ms for the last page, whatever the shape of the scores).
ALTER TABLE board_fences
    DROP CONSTRAINT board_fences_pkey,
    ADD CONSTRAINT board_fences_pkey PRIMARY KEY (community_id, board, neg_score, joined_at, profile_id)
        INCLUDE (members);
