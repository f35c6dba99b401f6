//! The vote file of one identity (`vote_server.json`, `vote_<uuid>.json`): the node's durable
//! vote on the chat's membership (see [`crate::protocol::vote`]). It is replaced atomically
//! (temp file, rename) before anything that depends on it is sent, so after `kill -9` at any
//! instant it holds the last vote the node acted on; with `--durability fsync` it is synced
//! too, so that a power loss cannot take a promise back either.
//!
//! No protocol logic here: the vote's meaning is the protocol's.

use crate::protocol::vote::Vote;
use crate::store::atomic::{parent_dir, sync_dir, temp_path, write_file};
use crate::store::error::StorageError;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// The format this build writes and the newest it reads.
pub const VOTE_VERSION: u32 = 1;

/// Largest vote file read: a vote names at most a few views of at most 128 members.
const MAX_VOTE_BYTES: u64 = 4 << 20;

#[derive(Serialize, Deserialize)]
struct VoteFile {
    version: u32,
    #[serde(flatten)]
    vote: Vote,
}

/// Writes `vote` to `path` atomically; with `sync`, durably (fsync the file and the dir).
pub fn save(path: &Path, vote: &Vote, sync: bool) -> Result<(), StorageError> {
    let file = VoteFile {
        version: VOTE_VERSION,
        vote: vote.clone(),
    };
    let mut bytes =
        serde_json::to_vec(&file).map_err(|e| StorageError::io(path, io::Error::other(e)))?;
    bytes.push(b'\n');
    let tmp = temp_path(path)?;
    if let Err(e) = write_file(&tmp, &bytes) {
        let _ = fs::remove_file(&tmp); // best effort: overwritten next time anyway
        return Err(e);
    }
    if sync {
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    if sync {
        sync_dir(parent_dir(path))?;
    }
    Ok(())
}

/// Reads the vote at `path`; `Ok(None)` when there is none (a node that never voted).
pub fn load(path: &Path) -> Result<Option<Vote>, StorageError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_VOTE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StorageError::io(path, e))?;
    let corrupt = |reason: String| StorageError::CorruptVote {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() as u64 > MAX_VOTE_BYTES {
        return Err(corrupt(format!("larger than {MAX_VOTE_BYTES} bytes")));
    }
    let file: VoteFile =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a vote: {e}")))?;
    if file.version != VOTE_VERSION {
        return Err(corrupt(format!(
            "format version {}, this build reads {VOTE_VERSION}",
            file.version
        )));
    }
    Ok(Some(file.vote))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{GroupId, ServerId};

    #[test]
    fn g5_a_vote_survives_a_round_trip_and_a_missing_file_is_no_vote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote_server.json");
        assert_eq!(load(&path).unwrap(), None);
        let vote = Vote::genesis(GroupId(7), ServerId(3));
        save(&path, &vote, true).unwrap();
        assert_eq!(load(&path).unwrap(), Some(vote));
    }

    #[test]
    fn g6_a_damaged_vote_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vote_x.json");
        fs::write(&path, b"{\"version\":1,\"prom").unwrap();
        let e = load(&path).unwrap_err();
        assert!(matches!(e, StorageError::CorruptVote { .. }));
        assert!(e.to_string().contains("vote_x.json"), "{e}");
    }
}
