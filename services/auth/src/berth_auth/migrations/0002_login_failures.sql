-- Failed-login limits (docs/SECURITY.md, "Logins"): shared by every auth process and replica.
-- Not a projection and not an event: operational state that expires on its own (a row whose
-- tat has passed says nothing and is deleted). One row per bucket: "address:<client address>"
-- or "user:<client address>:<sha256 of the user name>". tat is the bucket's theoretical
-- arrival time (GCRA): each failure moves it one interval (60 s / limit) past max(tat, now);
-- a login is refused while tat lies more than (limit - 1) intervals ahead of now.
CREATE TABLE auth.login_failures (
    bucket text PRIMARY KEY,
    tat    timestamptz NOT NULL
);
CREATE INDEX login_failures_tat_idx ON auth.login_failures (tat);
