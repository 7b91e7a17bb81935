-- The auth service's schema (DESIGN §1, §4; docs/SECURITY.md).
-- Projections (rebuilt from events): users, groups, members, privileges, api_keys, refresh_tokens.
-- Not a projection: signing_keys holds private keys, which never go into an event.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    name          text COLLATE "C" PRIMARY KEY,
    password_hash text        NOT NULL,
    email         text        NOT NULL DEFAULT '',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    password_changed_at timestamptz NOT NULL
);

CREATE TABLE auth.groups (
    name       text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL
);

CREATE TABLE auth.members (
    group_name text COLLATE "C" NOT NULL REFERENCES auth.groups (name) ON DELETE CASCADE,
    user_name  text COLLATE "C" NOT NULL,
    PRIMARY KEY (group_name, user_name)
);
CREATE INDEX members_user_idx ON auth.members (user_name);

CREATE TABLE auth.privileges (
    rule_id        text PRIMARY KEY,
    principal_kind text NOT NULL,
    principal      text COLLATE "C" NOT NULL DEFAULT '',
    feed           text COLLATE "C",
    privilege      text NOT NULL,
    effect         text NOT NULL CHECK (effect IN ('grant', 'deny')),
    created_at     timestamptz NOT NULL
);

CREATE TABLE auth.api_keys (
    key_id      text PRIMARY KEY,
    key_hash    text NOT NULL UNIQUE,
    owner       text COLLATE "C",
    feeds       text[],
    privileges  text[] NOT NULL,
    expires_at  timestamptz,
    description text NOT NULL DEFAULT '',
    revoked     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL
);

CREATE TABLE auth.refresh_tokens (
    token_id   text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    subject    text COLLATE "C" NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked    boolean NOT NULL DEFAULT false,
    issued_at  timestamptz NOT NULL
);
CREATE INDEX refresh_tokens_subject_idx ON auth.refresh_tokens (subject);

CREATE TABLE auth.signing_keys (
    kid         text PRIMARY KEY,
    public_pem  text NOT NULL,
    private_pem text NOT NULL,
    encrypted   boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    retire_at   timestamptz
);

-- Published read-only view: public keys that verify tokens (the overlap keeps retired keys
-- until retire_at). The api and blob services read only this.
CREATE VIEW auth.v_signing_keys AS
    SELECT kid, public_pem, created_at, retire_at FROM auth.signing_keys
    WHERE retire_at IS NULL OR retire_at > now();
