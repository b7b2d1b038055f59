//! The author side of the Marketplace: `cap plugin keygen`, `register`,
//! `sign` and `publish`.
//!
//! * A **key file** is an Ed25519 secret key in the
//!   [`cap_marketplace::keys`] text format, created with mode 0600 and never
//!   overwritten.
//! * A **signature file** (`<package>.sig`) records what was signed — id,
//!   version, the package file's sha256 — with the key id and the signature
//!   over the Marketplace's domain-separated author message
//!   ([`cap_marketplace::signing::author_message`]). `publish --signature`
//!   uploads it as it is, so a package can be signed on one machine and
//!   published from another.
//! * `publish` packs (unless given a `.cap`), signs and uploads, and turns
//!   the Marketplace's problem codes into messages saying what to do
//!   ([`cap_marketplace::client::ClientError`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cap_marketplace::client::MarketplaceClient;
use cap_marketplace::keys::{KeyId, SecretKey, Signature};
use cap_marketplace::signing::sign_package;
use cap_runtime::package::{MAX_PACKAGE_BYTES, Package};

/// The Marketplace `cap marketplace` serves by default.
pub(crate) const DEFAULT_MARKETPLACE: &str = "http://127.0.0.1:8090";

/// Creates a new key file.
pub(crate) fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = SecretKey::generate().context("generating a key")?;
    key.write_new(out).with_context(|| {
        format!(
            "writing {} (an existing key is never overwritten)",
            out.display()
        )
    })?;
    println!("created key {} in {}", key.id(), out.display());
    println!("public key: {}", key.public().to_hex());
    Ok(())
}

fn read_key(path: &Path) -> anyhow::Result<SecretKey> {
    SecretKey::read(path).with_context(|| format!("reading the key file {}", path.display()))
}

fn read_package(path: &Path) -> anyhow::Result<(Package, Vec<u8>)> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let package = Package::read(&bytes, MAX_PACKAGE_BYTES)
        .with_context(|| format!("{} is not a valid package", path.display()))?;
    Ok((package, bytes))
}

/// A detached author signature of one package file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignatureFile {
    id: String,
    version: semver::Version,
    sha256: String,
    key_id: KeyId,
    signature: Signature,
}

impl SignatureFile {
    fn render(&self) -> String {
        format!(
            "ctrl-alt-play-signature: v1\nid: {}\nversion: {}\nsha256: {}\nkey-id: {}\nsignature: {}\n",
            self.id,
            self.version,
            self.sha256,
            self.key_id,
            self.signature.to_hex()
        )
    }

    fn parse(text: &str) -> anyhow::Result<SignatureFile> {
        let mut fields = std::collections::BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once(':')
                .with_context(|| format!("signature file line {line:?} is not `name: value`"))?;
            fields.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        let field = |name: &str| {
            fields
                .get(name)
                .cloned()
                .with_context(|| format!("signature file has no {name}"))
        };
        if field("ctrl-alt-play-signature")? != "v1" {
            bail!("not a version 1 signature file");
        }
        Ok(SignatureFile {
            id: field("id")?,
            version: field("version")?
                .parse()
                .context("signature file version")?,
            sha256: field("sha256")?,
            key_id: KeyId::parse(&field("key-id")?).context("signature file key-id")?,
            signature: Signature::from_hex(&field("signature")?)
                .context("signature file signature")?,
        })
    }
}

fn sign_bytes(package: &Package, key: &SecretKey) -> SignatureFile {
    let plugin = &package.manifest.plugin;
    SignatureFile {
        id: plugin.id.clone(),
        version: plugin.version.clone(),
        sha256: package.sha256.clone(),
        key_id: key.id().clone(),
        signature: sign_package(key, &plugin.id, &plugin.version, &package.sha256),
    }
}

/// Signs a package file, writing `<file>.sig` (or `out`).
pub(crate) fn sign(file: &Path, key: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let key = read_key(key)?;
    let (package, _) = read_package(file)?;
    let signature = sign_bytes(&package, &key);
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}.sig", file.display())));
    fs::write(&out, signature.render()).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "signed {} {} (sha256 {}) with key {} -> {}",
        signature.id,
        signature.version,
        signature.sha256,
        signature.key_id,
        out.display()
    );
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Creates a publisher account (unless `token` is given) and registers the
/// key with it, signed by `signed_by` (one of the publisher's current keys,
/// needed for every key but the first); prints the token.
pub(crate) fn register(
    marketplace: &str,
    name: &str,
    key: &Path,
    token: Option<&str>,
    signed_by: Option<&Path>,
) -> anyhow::Result<()> {
    let key = read_key(key)?;
    let signed_by = signed_by.map(read_key).transpose()?;
    let client = MarketplaceClient::new(marketplace)?;
    runtime()?.block_on(async {
        let (token, expires_at, created) = match token {
            Some(t) => (t.to_owned(), 0, false),
            None => {
                let created = client.create_publisher(name).await?;
                (created.token, created.expires_at, true)
            }
        };
        client
            .add_key(&token, name, &key, signed_by.as_ref())
            .await
            .with_context(|| format!("registering key {}", key.id()))?;
        if created {
            println!("created publisher {name} on {}", client.url());
            println!("token: {token}");
            println!(
                "  (expires at {expires_at} unix time; rotate it before with `cap plugin rotate-token`)"
            );
            println!("  (shown once; pass it as --token or CAP_MARKETPLACE_TOKEN)");
        }
        println!("registered key {} for {name}", key.id());
        Ok(())
    })
}

/// What `revoke-key` revokes.
pub(crate) struct RevokeArgs<'a> {
    pub(crate) marketplace: &'a str,
    pub(crate) token: &'a str,
    pub(crate) name: &'a str,
    pub(crate) key_id: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) effective_at: Option<i64>,
    pub(crate) signed_by: &'a Path,
}

/// Revokes a publisher key with a statement signed by `signed_by`.
pub(crate) fn revoke_key(args: RevokeArgs<'_>) -> anyhow::Result<()> {
    let signer = read_key(args.signed_by)?;
    let key_id = KeyId::parse(args.key_id).context("the key id")?;
    let effective_at = args.effective_at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let client = MarketplaceClient::new(args.marketplace)?;
    let view = runtime()?.block_on(client.revoke_key(
        args.token,
        args.name,
        &key_id,
        effective_at,
        args.reason,
        &signer,
    ))?;
    println!(
        "revoked key {} of {} from {}",
        view.key_id,
        args.name,
        view.revoked_at.unwrap_or(effective_at)
    );
    Ok(())
}

/// Rotates a publisher token; prints the new one.
pub(crate) fn rotate_token(marketplace: &str, token: &str) -> anyhow::Result<()> {
    let client = MarketplaceClient::new(marketplace)?;
    let rotated = runtime()?.block_on(client.rotate_token(token))?;
    println!("new token for {}: {}", rotated.name, rotated.token);
    println!(
        "  (expires at {} unix time; the old token no longer works)",
        rotated.expires_at
    );
    Ok(())
}

/// What `publish` uploads.
pub(crate) struct PublishArgs<'a> {
    pub(crate) marketplace: &'a str,
    pub(crate) token: &'a str,
    pub(crate) package: PathBuf,
    pub(crate) key: Option<&'a Path>,
    pub(crate) signature: Option<&'a Path>,
    pub(crate) games: Vec<String>,
}

/// Signs (or reads the signature of) and uploads a package file.
pub(crate) fn publish(args: PublishArgs<'_>) -> anyhow::Result<()> {
    let (package, bytes) = read_package(&args.package)?;
    let signature = match (args.signature, args.key) {
        (Some(path), _) => {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let file =
                SignatureFile::parse(&text).with_context(|| format!("{}", path.display()))?;
            if file.sha256 != package.sha256 {
                eprintln!(
                    "warning: {} was made for sha256 {}, not this file's {}; the Marketplace will refuse it",
                    path.display(),
                    file.sha256,
                    package.sha256
                );
            }
            file
        }
        (None, Some(key)) => sign_bytes(&package, &read_key(key)?),
        (None, None) => bail!("give --key to sign, or --signature with a signature file"),
    };
    let client = MarketplaceClient::new(args.marketplace)?;
    let (created, release) = runtime()?.block_on(client.publish(
        args.token,
        &bytes,
        (signature.id.as_str(), &signature.version),
        &signature.key_id,
        &signature.signature,
        &args.games,
    ))?;
    let plugin = &package.manifest.plugin;
    if created {
        println!(
            "published {} {} to {} (sha256 {})",
            plugin.id,
            plugin.version,
            client.url(),
            release.sha256
        );
    } else {
        println!(
            "{} {} was already published with these bytes; nothing changed",
            plugin.id, plugin.version
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_file_round_trips_and_a_damaged_one_is_refused() {
        let key = SecretKey::from_seed(&[7; 32]);
        let version = semver::Version::new(1, 2, 3);
        let file = SignatureFile {
            id: "quota-guard".into(),
            version: version.clone(),
            sha256: "ab".repeat(32),
            key_id: key.id().clone(),
            signature: sign_package(&key, "quota-guard", &version, &"ab".repeat(32)),
        };
        assert_eq!(SignatureFile::parse(&file.render()).expect("parses"), file);
        let damaged = file.render().replace("signature: ", "signature: zz");
        assert!(SignatureFile::parse(&damaged).is_err());
        assert!(SignatureFile::parse("ctrl-alt-play-signature: v2\n").is_err());
    }
}
