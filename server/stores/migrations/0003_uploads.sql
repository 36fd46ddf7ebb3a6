-- Uploads: the SHA-256 of the validated object, checked again when it is
-- ingested (with its ETag), so the object loaded is the object validated.

ALTER TABLE uploads ADD COLUMN sha256 text;
