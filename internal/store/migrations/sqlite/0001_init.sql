-- Sekisho authorization server schema, SQLite.
-- Times are INTEGER unix microseconds (UTC); booleans INTEGER 0/1; string
-- lists JSON text. NEVER edit this file once released: add 0002_….sql.

CREATE TABLE clients (
    id                         TEXT    NOT NULL PRIMARY KEY,
    name                       TEXT    NOT NULL,
    secret_hash                BLOB,
    public                     INTEGER NOT NULL,
    redirect_uris              TEXT    NOT NULL,
    post_logout_redirect_uris  TEXT    NOT NULL,
    grant_types                TEXT    NOT NULL,
    scopes                     TEXT    NOT NULL,
    audiences                  TEXT    NOT NULL,
    token_endpoint_auth_method TEXT    NOT NULL,
    jwks                       BLOB,
    access_token_ttl           INTEGER NOT NULL,
    refresh_token_ttl          INTEGER NOT NULL,
    disabled                   INTEGER NOT NULL,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id                  TEXT    NOT NULL PRIMARY KEY,
    username            TEXT    NOT NULL,
    username_norm       TEXT    NOT NULL UNIQUE,
    email               TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    locale              TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    disabled            INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    password_changed_at INTEGER
) STRICT;

CREATE TABLE consents (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (user_id, client_id)
) STRICT;
CREATE INDEX consents_client_id ON consents (client_id);
CREATE INDEX consents_expires_at ON consents (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE login_sessions (
    id_hash    BLOB    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;
CREATE INDEX login_sessions_user_id ON login_sessions (user_id);
CREATE INDEX login_sessions_expires_at ON login_sessions (expires_at);

-- No foreign keys: fosite writes sessions for clients/subjects it validated,
-- and deleting a client must not silently drop rows whose JTIs callers still
-- need to deny-list.
CREATE TABLE grant_sessions (
    kind         TEXT    NOT NULL,
    signature    TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    active       INTEGER NOT NULL,
    data         BLOB,
    jti          TEXT    NOT NULL,
    requested_at INTEGER,
    expires_at   INTEGER,
    PRIMARY KEY (kind, signature)
) STRICT;
CREATE INDEX grant_sessions_request_id ON grant_sessions (kind, request_id);
CREATE INDEX grant_sessions_client_id ON grant_sessions (kind, client_id);
CREATE INDEX grant_sessions_subject ON grant_sessions (kind, subject);
CREATE INDEX grant_sessions_expires_at ON grant_sessions (expires_at);

CREATE TABLE signing_keys (
    id              TEXT    NOT NULL PRIMARY KEY,
    alg             TEXT    NOT NULL,
    private_key_enc BLOB    NOT NULL,
    public_jwk      BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    activate_at     INTEGER NOT NULL,
    retire_at       INTEGER NOT NULL,
    expire_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE jtis (
    scope      TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, jti)
) STRICT;
CREATE INDEX jtis_expires_at ON jtis (expires_at);

CREATE TABLE api_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    consumer   TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    hash       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked    INTEGER NOT NULL
) STRICT;
