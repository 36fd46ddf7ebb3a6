-- Users, API keys, graphs, members and uploads: what identity, graphs and
-- uploads need first. Later features add numbered files; never edit a file
-- that has shipped.

CREATE TABLE users (
    user_id            uuid PRIMARY KEY,
    email              text NOT NULL,
    name               text NOT NULL,
    password_hash      text NOT NULL,
    tier               text NOT NULL DEFAULT 'free'
                       CHECK (tier IN ('free', 'pro', 'enterprise')),
    active             boolean NOT NULL DEFAULT true,
    -- Tokens issued before this instant are refused (password change, deactivation).
    tokens_valid_after timestamptz NOT NULL DEFAULT to_timestamp(0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    api_key_id     uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- Non-secret id embedded in the key, so a check costs one bcrypt at most.
    lookup_id      text NOT NULL UNIQUE,
    secret_hash    text NOT NULL,
    display_prefix text NOT NULL,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    last_used_at   timestamptz,
    revoked_at     timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);

CREATE TABLE graphs (
    graph_id        uuid PRIMARY KEY,
    parent_graph_id uuid REFERENCES graphs (graph_id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    created_by      uuid REFERENCES users (user_id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX graphs_parent_idx ON graphs (parent_graph_id, created_at);

-- Membership of top-level graphs only: a subgraph's access is its parent's.
CREATE TABLE graph_members (
    graph_id   uuid NOT NULL REFERENCES graphs (graph_id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (graph_id, user_id)
);
CREATE INDEX graph_members_user_idx ON graph_members (user_id, graph_id);

CREATE TABLE uploads (
    upload_id     uuid PRIMARY KEY,
    graph_id      uuid NOT NULL REFERENCES graphs (graph_id) ON DELETE CASCADE,
    created_by    uuid REFERENCES users (user_id) ON DELETE SET NULL,
    table_name    text NOT NULL,
    file_name     text NOT NULL,
    format        text NOT NULL CHECK (format IN ('csv', 'parquet', 'json')),
    declared_size bigint NOT NULL CHECK (declared_size > 0),
    size_bytes    bigint NOT NULL DEFAULT 0,
    row_count     bigint NOT NULL DEFAULT 0,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'uploaded', 'validated', 'ingesting',
                                   'ingested', 'failed')),
    error         text NOT NULL DEFAULT '',
    object_key    text NOT NULL,
    etag          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_graph_idx ON uploads (graph_id, created_at DESC);
