//! Which identity a client runs as: a new uuid, or one whose files are in the data dir
//! (`--resume [NAME|UUID]`), and the name it goes by when `--name` is not given.
//!
//! What this module must not do: lock, create or change files (that is [`crate::store`]); it
//! only looks at which files exist, and reads a checkpoint for the name it keeps.

use super::cli::{parse_name, Resume};
use super::error::ClientError;
use crate::checkpoint;
use crate::store::{self, Identity};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use uuid::Uuid;

/// A client identity found in a data dir, as a refusal lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub uuid: Uuid,
    /// The name its checkpoint keeps, if it has one.
    pub name: Option<String>,
    /// When one of its files last changed.
    pub last_ran: Option<SystemTime>,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}",
            self.name.as_deref().unwrap_or("no name"),
            self.uuid
        )?;
        if let Some(at) = self.last_ran {
            write!(f, ", last ran {}", humantime::format_rfc3339_seconds(at))?;
        }
        write!(f, ")")
    }
}

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
    /// `--resume NAME`, and no identity in the data dir goes by that name.
    NoSuchName {
        name: String,
        /// `--data-dir`.
        dir: PathBuf,
        /// The identities there.
        found: Vec<Found>,
    },
    /// `--resume` alone or `--resume NAME`, and several identities qualify: the user must
    /// name one.
    Ambiguous {
        /// `--data-dir`.
        dir: PathBuf,
        /// The identities that qualify, sorted by uuid.
        found: Vec<Found>,
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
            IdentityError::NoSuchName { name, dir, found } => {
                write!(
                    f,
                    "nothing to resume: no identity named {name} in {}",
                    dir.display()
                )?;
                match found.is_empty() {
                    true => write!(f, "; start without --resume"),
                    false => write!(f, "; there are: {}", list(found)),
                }
            }
            IdentityError::Ambiguous { dir, found } => write!(
                f,
                "{} identities in {}; name one with --resume UUID: {}",
                found.len(),
                dir.display(),
                list(found)
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

fn list(found: &[Found]) -> String {
    let shown: Vec<String> = found.iter().map(Found::to_string).collect();
    shown.join(", ")
}

/// Every client identity in `dir`, with its name and when it last ran.
fn found_in(dir: &Path) -> Result<Vec<Found>, ClientError> {
    let ids = store::find_client_identities(dir)?;
    Ok(ids.into_iter().map(|uuid| describe(dir, uuid)).collect())
}

/// What the data dir says of identity `uuid`; a file it cannot read says nothing.
fn describe(dir: &Path, uuid: Uuid) -> Found {
    let id = Identity::Client(uuid);
    let cp = checkpoint::load(&id.checkpoint_path(dir)).ok().flatten();
    let files = [
        id.checkpoint_path(dir),
        id.replica_path(dir),
        id.journal_path(dir),
    ];
    let last_ran = files
        .iter()
        .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
        .max();
    Found {
        uuid,
        name: cp.map(|cp| cp.name).filter(|n| !n.is_empty()),
        last_ran,
    }
}

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
            let mut found = found_in(dir)?;
            match found.len() {
                1 => Ok(found.remove(0).uuid),
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
        Resume::Name(name) => {
            let found = found_in(dir)?;
            let mut named: Vec<Found> = found
                .iter()
                .filter(|f| f.name.as_deref() == Some(name.as_str()))
                .cloned()
                .collect();
            match named.len() {
                1 => Ok(named.remove(0).uuid),
                0 => Err(IdentityError::NoSuchName {
                    name: name.clone(),
                    dir: dir.to_path_buf(),
                    found,
                }
                .into()),
                _ => Err(IdentityError::Ambiguous {
                    dir: dir.to_path_buf(),
                    found: named,
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
        let err = resolve_identity(&Resume::Only, dir.path())
            .unwrap_err()
            .to_string();
        let head = format!(
            "2 identities in {}; name one with --resume UUID: ",
            dir.path().display()
        );
        assert!(err.starts_with(&head), "{err}");
        assert!(err.contains(&format!("no name ({a}, last ran 20")), "{err}");
        assert!(err.contains(&format!("no name ({b}, last ran 20")), "{err}");
        assert_ne!(resolve_identity(&Resume::New, dir.path()).unwrap(), a);
    }

    /// A checkpoint of identity `uuid` named `name` in `dir`.
    fn named(dir: &Path, uuid: Uuid, name: &str) {
        let cp = checkpoint::Checkpoint {
            version: checkpoint::CHECKPOINT_VERSION,
            node: crate::protocol::types::NodeId(uuid),
            name: name.into(),
            view: Default::default(),
            delivered: Default::default(),
            replica_len_bytes: 0,
            outbox: Vec::new(),
            journal: None,
            server_id: None,
            saved_at_ms: 0,
        };
        checkpoint::save(&Identity::Client(uuid).checkpoint_path(dir), &cp).unwrap();
    }

    #[test]
    fn resume_takes_a_name_and_a_refusal_lists_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        named(dir.path(), a, "alice");
        named(dir.path(), b, "carol");
        let carol = Resume::Name("carol".into());
        assert_eq!(resolve_identity(&carol, dir.path()).unwrap(), b);
        let err = resolve_identity(&Resume::Name("dave".into()), dir.path()).unwrap_err();
        let err = err.to_string();
        assert!(
            err.starts_with("nothing to resume: no identity named dave in "),
            "{err}"
        );
        assert!(
            err.contains(&format!("there are: alice ({a}, last ran ")),
            "{err}"
        );
        named(dir.path(), c, "carol");
        let err = resolve_identity(&carol, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("carol ({b}, last ran")), "{err}");
        assert!(err.contains(&format!("carol ({c}, last ran")), "{err}");
        assert!(!err.contains("alice"), "only the carols: {err}");
    }

    #[test]
    fn a_resumed_name_is_used_only_when_still_valid() {
        assert_eq!(resumed_name("alice").as_deref(), Some("alice"));
        assert_eq!(resumed_name(""), None);
        assert_eq!(resumed_name("a\u{7}b"), None);
        assert_eq!(resumed_name(&"x".repeat(33)), None);
    }
}
