-- Encrypted graph backups stored in S3 under keys built from ids only.

CREATE TABLE backups (
    backup_id   uuid PRIMARY KEY,
    graph_id    uuid NOT NULL REFERENCES graphs (graph_id) ON DELETE CASCADE,
    created_by  uuid REFERENCES users (user_id) ON DELETE SET NULL,
    object_key  text NOT NULL,
    size_bytes  bigint NOT NULL,
    -- SHA-256 of the plaintext export, verified after decryption on restore.
    sha256      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backups_graph_idx ON backups (graph_id, created_at DESC);
