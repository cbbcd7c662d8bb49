-- Leases on work one bot process at a time should do (a community's role sync), as rows that expire:
-- holding one takes no connection for the work's length, and a holder that dies frees it at expiry.
CREATE TABLE work_leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
