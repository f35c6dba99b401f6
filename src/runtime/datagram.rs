//! From bytes on the wire to a message and back: sealing with `--key-file`, encoding, and the
//! counters of datagrams dropped before they reach a core (G6).
//!
//! No sockets and no protocol decisions here.

use crate::net::seal::{Key, SealError};
use crate::protocol::limits::MAX_DATAGRAM_BYTES;
use crate::protocol::wire::{self, DecodeError, Msg};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of datagrams dropped before they reached the core (G6).
#[derive(Debug, Default)]
pub struct DropStats {
    /// Not JSON of ours: bad bytes, wrong types, unknown kinds (and, without a key, sealed
    /// datagrams).
    pub malformed: AtomicU64,
    /// Larger than the datagram limit.
    pub oversize: AtomicU64,
    /// Another protocol version.
    pub wrong_version: AtomicU64,
    /// Well-formed, with values no honest node sends (absurd counters, overlong names).
    pub out_of_range: AtomicU64,
    /// With a key: did not open (plaintext, another key, altered on the way).
    pub unauthenticated: AtomicU64,
}

/// Why a received datagram was dropped.
#[derive(Debug)]
pub enum Dropped {
    /// It did not decode.
    Decode(DecodeError),
    /// It did not open with our key.
    Seal(SealError),
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::Decode(e) => write!(f, "{e}"),
            Dropped::Seal(e) => write!(f, "{e}"),
        }
    }
}

/// Opens (with a key) and decodes one received datagram. An oversize datagram is dropped
/// before any work is spent on it.
pub fn unwrap_datagram(key: Option<&Key>, bytes: &[u8]) -> Result<Msg, Dropped> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(Dropped::Decode(DecodeError::Oversize(bytes.len())));
    }
    match key {
        None => wire::decode(bytes).map_err(Dropped::Decode),
        Some(key) => {
            let plain = key.open(bytes).map_err(Dropped::Seal)?;
            wire::decode(&plain).map_err(Dropped::Decode)
        }
    }
}

/// Encodes one message and seals it with a key: the bytes to send.
pub fn wrap_datagram(key: Option<&Key>, msg: &Msg) -> Result<Vec<u8>, wire::EncodeError> {
    let bytes = wire::encode(msg)?;
    Ok(seal_bytes(key, bytes))
}

pub(super) fn seal_bytes(key: Option<&Key>, bytes: Vec<u8>) -> Vec<u8> {
    match key {
        Some(key) => key.seal(&bytes),
        None => bytes,
    }
}

impl DropStats {
    /// Counts one dropped datagram under its reason.
    pub fn count(&self, why: &Dropped) {
        let counter = match why {
            Dropped::Decode(DecodeError::Malformed(_)) => &self.malformed,
            Dropped::Decode(DecodeError::Oversize(_)) => &self.oversize,
            Dropped::Decode(DecodeError::WrongVersion(_)) => &self.wrong_version,
            Dropped::Decode(DecodeError::OutOfRange(_)) => &self.out_of_range,
            Dropped::Seal(_) => &self.unauthenticated,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `malformed N, too large N, wrong version N, out of range N, unauthenticated N`.
    pub fn summary(&self) -> String {
        format!(
            "malformed {}, too large {}, wrong version {}, out of range {}, unauthenticated {}",
            get(&self.malformed),
            get(&self.oversize),
            get(&self.wrong_version),
            get(&self.out_of_range),
            get(&self.unauthenticated)
        )
    }

    /// Every dropped datagram, whatever the reason.
    pub fn total(&self) -> u64 {
        [
            &self.malformed,
            &self.oversize,
            &self.wrong_version,
            &self.out_of_range,
            &self.unauthenticated,
        ]
        .into_iter()
        .map(get)
        .sum()
    }
}

pub(super) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{Epoch, NodeId};

    fn key(secret: &[u8]) -> (tempfile::TempDir, Key) {
        let (dir, path) = crate::net::seal::tests::key_file(secret);
        (dir, Key::from_file(&path).unwrap())
    }

    fn wake() -> Msg {
        Msg::Wake {
            epoch: Epoch(4),
            from: NodeId::random(),
            hop: 0,
        }
    }

    #[test]
    fn g6_a_sealed_datagram_opens_only_with_the_same_key_and_is_counted_otherwise() {
        let (_d1, ours) = key(b"our shared secret of 32 bytes...");
        let (_d2, theirs) = key(b"their shared secret of 32 bytes.");
        let msg = wake();
        let sealed = wrap_datagram(Some(&ours), &msg).unwrap();
        assert_eq!(unwrap_datagram(Some(&ours), &sealed).unwrap(), msg);
        let drops = DropStats::default();
        for why in [
            unwrap_datagram(Some(&theirs), &sealed).unwrap_err(),
            unwrap_datagram(Some(&ours), &wire::encode(&msg).unwrap()).unwrap_err(),
        ] {
            assert!(matches!(why, Dropped::Seal(_)), "{why}");
            drops.count(&why);
        }
        // Without a key, a sealed datagram is just malformed.
        let why = unwrap_datagram(None, &sealed).unwrap_err();
        assert!(matches!(why, Dropped::Decode(DecodeError::Malformed(_))));
        drops.count(&why);
        let why = unwrap_datagram(Some(&ours), &vec![1u8; 60_000]).unwrap_err();
        assert!(matches!(
            why,
            Dropped::Decode(DecodeError::Oversize(60_000))
        ));
        drops.count(&why);
        assert_eq!(
            drops.summary(),
            "malformed 1, too large 1, wrong version 0, out of range 0, unauthenticated 2"
        );
        assert_eq!(drops.total(), 4);
    }

    #[test]
    fn without_a_key_datagrams_are_plain_json() {
        let msg = wake();
        let bytes = wrap_datagram(None, &msg).unwrap();
        assert_eq!(bytes, wire::encode(&msg).unwrap());
        assert_eq!(unwrap_datagram(None, &bytes).unwrap(), msg);
    }
}
