//! User names of program owners, from the password database (getpwuid_r,
//! so NSS sources like LDAP or systemd-userdb are asked too).

use std::collections::HashMap;
use std::ffi::CStr;

/// The name of `uid`, if the system knows one.
pub fn name_of(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is plain data; zeroed is a valid value to be overwritten.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for the call; buf outlives the use of pwd's strings.
        let ret = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result) };
        if ret == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if ret != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
        return Some(unsafe { CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned());
    }
}

/// Looks each uid up once.
#[derive(Default)]
pub struct Names(HashMap<u32, Option<String>>);

impl Names {
    pub fn get(&mut self, uid: u32) -> Option<String> {
        self.0.entry(uid).or_insert_with(|| name_of(uid)).clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_root() {
        assert_eq!(super::name_of(0).as_deref(), Some("root"));
    }
}
