-- Sekisho authorization server schema, PostgreSQL.
-- String lists are JSON text (same encoding as SQLite). NEVER edit this file
-- once released: add 0002_….sql.

CREATE TABLE clients (
    id                         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name                       TEXT COLLATE "C" NOT NULL,
    secret_hash                BYTEA,
    public                     BOOLEAN     NOT NULL,
    redirect_uris              TEXT COLLATE "C" NOT NULL,
    post_logout_redirect_uris  TEXT COLLATE "C" NOT NULL,
    grant_types                TEXT COLLATE "C" NOT NULL,
    scopes                     TEXT COLLATE "C" NOT NULL,
    audiences                  TEXT COLLATE "C" NOT NULL,
    token_endpoint_auth_method TEXT COLLATE "C" NOT NULL,
    jwks                       BYTEA,
    access_token_ttl           BIGINT      NOT NULL,
    refresh_token_ttl          BIGINT      NOT NULL,
    disabled                   BOOLEAN     NOT NULL,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    username            TEXT COLLATE "C" NOT NULL,
    username_norm       TEXT COLLATE "C" NOT NULL UNIQUE,
    email               TEXT COLLATE "C" NOT NULL,
    name                TEXT COLLATE "C" NOT NULL,
    locale              TEXT COLLATE "C" NOT NULL,
    password_hash       TEXT COLLATE "C" NOT NULL,
    disabled            BOOLEAN     NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    password_changed_at TIMESTAMPTZ
);

CREATE TABLE consents (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT COLLATE "C" NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes     TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);
CREATE INDEX consents_expires_at ON consents (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE login_sessions (
    id_hash    BYTEA       NOT NULL PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ
);
CREATE INDEX login_sessions_user_id ON login_sessions (user_id);
CREATE INDEX login_sessions_expires_at ON login_sessions (expires_at);

CREATE TABLE grant_sessions (
    kind         TEXT COLLATE "C" NOT NULL,
    signature    TEXT COLLATE "C" NOT NULL,
    request_id   TEXT COLLATE "C" NOT NULL,
    client_id    TEXT COLLATE "C" NOT NULL,
    subject      TEXT COLLATE "C" NOT NULL,
    active       BOOLEAN     NOT NULL,
    data         BYTEA,
    jti          TEXT COLLATE "C" NOT NULL,
    requested_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX grant_sessions_request_id ON grant_sessions (kind, request_id);
CREATE INDEX grant_sessions_client_id ON grant_sessions (kind, client_id);
CREATE INDEX grant_sessions_subject ON grant_sessions (kind, subject);
CREATE INDEX grant_sessions_expires_at ON grant_sessions (expires_at);

CREATE TABLE signing_keys (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    alg             TEXT COLLATE "C" NOT NULL,
    private_key_enc BYTEA       NOT NULL,
    public_jwk      BYTEA       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    activate_at     TIMESTAMPTZ NOT NULL,
    retire_at       TIMESTAMPTZ NOT NULL,
    expire_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE jtis (
    scope      TEXT COLLATE "C" NOT NULL,
    jti        TEXT COLLATE "C" NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, jti)
);
CREATE INDEX jtis_expires_at ON jtis (expires_at);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    consumer   TEXT COLLATE "C" NOT NULL,
    scopes     TEXT COLLATE "C" NOT NULL,
    hash       BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked    BOOLEAN     NOT NULL
);
