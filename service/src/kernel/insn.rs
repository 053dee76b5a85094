//! BPF instructions: the layout of `struct bpf_insn` and the few encodings the
//! linker reads or writes.

/// One BPF instruction, laid out as `struct bpf_insn` (registers packed
/// dst in the low nibble, src in the high nibble, as on little-endian hosts).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == std::mem::size_of::<libbpf_sys::bpf_insn>());
#[cfg(target_endian = "big")]
compile_error!("the register nibbles of Insn assume a little-endian host");

// Instruction classes, sources, operations (linux/bpf_common.h, linux/bpf.h).
pub const BPF_LD: u8 = 0x00;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_ALU64: u8 = 0x07;
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;
pub const BPF_DW: u8 = 0x18;
pub const BPF_IMM: u8 = 0x00;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_ADD: u8 = 0x00;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ATOMIC: u8 = 0xc0;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;

/// `ld_imm64` (two instruction slots).
pub const LD_IMM64: u8 = BPF_LD | BPF_DW | BPF_IMM;
/// A call of a helper, a subprogram or a kfunc, told apart by the source register.
pub const CALL: u8 = BPF_JMP | BPF_CALL;

// Source-register markers of ld_imm64 and call (linux/bpf.h).
pub const PSEUDO_MAP_FD: u8 = 1;
pub const PSEUDO_MAP_VALUE: u8 = 2;
pub const PSEUDO_BTF_ID: u8 = 3;
pub const PSEUDO_FUNC: u8 = 4;
pub const PSEUDO_MAP_IDX: u8 = 5;
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;
pub const PSEUDO_CALL: u8 = 1;
pub const PSEUDO_KFUNC_CALL: u8 = 2;

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R6: u8 = 6;

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
    }

    pub fn src(self) -> u8 {
        self.regs >> 4
    }

    pub fn is_ld_imm64(self) -> bool {
        self.code == LD_IMM64
    }

    /// A call of a BPF-to-BPF subprogram (target = own index + 1 + imm).
    pub fn is_subprog_call(self) -> bool {
        self.code == CALL && self.src() == PSEUDO_CALL
    }

    pub fn is_kfunc_call(self) -> bool {
        self.code == CALL && self.src() == PSEUDO_KFUNC_CALL
    }

    /// `dst = src` (64-bit).
    pub const fn mov64_reg(dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
    }

    /// `wdst = imm` (32-bit, zero-extended).
    pub const fn mov32_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, imm)
    }

    /// `wdst >>= wsrc` (32-bit).
    pub const fn rsh32_reg(dst: u8, src: u8) -> Insn {
        Insn::new(BPF_ALU | BPF_RSH | BPF_X, dst, src, 0, 0)
    }

    /// `if wdst > imm goto +off` (unsigned, 32-bit).
    pub const fn jgt32_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | BPF_JGT | BPF_K, dst, 0, off, imm)
    }

    /// `if wdst == imm goto +off` (32-bit).
    pub const fn jeq32_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | BPF_JEQ | BPF_K, dst, 0, off, imm)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(BPF_JMP | BPF_JA, 0, 0, off, 0)
    }

    /// `gotol +imm` (32-bit reach).
    pub const fn gotol(imm: i32) -> Insn {
        Insn::new(BPF_JMP32 | BPF_JA, 0, 0, 0, imm)
    }

    /// `if wdst & imm goto +off` (32-bit).
    pub const fn jset32_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(BPF_JMP32 | BPF_JSET | BPF_K, dst, 0, off, imm)
    }

    /// A call of the subprogram `imm + 1` instructions ahead.
    pub const fn call_subprog(imm: i32) -> Insn {
        Insn::new(CALL, 0, PSEUDO_CALL, 0, imm)
    }

    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}
