//! Versioned schema: migration N brings `PRAGMA user_version` from N-1 to N. Append new
//! migrations; never edit a released one.

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_canon TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE refresh_tokens (
    hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_lower TEXT NOT NULL,
    description TEXT NOT NULL,
    visibility TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    member_count INTEGER NOT NULL,
    max_members INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE memberships (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_by_user ON memberships (user_id, group_id);
CREATE TABLE join_requests (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE TABLE bans (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    banned_by TEXT NOT NULL,
    banned_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE TABLE cooldowns (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE TABLE messages (
    group_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE,
    sender_id TEXT NOT NULL,
    envelope BLOB NOT NULL,
    sent_at INTEGER NOT NULL,
    client_msg_id TEXT,
    PRIMARY KEY (group_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_client_id ON messages (group_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
"#,
    r#"
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    actor_id TEXT,
    group_id TEXT,
    target_id TEXT,
    client_addr TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX audit_events_by_group ON audit_events (group_id, at, id) WHERE group_id IS NOT NULL;
CREATE INDEX audit_events_by_time ON audit_events (at);
"#,
    // v1.1: invitations (moderators need nothing new: `memberships.role` is free text).
    r#"
CREATE TABLE invitations (
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    invited_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX invitations_by_group ON invitations (group_id, invited_at, user_id);
CREATE INDEX invitations_by_user ON invitations (user_id, invited_at, group_id);
"#,
    // v1.1: edits and deletions are entries of the log (v1 rows are `text`).
    r#"
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE messages ADD COLUMN target_id TEXT;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
CREATE INDEX messages_by_target ON messages (target_id) WHERE target_id IS NOT NULL;
"#,
    // v1.1: read markers. Existing members have read everything (nothing turns unread on the
    // upgrade); a new member's marker starts at the group's last seq.
    r#"
ALTER TABLE memberships ADD COLUMN last_read_seq INTEGER NOT NULL DEFAULT 0;
UPDATE memberships SET last_read_seq = (SELECT last_seq FROM groups WHERE groups.id = memberships.group_id);
CREATE TRIGGER memberships_read_from_join AFTER INSERT ON memberships BEGIN
    UPDATE memberships SET last_read_seq = (SELECT last_seq FROM groups WHERE id = NEW.group_id)
        WHERE group_id = NEW.group_id AND user_id = NEW.user_id;
END;
"#,
];
