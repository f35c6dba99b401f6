//! Reserving disk space for an append before writing it, so that an append on a full disk
//! fails before any byte of it lands and a reader never sees part of a line.
//!
//! Used only after an append has failed for want of space: on the hot path one write is
//! enough, and a failed write is cut back anyway. This module writes nothing itself.

use std::fs::File;
use std::io;

/// Allocates `len` bytes of `file` from `offset` without changing its size
/// (`fallocate` with `FALLOC_FL_KEEP_SIZE`). A file system that cannot preallocate is no
/// error: the write that follows then takes its chances as usual.
pub fn reserve(file: &File, offset: u64, len: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Err(io::Error::from(io::ErrorKind::FileTooLarge));
        };
        // SAFETY: fallocate reads no memory of ours; the descriptor is open for writing
        // for as long as `file` lives.
        let rc =
            unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reserving_keeps_the_size_and_the_contents() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"one\n").unwrap();
        reserve(&file, 4, 1 << 16).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 4);
        file.write_all(b"two\n").unwrap();
        assert_eq!(file.metadata().unwrap().len(), 8);
    }
}
