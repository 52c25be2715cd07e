//! `calos identity new|show|login`: the original guide's Soulfra flow from a terminal.
//! `new` is `createIdentity` (an Ed25519 key pair in a 0600 file), `login` is
//! `createChallenge` + `createProof` against a running calos, printing the token.

use anyhow::{bail, Context};
use app::wire::{AuthResponse, ChallengeRequest, ChallengeResponse, ErrorResponse, VerifyRequest};
use clap::{Args, Subcommand};
use ed25519_dalek::{Signer, SigningKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(subcommand)]
    pub command: IdentityCommand,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create a key pair and save it (mode 0600).
    New {
        /// Where to save it [default: ~/.config/calos/identity.json].
        #[arg(long, env = "CALOS_IDENTITY")]
        out: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key (the identity).
    Show {
        #[arg(long, env = "CALOS_IDENTITY")]
        key: Option<PathBuf>,
        /// The key file's public part as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign in to calos with the key and print the token.
    Login {
        /// calos's address.
        #[arg(long, env = "CALOS_URL", default_value = "http://localhost:5001")]
        url: String,
        #[arg(long, env = "CALOS_IDENTITY")]
        key: Option<PathBuf>,
        /// Username for the account, if this sign-in creates it.
        #[arg(long)]
        username: Option<String>,
        /// An invite's secret, if this sign-in creates the account and
        /// sign-ups need one (`CALOS_REGISTRATION=invite`).
        #[arg(long)]
        invite: Option<String>,
        /// Print the whole answer (token and user) as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The key file. The secret is the 32-byte seed, hex.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    public_key: String,
    secret_key: String,
    created_at: String,
}

/// `calos identity show --json`: the key file's public part. Fields in the
/// order this has always printed them (sorted, as `json!` wrote them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShownIdentity<'a> {
    path: &'a Path,
    public_key: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn default_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set; pass --out")?)
            .join(".config"),
    };
    Ok(base.join("calos").join("identity.json"))
}

fn write_private(path: &Path, contents: &str, force: bool) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists; pass --force to replace it", path.display())
        }
        _ => anyhow::anyhow!("writing {}: {e}", path.display()),
    })?;
    // A replaced file keeps its old mode; make sure it is private too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn load(path: Option<PathBuf>) -> anyhow::Result<(SigningKey, PathBuf)> {
    let path = match path {
        Some(p) => p,
        None => default_path()?,
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (create one with `calos identity new`)",
            path.display()
        )
    })?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a calos identity file", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(file.secret_key.trim(), &mut seed)
        .with_context(|| format!("{}: secretKey must be 64 hex characters", path.display()))?;
    let key = SigningKey::from_bytes(&seed);
    if hex::encode(key.verifying_key().to_bytes()) != file.public_key.trim().to_lowercase() {
        bail!("{}: publicKey does not belong to secretKey", path.display());
    }
    Ok((key, path))
}

pub async fn run(args: IdentityArgs) -> anyhow::Result<()> {
    match args.command {
        IdentityCommand::New { out, force } => {
            let path = match out {
                Some(p) => p,
                None => default_path()?,
            };
            let key = SigningKey::from_bytes(&rand::random());
            let file = KeyFile {
                kind: "ed25519".into(),
                public_key: hex::encode(key.verifying_key().to_bytes()),
                secret_key: hex::encode(key.to_bytes()),
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            write_private(&path, &serde_json::to_string_pretty(&file)?, force)?;
            println!("{}", file.public_key);
            eprintln!(
                "identity saved to {} (keep it private: it is your sign-in)",
                path.display()
            );
        }
        IdentityCommand::Show { key, json } => {
            let (key, path) = load(key)?;
            let public = hex::encode(key.verifying_key().to_bytes());
            if json {
                let shown = ShownIdentity {
                    path: &path,
                    public_key: &public,
                    kind: "ed25519",
                };
                println!("{}", serde_json::to_string(&shown)?);
            } else {
                println!("{public}");
            }
        }
        IdentityCommand::Login {
            url,
            key,
            username,
            invite,
            json,
        } => {
            let (key, _) = load(key)?;
            let answer = login(&url, &key, username.as_deref(), invite.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&answer)?);
            } else {
                println!("{}", answer.token);
            }
        }
    }
    Ok(())
}

/// The challenge-response against `url`; returns calos's sign-in answer.
pub async fn login(
    url: &str,
    key: &SigningKey,
    username: Option<&str>,
    invite: Option<&str>,
) -> anyhow::Result<AuthResponse> {
    let base = url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let public_key = hex::encode(key.verifying_key().to_bytes());
    let challenge: ChallengeResponse = post(
        &http,
        &format!("{base}/api/auth/soulfra/challenge"),
        &ChallengeRequest {
            public_key: public_key.clone(),
        },
    )
    .await?;
    let signature = hex::encode(key.sign(challenge.challenge.as_bytes()).to_bytes());
    let proof = VerifyRequest {
        public_key,
        challenge: challenge.challenge,
        signature,
        username: username.map(str::to_string),
        invite: invite.map(str::to_string),
    };
    post(&http, &format!("{base}/api/auth/soulfra/verify"), &proof).await
}

/// Posts `body` and reads the answer as `T`, or fails with calos's error message.
async fn post<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &impl Serialize,
) -> anyhow::Result<T> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading {url}'s answer ({status})"))?;
    if !status.is_success() {
        let error: ErrorResponse = serde_json::from_slice(&bytes)
            .with_context(|| format!("{url} answered {status} without calos's error body"))?;
        bail!("{url} answered {status}: {}", error.error.message);
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{url} answered {status} with an unexpected body"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bytes `identity show --json` printed when it was built with `json!`.
    #[test]
    fn shown_identity_is_byte_for_byte_what_json_macro_built() {
        let (path, public) = (
            PathBuf::from("/home/me/.config/calos/identity.json"),
            "ab12",
        );
        let shown = ShownIdentity {
            path: &path,
            public_key: public,
            kind: "ed25519",
        };
        assert_eq!(
            serde_json::to_string(&shown).unwrap_or_default(),
            json!({ "type": "ed25519", "publicKey": public, "path": path }).to_string()
        );
    }
}
