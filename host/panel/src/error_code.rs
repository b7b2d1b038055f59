//! [`Code`]: every stable error code of the Panel's API, with its status
//! and title, in one table.
//!
//! A code is what clients branch on: once released it keeps its meaning and
//! its spelling. Each variant of [`Code`] is one row of the table below;
//! the table is generated from the enum ([`Code::markdown_table`]) and a
//! test checks that the file it is included from is up to date, so the
//! documentation cannot drift from what the Panel sends.
//!
//! A code string names one kind of refusal. It appears twice in the table
//! only when the same refusal is answered with two statuses for a reason
//! (the list is [`SHARED`]); a test refuses any other duplicate.
//!
//! Codes the Panel relays from the Marketplace (a refused checkout) are
//! rows too, marked so in their description.
//!
//! The table lives below [`crate::http`], not in it: the domain modules
//! ([`crate::servers`], [`crate::identity`]) name the code a refusal of
//! theirs is answered with, and must not depend on the HTTP layer to do so.
//! [`crate::http::ApiError`] turns a code into a problem document.
//!
#![doc = include_str!("error_code/codes.md")]

use axum::http::StatusCode;

macro_rules! codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $code:literal, $status:ident, $title:literal;
    )+) => {
        /// A stable error code; see the [module docs](self) for the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The wire form: the problem's `code`, and the `type` after
            /// [`PROBLEM_TYPE_PREFIX`](crate::http::error::PROBLEM_TYPE_PREFIX).
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)+ }
            }

            /// The HTTP status answered with this code.
            pub const fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)+ }
            }

            /// The problem's `title`: a short summary for people.
            pub const fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)+ }
            }

            /// When the code is sent (the variant's documentation).
            pub fn when(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc),+).trim(),)+ }
            }
        }
    };
}

codes! {
    // Any route.
    /// One or more fields are invalid; `errors` lists them.
    ValidationFailed = "validation-failed", UNPROCESSABLE_ENTITY, "Validation failed";
    /// The body is not JSON.
    MalformedJson = "malformed-json", BAD_REQUEST, "Malformed JSON";
    /// The request is wrong in a way no field explains.
    BadRequest = "bad-request", BAD_REQUEST, "Bad request";
    /// The body's content type is not accepted; `detail` names the accepted one.
    UnsupportedMediaType = "unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type";
    /// The body exceeds the configured limit.
    PayloadTooLarge = "payload-too-large", PAYLOAD_TOO_LARGE, "Payload too large";
    /// No valid credentials.
    Unauthenticated = "unauthenticated", UNAUTHORIZED, "Authentication required";
    /// Authenticated, but lacking the permission `detail` names.
    Forbidden = "forbidden", FORBIDDEN, "Forbidden";
    /// The operation manages credentials and needs a login session, not an API key.
    SessionRequired = "session-required", FORBIDDEN, "Session required";
    /// The caller grants permissions they do not hold.
    PermissionNotHeld = "permission-not-held", FORBIDDEN, "Permission not held";
    /// A non-administrator grants permissions only administrators may grant.
    AdminOnlyPermission = "admin-only-permission", FORBIDDEN, "Admin-only permission";
    /// The caller changes their own roles.
    OwnRoles = "own-roles", FORBIDDEN, "Own roles";
    /// No such route or resource (or the caller may not know it exists).
    NotFound = "not-found", NOT_FOUND, "Not found";
    /// The resource does not support the method; see `Allow`.
    MethodNotAllowed = "method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed";
    /// The resource exists or changed meanwhile, or a setting the route needs is missing.
    Conflict = "conflict", CONFLICT, "Conflict";
    /// Too many requests from this address or for this account; `Retry-After`.
    RateLimited = "rate-limited", TOO_MANY_REQUESTS, "Too many requests";
    /// A service the Panel depends on is down or not configured.
    ServiceUnavailable = "service-unavailable", SERVICE_UNAVAILABLE, "Service unavailable";
    /// A bug or an unexpected failure; logged with the request id, never detailed.
    InternalError = "internal-error", INTERNAL_SERVER_ERROR, "Internal error";

    // Logging in and the second factor (`/auth`, `/account`).
    /// The provider refused the credentials, or locked the account (one answer for both).
    InvalidCredentials = "invalid-credentials", UNAUTHORIZED, "Invalid credentials";
    /// The provider wants a second factor: retry with `second_factor`.
    SecondFactorRequired = "second-factor-required", UNAUTHORIZED, "Second factor required";
    /// The identity is verified but no user is linked and auto-registration is off.
    AccountNotLinked = "account-not-linked", FORBIDDEN, "Account not linked";
    /// The user is disabled.
    AccountDisabled = "account-disabled", FORBIDDEN, "Account disabled";
    /// The login provider's backend is down.
    ProviderUnavailable = "provider-unavailable", SERVICE_UNAVAILABLE, "Provider unavailable";
    /// The login provider plugin trapped, timed out or is quarantined.
    ProviderFailed = "provider-failed", SERVICE_UNAVAILABLE, "Provider failed";
    /// Unknown, expired or revoked refresh token.
    InvalidRefreshToken = "invalid-refresh-token", UNAUTHORIZED, "Invalid refresh token";
    /// A used refresh token came back: its session is now revoked.
    RefreshTokenReused = "refresh-token-reused", UNAUTHORIZED, "Refresh token reused";
    /// The login challenge is unknown, expired or used: log in again.
    InvalidChallenge = "invalid-challenge", UNAUTHORIZED, "Invalid challenge";
    /// Completing a login: the code or recovery code is wrong, or was used before.
    InvalidSecondFactor = "invalid-second-factor", UNAUTHORIZED, "Invalid second factor";
    /// Changing the second factor of a signed-in account: the code is wrong or was used before.
    WrongSecondFactor = "invalid-second-factor", FORBIDDEN, "Invalid second factor";
    /// Too many wrong codes or passwords; `Retry-After`.
    AccountLocked = "account-locked", LOCKED, "Account locked";
    /// TOTP is already on; turn it off first to enroll again.
    TotpAlreadyEnabled = "totp-already-enabled", CONFLICT, "TOTP already enabled";
    /// No TOTP enrollment to confirm.
    TotpNotPending = "totp-not-pending", CONFLICT, "No TOTP enrollment pending";
    /// TOTP is not on.
    TotpNotEnabled = "totp-not-enabled", CONFLICT, "TOTP not enabled";
    /// The account signs in through a provider without passwords.
    NoPasswordIdentity = "no-password-identity", CONFLICT, "No password to change";
    /// The text is not one OpenSSH public key (`ssh-ed25519 AAAA… comment`) of a known type.
    InvalidSshKey = "invalid-ssh-key", UNPROCESSABLE_ENTITY, "Invalid SSH key";
    /// The caller's account holds this key already (same SHA-256 fingerprint).
    SshKeyExists = "ssh-key-exists", CONFLICT, "SSH key already added";
    /// The password provider's account is linked to another user.
    IdentityTaken = "identity-taken", CONFLICT, "Identity taken";
    /// An administrator requires the caller to set a new password before anything else.
    PasswordChangeRequired = "password-change-required", FORBIDDEN, "Password change required";
    /// No one-time link has this token (never issued, or forged).
    LinkNotFound = "link-not-found", NOT_FOUND, "Link not found";
    /// The one-time link expired.
    LinkExpired = "link-expired", GONE, "Link expired";
    /// The one-time link was used already; each works once.
    LinkUsed = "link-used", GONE, "Link used";
    /// The Panel has no mail settings, so nothing can be sent by mail.
    MailNotConfigured = "mail-not-configured", CONFLICT, "Mail not configured";
    /// The SMTP server refused the message or could not be reached.
    MailFailed = "mail-failed", BAD_GATEWAY, "Mail failed";
    /// A redirect sign-in did not verify: its state is unknown, used, expired or was begun in another browser, the provider refused, or its ID token failed a check.
    SignInRefused = "sign-in-refused", UNAUTHORIZED, "Sign-in refused";
    /// Linking: the provider identity is linked to another account.
    IdentityLinkedElsewhere = "identity-linked-elsewhere", CONFLICT, "Identity linked to another account";
    /// A first sign-in would create an account whose username another account has: sign in to that one and link the identity.
    UsernameTaken = "username-taken", CONFLICT, "Username taken";

    // Nodes and servers.
    /// A plugin's before-hook refused; its reason is the `detail`.
    HookDenied = "hook-denied", FORBIDDEN, "Denied by a plugin";
    /// A plugin (the game type, or a UI plugin) trapped, timed out, ran out of memory or is quarantined.
    PluginUnavailable = "plugin-unavailable", SERVICE_UNAVAILABLE, "Plugin unavailable";
    /// The allocation is assigned to a server.
    AllocationAssigned = "allocation-assigned", CONFLICT, "Conflict";
    /// The node already has this allocation.
    AllocationExists = "allocation-exists", CONFLICT, "Conflict";
    /// The allocation is taken or not on the server's node.
    AllocationUnavailable = "allocation-unavailable", CONFLICT, "Conflict";
    /// The server holds as many allocations as its allocation limit allows (its primary and `limit` more).
    AllocationLimitReached = "allocation-limit-reached", CONFLICT, "Allocation limit reached";
    /// The server's node has no free allocation to give.
    NoFreeAllocation = "no-free-allocation", CONFLICT, "No free allocation";
    /// The allocation is the server's primary, which it runs on: it cannot be removed.
    AllocationPrimary = "allocation-primary", CONFLICT, "Primary allocation";
    /// The command is not in a state that allows this.
    CommandState = "command-state", CONFLICT, "Conflict";
    /// The node still has servers.
    NodeHasServers = "node-has-servers", CONFLICT, "Conflict";
    /// Another node has this name.
    NodeNameTaken = "node-name-taken", CONFLICT, "Conflict";
    /// A plugin's command would queue another plugin command.
    PluginCommandsNested = "plugin-commands-nested", CONFLICT, "Conflict";
    /// The server is being deleted.
    ServerDeleting = "server-deleting", CONFLICT, "Conflict";
    /// The server is suspended: it cannot be started, restarted, reinstalled, sent console commands or restored from a backup, nor suspended again; `detail` names the reason.
    ServerSuspended = "server-suspended", CONFLICT, "Server suspended";
    /// The server is not suspended, so there is no suspension to lift.
    ServerNotSuspended = "server-not-suspended", CONFLICT, "Server not suspended";
    /// The server is being moved to another node: until the transfer ends it cannot be started, restarted, reinstalled, sent console commands, deleted or moved again; `detail` names the transfer.
    ServerTransferring = "server-transferring", CONFLICT, "Server being transferred";
    /// The user is already a subuser of the server.
    SubuserExists = "subuser-exists", CONFLICT, "Conflict";
    /// The registration token is unknown.
    RegistrationTokenInvalid = "registration-token-invalid", UNAUTHORIZED, "Registration refused";
    /// The registration token was used before.
    RegistrationTokenUsed = "registration-token-used", CONFLICT, "Registration refused";
    /// The registration token expired.
    RegistrationTokenExpired = "registration-token-expired", UNAUTHORIZED, "Registration refused";

    // Server files (`/servers/{id}/files`).
    /// The server is on no node, or its node's Agent does not know it.
    ServerNotOnNode = "server-not-on-node", CONFLICT, "Server not on a node";
    /// The server's node is not connected (or its link dropped before it answered).
    NodeOffline = "node-offline", SERVICE_UNAVAILABLE, "Node offline";
    /// The server's node did not answer in time.
    NodeTimeout = "node-timeout", GATEWAY_TIMEOUT, "Node did not answer";
    /// Too many file requests are waiting for the node.
    NodeBusy = "node-busy", SERVICE_UNAVAILABLE, "Node busy";
    /// The node's Agent serves no file transfers (no `--public-url`).
    NodeNoTransfers = "node-no-transfers", SERVICE_UNAVAILABLE, "Node serves no file transfers";
    /// The node's file system failed; `detail` says how.
    NodeFileSystem = "node-file-system", BAD_GATEWAY, "Node file system error";
    /// A path is malformed (empty segment, NUL, too long).
    FileInvalidPath = "file-invalid-path", UNPROCESSABLE_ENTITY, "Invalid path";
    /// A path leads out of the server's directory (`..`, a symlink pointing outside).
    FileOutsideServer = "file-outside-server", UNPROCESSABLE_ENTITY, "Path outside the server";
    /// The game type's file denylist covers the path.
    FileDenied = "file-denied", FORBIDDEN, "File denied by the game type";
    /// Nothing is at the path.
    FileNotFound = "file-not-found", NOT_FOUND, "File not found";
    /// Something is at the target path already.
    FileExists = "file-exists", CONFLICT, "File exists";
    /// A directory was expected.
    FileNotADirectory = "not-a-directory", CONFLICT, "Not a directory";
    /// A file was expected.
    FileIsADirectory = "is-a-directory", CONFLICT, "Is a directory";
    /// A device, fifo or socket: never opened.
    FileSpecial = "special-file", CONFLICT, "Special file";
    /// The write would take the server over its disk limit.
    DiskLimit = "disk-limit", INSUFFICIENT_STORAGE, "Disk limit reached";
    /// The server's files are read-only (suspended).
    FilesReadOnly = "files-read-only", CONFLICT, "Files are read-only";
    /// The archive cannot be read (unknown format or corrupt).
    BadArchive = "bad-archive", UNPROCESSABLE_ENTITY, "Unreadable archive";
    /// The archive was refused: too large, too many entries, too compressed, or an entry that leaves the destination or is a device.
    ArchiveRefused = "archive-refused", UNPROCESSABLE_ENTITY, "Archive refused";
    /// The URL may not be pulled (scheme, a non-public address, pulls turned off).
    PullRefused = "pull-refused", UNPROCESSABLE_ENTITY, "Pull refused";
    /// The URL could not be fetched.
    PullFailed = "pull-failed", BAD_GATEWAY, "Pull failed";
    /// A mode with bits other than permission bits.
    InvalidMode = "invalid-mode", UNPROCESSABLE_ENTITY, "Invalid mode";

    // Backups (`/servers/{id}/backups`).
    /// No such backup on this server.
    BackupNotFound = "backup-not-found", NOT_FOUND, "Backup not found";
    /// The server's backup limit is 0: backups are turned off for it until an administrator sets a limit.
    BackupsDisabled = "backups-disabled", CONFLICT, "Backups turned off";
    /// The server has as many backups as its limit and every one is locked, so none can make room.
    BackupLimitReached = "backup-limit-reached", CONFLICT, "Backup limit reached";
    /// The backup is locked against deletion.
    BackupLocked = "backup-locked", CONFLICT, "Backup locked";
    /// The backup is pending or failed: it cannot be restored or downloaded, and a pending one cannot be deleted yet.
    BackupNotComplete = "backup-not-complete", CONFLICT, "Backup not complete";
    /// A restore of the server is running.
    BackupBusy = "backup-busy", CONFLICT, "Restore running";
    /// The server is running (or starting, stopping, installing): stop it before restoring or reinstalling.
    ServerRunning = "server-running", CONFLICT, "Server running";
    /// The backup storage (S3-compatible) refused or could not be reached.
    BackupStorageFailed = "backup-storage-failed", BAD_GATEWAY, "Backup storage failed";

    // Databases (`/servers/{id}/databases`, `/database-hosts`).
    /// No such database on this server.
    DatabaseNotFound = "database-not-found", NOT_FOUND, "Database not found";
    /// The server has a database of that name already (or its host has one of that name).
    DatabaseNameTaken = "database-name-taken", CONFLICT, "Database name taken";
    /// The server has as many databases as its limit allows (0 until an administrator sets one).
    DatabaseLimitReached = "database-limit-reached", CONFLICT, "Database limit reached";
    /// No database host serves the server's node (or every one that does is full): an administrator must add one.
    NoDatabaseHost = "no-database-host", CONFLICT, "No database host";
    /// The database host named does not serve the server's node.
    DatabaseHostNotAllowed = "database-host-not-allowed", CONFLICT, "Database host not allowed";
    /// The database host holds as many databases as its administrator allows.
    DatabaseHostFull = "database-host-full", CONFLICT, "Database host full";
    /// No such database host.
    DatabaseHostNotFound = "database-host-not-found", NOT_FOUND, "Database host not found";
    /// Another database host has this name.
    DatabaseHostNameTaken = "database-host-name-taken", CONFLICT, "Database host name taken";
    /// The database host still holds databases; `detail` says how many.
    DatabaseHostInUse = "database-host-in-use", CONFLICT, "Database host in use";
    /// The database host could not be reached: nothing listens at its address, or it did not answer in time.
    DatabaseHostUnreachable = "database-host-unreachable", BAD_GATEWAY, "Database host unreachable";
    /// The database host refused the administrative user's name or password.
    DatabaseHostLoginRefused = "database-host-login-refused", BAD_GATEWAY, "Database host refused the login";
    /// The database host refused a statement (the administrative user may lack a privilege); `detail` has its message.
    DatabaseHostFailed = "database-host-failed", BAD_GATEWAY, "Database host failed";

    // Plugins.
    /// The uploaded package is not a valid `.cap`.
    InvalidPackage = "invalid-package", UNPROCESSABLE_ENTITY, "Invalid package";
    /// The uploaded version is not newer than the installed one.
    VersionNotNewer = "version-not-newer", CONFLICT, "Version not newer";
    /// Activating needs configuration that is not set.
    PluginConfigMissing = "plugin-config-missing", CONFLICT, "Required configuration missing";
    /// The plugin's component does not load.
    PluginLoadFailed = "plugin-load-failed", UNPROCESSABLE_ENTITY, "Plugin failed to load";
    /// The stored package does not match its digest.
    PluginDamaged = "plugin-damaged", CONFLICT, "Stored plugin damaged";
    /// The plugin is not active.
    PluginNotActive = "plugin-not-active", CONFLICT, "Plugin not active";
    /// A paid plugin whose license check failed; `detail` names the check.
    PluginUnlicensed = "plugin-unlicensed", PAYMENT_REQUIRED, "Paid plugin without a valid license";

    // Game catalogues (eggs).
    /// No active plugin imports game types of that kind (install and activate `egg-bridge`).
    NoCatalogue = "no-catalogue", CONFLICT, "No plugin imports these";
    /// A game type with the document's id is imported already; `detail` names it (import with `replace=true`).
    GameTypeExists = "game-type-exists", CONFLICT, "Game type exists";
    /// Servers still run the game type; `detail` says how many.
    GameTypeInUse = "game-type-in-use", CONFLICT, "Game type in use";
    /// The game type's update source failed; `detail` says how.
    UpdateSourceFailed = "update-source-failed", BAD_GATEWAY, "Update source failed";

    // The Marketplace.
    /// A signature, log, timestamp or digest check failed; `detail` starts with the check's name.
    VerificationFailed = "verification-failed", UNPROCESSABLE_ENTITY, "Package verification failed";
    /// No versions satisfy the request; `detail` explains why.
    ResolutionFailed = "resolution-failed", CONFLICT, "No versions satisfy the request";
    /// A paid plugin this Panel has not bought; `detail` says how to buy it.
    LicenseRequired = "license-required", PAYMENT_REQUIRED, "License required";
    /// A paid plugin whose purchase was refunded or lost in a dispute.
    LicenseRevoked = "license-revoked", PAYMENT_REQUIRED, "License revoked";
    /// A license token failed an offline check; `detail` names it.
    LicenseInvalid = "license-invalid", PAYMENT_REQUIRED, "License refused";
    /// The Marketplace presents a key other than the trusted one.
    MarketplaceKeyMismatch = "marketplace-key-mismatch", BAD_GATEWAY, "Marketplace key mismatch";
    /// The Marketplace cannot be reached or answered wrongly.
    MarketplaceUnavailable = "marketplace-unavailable", BAD_GATEWAY, "Marketplace unavailable";
    /// Relayed from the Marketplace (checkout): the package is free.
    NotForSale = "not-for-sale", CONFLICT, "Not for sale";
    /// Relayed from the Marketplace (checkout): the publisher cannot be paid.
    PayoutsNotConfigured = "payouts-not-configured", CONFLICT, "Publisher cannot be paid";
    /// Relayed from the Marketplace (checkout): this Panel already owns the plugin.
    AlreadyEntitled = "already-entitled", CONFLICT, "Already purchased";
    /// Relayed from the Marketplace (checkout): its purchase was refunded or lost in a dispute.
    EntitlementRevoked = "entitlement-revoked", FORBIDDEN, "Entitlement revoked";
    /// Relayed from the Marketplace (checkout): this Marketplace sells nothing.
    BillingDisabled = "billing-disabled", CONFLICT, "Billing disabled";
    /// Relayed from the Marketplace (checkout): this Panel's Marketplace token expired.
    TokenExpired = "token-expired", UNAUTHORIZED, "Token expired";

    // Plugin-contributed UI.
    /// The plugin returned an error; its message is the `detail`.
    PluginRefused = "plugin-refused", UNPROCESSABLE_ENTITY, "Refused by the plugin";
    /// The plugin returned a UI tree the Panel refuses.
    UiTreeInvalid = "ui-tree-invalid", BAD_GATEWAY, "Invalid UI from plugin";
}

/// Code strings deliberately answered with two statuses, and why:
/// `invalid-second-factor` is `401` while logging in (no session yet) and
/// `403` for a signed-in account changing its second factor (the session
/// stays valid, so clients must not log out).
pub const SHARED: &[(&str, &[Code])] = &[(
    "invalid-second-factor",
    &[Code::InvalidSecondFactor, Code::WrongSecondFactor],
)];

impl Code {
    /// The code with the wire form `text` (the first row, for a
    /// [`SHARED`] one).
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == text)
    }

    /// The table of the module docs, as Markdown.
    pub fn markdown_table() -> String {
        let mut table =
            String::from("| Code | Status | Title | When |\n| --- | --- | --- | --- |\n");
        for code in Code::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                code.as_str(),
                code.status().as_u16(),
                code.title(),
                code.when()
            ));
        }
        table
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_documented_table_is_generated_from_the_enum() {
        let generated = Code::markdown_table();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/error_code/codes.md");
        if std::env::var_os("CAP_BLESS").is_some() {
            std::fs::write(path, &generated).expect("write codes.md");
        }
        assert_eq!(
            include_str!("error_code/codes.md"),
            generated,
            "src/error_code/codes.md is stale: run this test with CAP_BLESS=1 to regenerate it"
        );
    }

    #[test]
    fn no_two_codes_share_a_string_unless_listed_as_shared() {
        let mut by_string: BTreeMap<&str, Vec<Code>> = BTreeMap::new();
        for code in Code::ALL {
            by_string.entry(code.as_str()).or_default().push(*code);
        }
        for (text, codes) in by_string.into_iter().filter(|(_, c)| c.len() > 1) {
            let listed = SHARED.iter().find(|(t, _)| *t == text);
            assert_eq!(
                listed.map(|(_, c)| c.to_vec()),
                Some(codes.clone()),
                "{text} is the code of {codes:?}; list it in SHARED with its reason or rename one"
            );
            let statuses: std::collections::BTreeSet<_> =
                codes.iter().map(|c| c.status()).collect();
            assert_eq!(
                statuses.len(),
                codes.len(),
                "{text}: a shared code needs distinct statuses"
            );
        }
        for (text, codes) in SHARED {
            assert!(
                codes.iter().all(|c| c.as_str() == *text),
                "SHARED lists {codes:?} under {text}"
            );
        }
    }

    #[test]
    fn codes_are_kebab_case_and_statuses_are_errors_with_a_title() {
        for code in Code::ALL {
            let text = code.as_str();
            assert!(
                !text.is_empty()
                    && text
                        .split('-')
                        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{text:?}"
            );
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{text}"
            );
            assert!(
                !code.title().is_empty() && !code.when().is_empty(),
                "{text}"
            );
            assert_eq!(Code::parse(text).map(Code::as_str), Some(text));
        }
    }
}
