-- Commands the router stopped sending to a backend (auto-rollback); held until an admin clears them,
-- whatever the flag file says, and shared by every bot process.
CREATE TABLE routing_latches (
    command    text        NOT NULL,
    backend    text        NOT NULL,
    reason     text        NOT NULL,
    tripped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (command, backend)
);
