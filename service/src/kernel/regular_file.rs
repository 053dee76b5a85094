//! Reading a whole regular file from a descriptor an application handed
//! over: `fstat` to refuse pipes, sockets and devices (which could block the
//! service or never end), then `pread` from offset 0 whatever the file
//! position, with a cap.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Why a descriptor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// `fstat` or `pread` failed.
    #[error("{0}")]
    Io(String),
    /// Not a regular file; says what it is.
    #[error("the descriptor is {0}; pass a regular file or a memfd")]
    NotRegular(&'static str),
    /// Larger than the cap.
    #[error("object is {size} bytes, the limit is {max}")]
    TooLarge {
        /// Size the file has.
        size: u64,
        /// The cap.
        max: usize,
    },
    /// The file grew past the cap while it was read.
    #[error("object grew past the limit of {0} bytes while read")]
    Grew(usize),
}

fn kind_name(kind: libc::mode_t) -> &'static str {
    match kind {
        libc::S_IFIFO => "a pipe or FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

/// Reads a regular file (or memfd) of at most `max_size` bytes from `fd`.
pub fn read(fd: BorrowedFd<'_>, max_size: usize) -> Result<Vec<u8>, ReadError> {
    // SAFETY: fstat writes into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a stat buffer of the right type.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(ReadError::Io(format!("cannot stat the descriptor: {}", std::io::Error::last_os_error())));
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG {
        return Err(ReadError::NotRegular(kind_name(kind)));
    }
    if st.st_size as u64 > max_size as u64 {
        return Err(ReadError::TooLarge { size: st.st_size as u64, max: max_size });
    }
    // Read at most one byte more than allowed, so a file growing meanwhile is caught.
    let mut bytes = vec![0u8; (st.st_size as usize).min(max_size) + 1];
    let mut len = 0;
    while len < bytes.len() {
        // SAFETY: the destination range lies inside `bytes`.
        let n = unsafe {
            libc::pread(fd.as_raw_fd(), bytes[len..].as_mut_ptr().cast(), bytes.len() - len, len as libc::off_t)
        };
        match n {
            0 => break,
            n if n > 0 => len += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return Err(ReadError::Io(format!("cannot read the object: {}", std::io::Error::last_os_error()))),
        }
        if len == bytes.len() && len <= max_size {
            bytes.resize((len * 2).min(max_size + 1), 0);
        }
    }
    if len > max_size {
        return Err(ReadError::Grew(max_size));
    }
    bytes.truncate(len);
    Ok(bytes)
}
