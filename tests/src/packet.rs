//! Test packets for the probe programs (layout in bpf/test/probe.h).

pub const ABORTED: u8 = 0;
pub const DROP: u8 = 1;
pub const PASS: u8 = 2;
pub const TX: u8 = 3;
pub const REDIRECT: u8 = 4;

const ACTIONS: usize = 14;
const TRACE_LEN: usize = 30;
const TRACE: usize = 31;
pub const META_COPY: usize = 47;
pub const LEN: usize = 64;

/// A 64-byte frame in which every slot returns XDP_PASS, except those in `actions`.
pub fn probe_packet(actions: &[(u8, u8)]) -> Vec<u8> {
    let mut p = vec![0u8; LEN];
    p[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    p[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for slot in 0..16 {
        p[ACTIONS + slot] = PASS;
    }
    for &(slot, action) in actions {
        p[ACTIONS + (slot as usize % 16)] = action;
    }
    p
}

/// Where the probe area starts: after a "HEAD" tag pushed by head_push.
pub fn base(frame: &[u8]) -> usize {
    if frame.starts_with(b"HEAD") {
        4
    } else {
        0
    }
}

/// Slots of the members that ran, in order.
pub fn trace(frame: &[u8]) -> Vec<u8> {
    let b = base(frame);
    let n = frame[b + TRACE_LEN] as usize;
    frame[b + TRACE..b + TRACE + n.min(16)].to_vec()
}
