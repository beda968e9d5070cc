//! Encryption of secrets at rest.
//!
//! A stack's secrets are encrypted with XChaCha20-Poly1305 under a key derived from a
//! passphrase with Argon2id and a per-stack random salt. The passphrase comes from
//! `CAIRN_PASSPHRASE`, or from the file named by `--passphrase-file` / `CAIRN_PASSPHRASE_FILE`.
//! The stack's state keeps the salt and a known value encrypted under the key, so a wrong
//! passphrase is detected before anything is written. In state a secret is
//! `{"$ciphertext": base64(nonce || ciphertext)}`; in memory it is `{"$secret": value}`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use crate::resource::Secret;
use crate::state::{ResourceState, SecretsMeta, StackState};
use crate::value::{self, CIPHERTEXT, SECRET};

const CHECK_PLAINTEXT: &[u8] = b"cairn secrets check v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("this stack holds secrets and no passphrase was given: set CAIRN_PASSPHRASE, or CAIRN_PASSPHRASE_FILE / --passphrase-file to a file holding it")]
    Missing,
    #[error("the passphrase does not match the one this stack's secrets were encrypted with")]
    Wrong,
    #[error("cannot read the passphrase file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("the passphrase file {0} is empty")]
    EmptyFile(PathBuf),
    #[error("a secret in state ({0}) cannot be decrypted: the state is damaged or was encrypted under another key")]
    Damaged(String),
    #[error(
        "this ciphertext cannot be opened with the passphrase given: the passphrase is wrong, or the value was damaged"
    )]
    WrongForConfig,
    #[error("a `ciphertext` must be what `cairn config set --secret` wrote (`cairn1:<salt>:<data>`)")]
    NotCiphertext,
}

/// Where the passphrase comes from: the file if one is given, else `CAIRN_PASSPHRASE`.
pub fn passphrase(file: Option<&Path>) -> Result<Option<Secret<String>>, SecretsError> {
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).map_err(|source| SecretsError::File { path: path.to_path_buf(), source })?;
        let text = text.trim_end_matches(['\n', '\r']).to_string();
        if text.is_empty() {
            return Err(SecretsError::EmptyFile(path.to_path_buf()));
        }
        return Ok(Some(Secret::new(text)));
    }
    Ok(std::env::var("CAIRN_PASSPHRASE").ok().filter(|p| !p.is_empty()).map(Secret::new))
}

/// The key of one stack, ready to encrypt and decrypt.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([secret])")
    }
}

fn derive(passphrase: &Secret<String>, salt: &[u8]) -> XChaCha20Poly1305 {
    let mut key = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase.expose().as_bytes(), salt, &mut key)
        .expect("argon2 accepts a 16-byte salt and a 32-byte key");
    XChaCha20Poly1305::new(&key.into())
}

impl SecretBox {
    /// A new key for a stack that had none: the box and the metadata to save with the state.
    pub fn create(passphrase: &Secret<String>) -> (SecretBox, SecretsMeta) {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt).expect("the operating system's random source failed");
        let b = SecretBox { cipher: derive(passphrase, &salt) };
        let check = b.seal(CHECK_PLAINTEXT);
        (b, SecretsMeta { salt: B64.encode(salt), check })
    }

    /// Opens a stack's key, checking the passphrase against the stored check value.
    pub fn open(meta: &SecretsMeta, passphrase: &Secret<String>) -> Result<SecretBox, SecretsError> {
        let salt = B64.decode(&meta.salt).map_err(|_| SecretsError::Damaged("secrets.salt".into()))?;
        let b = SecretBox { cipher: derive(passphrase, &salt) };
        match b.unseal(&meta.check) {
            Some(p) if p == CHECK_PLAINTEXT => Ok(b),
            _ => Err(SecretsError::Wrong),
        }
    }

    fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).expect("the operating system's random source failed");
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("encryption of a bounded buffer succeeds");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    fn unseal(&self, sealed: &str) -> Option<Vec<u8>> {
        let bytes = B64.decode(sealed).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ct) = bytes.split_at(24);
        self.cipher.decrypt(XNonce::from_slice(nonce), ct).ok()
    }

    /// The key of config ciphertexts made with `salt` (base64), from the passphrase.
    pub fn for_config(passphrase: &Secret<String>, salt: &str) -> Result<SecretBox, SecretsError> {
        let salt = B64.decode(salt).map_err(|_| SecretsError::Damaged("a config ciphertext's salt".into()))?;
        Ok(SecretBox { cipher: derive(passphrase, &salt) })
    }

    /// A config ciphertext of `plain`, with a new salt, or with `salt` (base64) when the
    /// file's other secrets use one, so that a load derives one key: `cairn1:<salt>:<sealed>`.
    pub fn seal_config(passphrase: &Secret<String>, salt: Option<&str>, plain: &str) -> Result<String, SecretsError> {
        let salt = match salt {
            Some(s) => s.to_string(),
            None => {
                let mut salt = [0u8; 16];
                getrandom::getrandom(&mut salt).expect("the operating system's random source failed");
                B64.encode(salt)
            }
        };
        let b = SecretBox::for_config(passphrase, &salt)?;
        Ok(format!("{CONFIG_CIPHERTEXT}:{salt}:{}", b.seal(plain.as_bytes())))
    }

    /// The text a config ciphertext holds.
    pub fn open_config(&self, text: &str) -> Result<Secret<String>, SecretsError> {
        let (_, sealed) = parse_config_ciphertext(text)?;
        let plain = self.unseal(sealed).ok_or(SecretsError::WrongForConfig)?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| SecretsError::Damaged("a config ciphertext".into()))
    }

    /// `{"$secret": v}` → `{"$ciphertext": ...}`, everywhere inside `v`.
    pub fn encrypt(&self, v: &Value) -> Value {
        if let Some(inner) = value::marker(v, SECRET) {
            let plain = serde_json::to_vec(&value::reveal(inner)).expect("a JSON value serializes");
            return value::single(CIPHERTEXT, Value::String(self.seal(&plain)));
        }
        map_children(v, |c| self.encrypt(c))
    }

    /// `{"$ciphertext": ...}` → `{"$secret": v}`, everywhere inside `v`.
    pub fn decrypt(&self, v: &Value, at: &str) -> Result<Value, SecretsError> {
        if let Some(sealed) = value::marker(v, CIPHERTEXT) {
            let plain =
                sealed.as_str().and_then(|s| self.unseal(s)).ok_or_else(|| SecretsError::Damaged(at.to_string()))?;
            let inner: Value = serde_json::from_slice(&plain).map_err(|_| SecretsError::Damaged(at.to_string()))?;
            return Ok(value::secret(inner));
        }
        try_map_children(v, |c| self.decrypt(c, at))
    }

    pub fn encrypt_resource(&self, r: &ResourceState) -> ResourceState {
        ResourceState { inputs: self.encrypt(&r.inputs), outputs: self.encrypt(&r.outputs), ..r.clone() }
    }

    /// Decrypts every secret of a state read from a backend.
    pub fn decrypt_state(&self, mut state: StackState) -> Result<StackState, SecretsError> {
        for r in state.resources.values_mut().chain(state.retired.values_mut()) {
            let at = r.urn.to_string();
            r.inputs = self.decrypt(&r.inputs, &at)?;
            r.outputs = self.decrypt(&r.outputs, &at)?;
        }
        for (name, v) in state.outputs.iter_mut() {
            *v = self.decrypt(v, &format!("stack output {name}"))?;
        }
        for p in state.pending.values_mut() {
            p.identity = self.decrypt(&p.identity, &format!("the pending operation of {}", p.urn))?;
        }
        Ok(state)
    }
}

/// What a config ciphertext starts with: the format's version.
pub const CONFIG_CIPHERTEXT: &str = "cairn1";

/// The (salt, sealed) parts of a config ciphertext.
pub fn parse_config_ciphertext(text: &str) -> Result<(&str, &str), SecretsError> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(CONFIG_CIPHERTEXT), Some(salt), Some(sealed)) if !salt.is_empty() && !sealed.is_empty() => {
            Ok((salt, sealed))
        }
        _ => Err(SecretsError::NotCiphertext),
    }
}

/// Whether a state read from a backend holds any encrypted value.
pub fn state_has_ciphertext(state: &StackState) -> bool {
    state
        .resources
        .values()
        .chain(state.retired.values())
        .any(|r| value::has_secrets(&r.inputs) || value::has_secrets(&r.outputs))
        || state.outputs.values().any(value::has_secrets)
        || state.pending.values().any(|p| value::has_secrets(&p.identity))
}

fn map_children(v: &Value, f: impl Fn(&Value) -> Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(f).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, c)| (k.clone(), f(c))).collect()),
        other => other.clone(),
    }
}

fn try_map_children<E>(v: &Value, f: impl Fn(&Value) -> Result<Value, E>) -> Result<Value, E> {
    Ok(match v {
        Value::Array(items) => Value::Array(items.iter().map(f).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(map.iter().map(|(k, c)| Ok((k.clone(), f(c)?))).collect::<Result<_, E>>()?),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_ciphertexts_round_trip_and_share_a_salt() {
        let pass = Secret::new("correct horse".to_string());
        let first = SecretBox::seal_config(&pass, None, "hunter2").unwrap();
        assert!(first.starts_with("cairn1:") && !first.contains("hunter2"));
        let (salt, _) = parse_config_ciphertext(&first).unwrap();
        let second = SecretBox::seal_config(&pass, Some(salt), "swordfish").unwrap();
        assert_eq!(parse_config_ciphertext(&second).unwrap().0, salt);
        let b = SecretBox::for_config(&pass, salt).unwrap();
        assert_eq!(b.open_config(&first).unwrap().expose(), "hunter2");
        assert_eq!(b.open_config(&second).unwrap().expose(), "swordfish");
        let wrong = SecretBox::for_config(&Secret::new("nope".into()), salt).unwrap();
        assert!(matches!(wrong.open_config(&first), Err(SecretsError::WrongForConfig)));
        assert!(matches!(parse_config_ciphertext("hunter2"), Err(SecretsError::NotCiphertext)));
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let pass = Secret::new("correct horse".to_string());
        let (b, meta) = SecretBox::create(&pass);
        let v = json!({"user": "u", "password": value::secret(json!("hunter2"))});
        let sealed = b.encrypt(&v);
        assert!(!sealed.to_string().contains("hunter2"));
        assert_eq!(sealed["user"], json!("u"));
        let reopened = SecretBox::open(&meta, &pass).unwrap();
        assert_eq!(reopened.decrypt(&sealed, "x").unwrap(), v);
        let wrong = SecretBox::open(&meta, &Secret::new("nope".to_string()));
        assert!(matches!(wrong, Err(SecretsError::Wrong)));
    }
}
