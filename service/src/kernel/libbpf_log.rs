//! Routes libbpf's messages into `tracing`, and lets the caller collect the
//! warnings of one operation so they can be returned in its error.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::sync::Once;

use libbpf_sys::{libbpf_print_level, LIBBPF_DEBUG, LIBBPF_WARN};

thread_local! {
    static COLLECTED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

extern "C" {
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, args: *mut libbpf_sys::__va_list_tag) -> c_int;
}

unsafe extern "C" fn print(
    level: libbpf_print_level,
    fmt: *const c_char,
    args: *mut libbpf_sys::__va_list_tag,
) -> c_int {
    let mut buf = [0 as c_char; 1024];
    // SAFETY: buf is writable for its length; fmt and args come from libbpf as a pair.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, args) };
    if n < 0 {
        return n;
    }
    // SAFETY: vsnprintf always NUL-terminates within the buffer.
    let line = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let line = line.trim_end();
    if level == LIBBPF_DEBUG {
        tracing::trace!(target: "libbpf", "{line}");
        return n;
    }
    tracing::debug!(target: "libbpf", "{line}");
    if level == LIBBPF_WARN {
        COLLECTED.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                lines.push(line.to_string());
            }
        });
    }
    n
}

/// Installs the print callback once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `print` matches libbpf_print_fn_t and is valid for the process lifetime.
        unsafe { libbpf_sys::libbpf_set_print(Some(print)) };
    });
}

/// Runs `f` and returns its result with libbpf's warnings printed meanwhile on this thread.
pub fn collect<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    install();
    let outer = COLLECTED.with(|c| c.borrow_mut().replace(Vec::new()));
    let result = f();
    let lines = COLLECTED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer)).unwrap_or_default();
    (result, lines)
}
