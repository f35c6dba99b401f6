//! Which identity a client runs as: a new uuid, or one whose files are in the data dir
//! (`--resume [UUID]`), and the name it goes by when `--name` is not given.
//!
//! What this module must not do: open, lock or create files (that is [`crate::store`]); it
//! only looks at which files exist.

use super::cli::{parse_name, Resume};
use super::error::ClientError;
use crate::store::{self, Identity};
use std::fmt;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Why `--resume` could not pick an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// `--resume UUID`, and the data dir holds no files of that identity.
    NotFound {
        /// The identity asked for.
        uuid: Uuid,
        /// `--data-dir`.
        dir: PathBuf,
    },
    /// `--resume` alone, and the data dir holds no client identity.
    NoneToResume {
        /// `--data-dir`.
        dir: PathBuf,
    },
    /// `--resume` alone, and the data dir holds several: the user must name one.
    Ambiguous {
        /// `--data-dir`.
        dir: PathBuf,
        /// The identities found, sorted.
        found: Vec<Uuid>,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NotFound { uuid, dir } => write!(
                f,
                "nothing to resume: no files of identity {uuid} in {}",
                dir.display()
            ),
            IdentityError::NoneToResume { dir } => write!(
                f,
                "nothing to resume: no client identity in {}; start without --resume",
                dir.display()
            ),
            IdentityError::Ambiguous { dir, found } => write!(
                f,
                "{} identities in {}; name one with --resume UUID: {}",
                found.len(),
                dir.display(),
                found
                    .iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// The uuid to run as: a new one, the only one in the data dir, or the one named.
pub fn resolve_identity(resume: &Resume, dir: &Path) -> Result<Uuid, ClientError> {
    match resume {
        Resume::New => Ok(Uuid::new_v4()),
        Resume::Id(uuid) => {
            let id = Identity::Client(*uuid);
            if id.replica_path(dir).exists() || id.checkpoint_path(dir).exists() {
                Ok(*uuid)
            } else {
                Err(IdentityError::NotFound {
                    uuid: *uuid,
                    dir: dir.to_path_buf(),
                }
                .into())
            }
        }
        Resume::Only => {
            let mut found = store::find_client_identities(dir)?;
            match found.len() {
                1 => Ok(found.remove(0)),
                0 => Err(IdentityError::NoneToResume {
                    dir: dir.to_path_buf(),
                }
                .into()),
                _ => Err(IdentityError::Ambiguous {
                    dir: dir.to_path_buf(),
                    found,
                }
                .into()),
            }
        }
    }
}

/// The name kept in the checkpoint, if it is still a valid name (the file may have been
/// edited): an invalid one would make every line of ours fail to decode elsewhere.
pub fn resumed_name(saved: &str) -> Option<String> {
    match parse_name(saved) {
        Ok(name) => Some(name),
        Err(why) if !saved.is_empty() => {
            log::warn!("ignoring the name in the checkpoint ({why}); give one with --name");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn resume_picks_the_only_identity_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let err = resolve_identity(&Resume::Only, dir.path()).unwrap_err();
        assert!(matches!(
            err,
            ClientError::Identity(IdentityError::NoneToResume { .. })
        ));
        assert!(err.to_string().ends_with("; start without --resume"));
        let err = resolve_identity(&Resume::Id(a), dir.path()).unwrap_err();
        assert!(matches!(
            err,
            ClientError::Identity(IdentityError::NotFound { uuid, .. }) if uuid == a
        ));

        touch(&Identity::Client(a).checkpoint_path(dir.path()));
        assert_eq!(resolve_identity(&Resume::Only, dir.path()).unwrap(), a);
        assert_eq!(resolve_identity(&Resume::Id(a), dir.path()).unwrap(), a);

        touch(&Identity::Client(b).replica_path(dir.path()));
        let err = resolve_identity(&Resume::Only, dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "2 identities in {}; name one with --resume UUID: {a}, {b}",
                dir.path().display()
            )
        );
        assert_ne!(resolve_identity(&Resume::New, dir.path()).unwrap(), a);
    }

    #[test]
    fn a_resumed_name_is_used_only_when_still_valid() {
        assert_eq!(resumed_name("alice").as_deref(), Some("alice"));
        assert_eq!(resumed_name(""), None);
        assert_eq!(resumed_name("a\u{7}b"), None);
        assert_eq!(resumed_name(&"x".repeat(33)), None);
    }
}
