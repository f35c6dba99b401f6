//! Sealing datagrams with a shared key (`--key-file`): confidentiality and authenticity for
//! every datagram against anyone who does not have the key file.
//!
//! The key file holds a shared secret of at least [`MIN_SECRET_BYTES`] bytes, used as it is (a
//! trailing newline is part of it). HKDF-SHA256 with fixed salt and info strings that name the
//! protocol turns it into a 32-byte ChaCha20-Poly1305 key. Every datagram gets a fresh random
//! 96-bit nonce, and goes on the wire as
//!
//! ```text
//! [SEAL_FORMAT: 1 byte][nonce: 12 bytes][ciphertext of the JSON datagram + Poly1305 tag: 16 bytes]
//! ```
//!
//! so a sealed datagram is [`OVERHEAD`] bytes longer than its plaintext. The format byte is not
//! `{` or JSON whitespace, so a node without a key sees a sealed datagram as malformed.
//!
//! Random nonces: after 2^32 datagrams under one key the chance of a repeated nonce reaches
//! about 2^-33; rotate the key file long before that (restart every node with a new file).
//!
//! What this module must not do: no sockets, no protocol logic, no decoding of the plaintext.
//! Replays are not detected here: the protocol is idempotent against duplicates
//! (docs/PROTOCOL.md, "Why a replay changes nothing").

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// First byte of every sealed datagram: the sealing format, version 1.
pub const SEAL_FORMAT: u8 = 0x01;
/// Bytes of the random nonce carried in each sealed datagram.
pub const NONCE_BYTES: usize = 12;
/// Bytes of the Poly1305 authentication tag.
pub const TAG_BYTES: usize = 16;
/// How much longer a sealed datagram is than its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_BYTES + TAG_BYTES;
// The protocol sizes its messages to leave exactly this much room.
const _: () = assert!(OVERHEAD == crate::protocol::limits::SEAL_OVERHEAD_BYTES);
/// Shortest accepted secret: below this a key file is more likely a mistake than a secret.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest accepted key file; a larger file is probably not the one meant.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// HKDF salt: fixed, and names the protocol, so the same file used by another tool gives
/// another key.
const KDF_SALT: &[u8] = b"mcast-chat key-file salt v1";
/// HKDF info: what the derived key is for.
const KDF_INFO: &[u8] = b"mcast-chat v1 datagram key";

/// The datagram key derived from a key file. Debug output never shows the key.
#[derive(Clone)]
pub struct Key {
    cipher: ChaCha20Poly1305,
    /// The file it came from, for messages.
    path: PathBuf,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A key file that cannot be used. Every variant names the file and says what to do.
#[derive(Debug)]
pub enum KeyError {
    /// The file cannot be read.
    Io { path: PathBuf, source: io::Error },
    /// Fewer than [`MIN_SECRET_BYTES`] bytes.
    TooShort { path: PathBuf, bytes: usize },
    /// More than [`MAX_KEY_FILE_BYTES`] bytes.
    TooLong { path: PathBuf },
}

const HOW_TO_MAKE_ONE: &str =
    "create one with `head -c 32 /dev/urandom > FILE` and give every node of the group a copy";

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Io { path, source } => write!(
                f,
                "cannot read key file {}: {source}; {HOW_TO_MAKE_ONE}",
                path.display()
            ),
            KeyError::TooShort { path, bytes } => write!(
                f,
                "key file {} holds {bytes} bytes, fewer than the {MIN_SECRET_BYTES} a shared \
                 secret needs; {HOW_TO_MAKE_ONE}",
                path.display()
            ),
            KeyError::TooLong { path } => write!(
                f,
                "key file {} is larger than {MAX_KEY_FILE_BYTES} bytes: is it the right file? \
                 {HOW_TO_MAKE_ONE}",
                path.display()
            ),
        }
    }
}

/// The cause is part of the message; `source` would repeat it.
impl std::error::Error for KeyError {}

/// Why a datagram did not open. All of them mean: not sealed by a node with our key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// Too short to hold the format byte, a nonce and a tag.
    Short(usize),
    /// The first byte is not [`SEAL_FORMAT`] (a plaintext datagram, say).
    NotSealed(u8),
    /// The tag does not verify: another key, or the bytes were changed on the way.
    Forged,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Short(n) => write!(f, "{n} bytes is too short for a sealed datagram"),
            SealError::NotSealed(b) => write!(f, "not sealed (first byte {b:#04x})"),
            SealError::Forged => write!(f, "authentication failed (another key, or altered)"),
        }
    }
}

impl std::error::Error for SealError {}

impl Key {
    /// The key of `--key-file`, if one was given. Read it before anything else, so that a bad
    /// file fails fast.
    pub fn load(path: Option<&Path>) -> Result<Option<Key>, KeyError> {
        path.map(Key::from_file).transpose()
    }

    /// Reads the key file (at most [`MAX_KEY_FILE_BYTES`]) and derives the datagram key.
    pub fn from_file(path: &Path) -> Result<Key, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        warn_if_readable_by_others(path, &file);
        let mut secret = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut secret)
            .map_err(io_err)?;
        if secret.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(KeyError::TooLong {
                path: path.to_path_buf(),
            });
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort {
                path: path.to_path_buf(),
                bytes: secret.len(),
            });
        }
        Ok(Key::from_secret(&secret, path))
    }

    /// Derives the key from secret bytes (`path` only names it in messages).
    fn from_secret(secret: &[u8], path: &Path) -> Key {
        let mut okm = [0u8; 32];
        // HKDF-SHA256 can expand up to 255 * 32 bytes; 32 always succeeds.
        let expanded = Hkdf::<Sha256>::new(Some(KDF_SALT), secret).expand(KDF_INFO, &mut okm);
        debug_assert!(expanded.is_ok());
        Key {
            cipher: ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&okm)),
            path: path.to_path_buf(),
        }
    }

    /// The key file this key came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals a datagram under a fresh random nonce: `plaintext.len() + OVERHEAD` bytes.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        // Encryption fails only for plaintexts beyond 256 GiB; a datagram is far below.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.push(SEAL_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a sealed datagram; any failure means it was not sealed with this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < OVERHEAD {
            return Err(SealError::Short(sealed.len()));
        }
        if sealed[0] != SEAL_FORMAT {
            return Err(SealError::NotSealed(sealed[0]));
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_BYTES);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Forged)
    }
}

/// A secret that others on the host can read is no secret: say so (but go on).
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, file: &std::fs::File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = file.metadata() {
        if meta.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "key file {} can be read by other users; consider `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _file: &std::fs::File) {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A key file holding `secret`, in a temp dir that lives as long as the guard.
    pub(crate) fn key_file(secret: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(secret)
            .unwrap();
        (dir, path)
    }

    fn key(secret: &[u8]) -> Key {
        let (_dir, path) = key_file(secret);
        Key::from_file(&path).unwrap()
    }

    const DATAGRAM: &[u8] = br#"{"v":1,"type":"wake","epoch":3,"from":"x"}"#;

    #[test]
    fn g6_sealed_datagrams_open_with_the_same_key_file() {
        let k = key(b"sixteen bytes!!!");
        let sealed = k.seal(DATAGRAM);
        assert_eq!(sealed[0], SEAL_FORMAT);
        assert_eq!(k.open(&sealed).unwrap(), DATAGRAM);
        // Another Key derived from an identical file (another node) opens it too.
        assert_eq!(key(b"sixteen bytes!!!").open(&sealed).unwrap(), DATAGRAM);
    }

    #[test]
    fn g6_a_wrong_key_fails_to_open() {
        let sealed = key(b"the right secret, 32 bytes long.").seal(DATAGRAM);
        let wrong = key(b"the wrong secret, 32 bytes long.");
        assert_eq!(wrong.open(&sealed), Err(SealError::Forged));
    }

    #[test]
    fn g6_any_changed_byte_fails_to_open() {
        let k = key(b"0123456789abcdef");
        let sealed = k.seal(DATAGRAM);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(k.open(&bad).is_err(), "flipped byte {i} still opened");
        }
        assert!(k.open(&sealed[..sealed.len() - 1]).is_err(), "truncated");
    }

    #[test]
    fn plaintext_and_short_input_are_not_sealed() {
        let k = key(b"0123456789abcdef");
        assert_eq!(k.open(DATAGRAM), Err(SealError::NotSealed(b'{')));
        assert_eq!(k.open(&[SEAL_FORMAT; 5]), Err(SealError::Short(5)));
        assert_eq!(k.open(&[]), Err(SealError::Short(0)));
        assert_eq!(
            k.open(&[SEAL_FORMAT; OVERHEAD]),
            Err(SealError::Forged),
            "an empty ciphertext with a bad tag"
        );
    }

    #[test]
    fn a_short_or_missing_or_huge_key_file_is_rejected_naming_the_file() {
        let (_dir, path) = key_file(b"fifteen bytes!!");
        let err = Key::from_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::TooShort { bytes: 15, .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(err.to_string().contains("head -c 32 /dev/urandom"), "{err}");

        let missing = path.with_file_name("missing");
        let err = Key::from_file(&missing).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));

        let (_dir2, big) = key_file(&vec![7u8; MAX_KEY_FILE_BYTES as usize + 1]);
        assert!(matches!(
            Key::from_file(&big),
            Err(KeyError::TooLong { .. })
        ));
        let (_dir3, max) = key_file(&vec![7u8; MAX_KEY_FILE_BYTES as usize]);
        assert!(Key::from_file(&max).is_ok());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let k = key(b"0123456789abcdef");
        let a = k.seal(DATAGRAM);
        let b = k.seal(DATAGRAM);
        assert_ne!(a, b);
        assert_ne!(a[1..1 + NONCE_BYTES], b[1..1 + NONCE_BYTES]);
    }

    #[test]
    fn sealing_adds_exactly_the_overhead() {
        let k = key(b"0123456789abcdef");
        for len in [0, 1, 100, 1371] {
            assert_eq!(k.seal(&vec![b'x'; len]).len(), len + OVERHEAD);
        }
        assert_eq!(OVERHEAD, 29);
    }

    #[test]
    fn the_key_depends_on_every_byte_of_the_file() {
        // A trailing newline is part of the secret: `echo secret > f` differs from `printf`.
        let sealed = key(b"0123456789abcdef").seal(DATAGRAM);
        assert!(key(b"0123456789abcdef\n").open(&sealed).is_err());
    }

    #[test]
    fn debug_output_does_not_show_the_key() {
        let k = key(b"0123456789abcdef");
        let shown = format!("{k:?}");
        assert!(
            shown.contains("path") && !shown.contains("cipher"),
            "{shown}"
        );
    }
}
