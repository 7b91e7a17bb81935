-- Positions of the blob service's bus consumers (written with what they apply, DESIGN §2).
CREATE TABLE blob.consumer_positions (
    name     text PRIMARY KEY,
    position bigint NOT NULL
);
