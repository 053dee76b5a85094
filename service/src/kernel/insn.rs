//! BPF instructions: the layout of `struct bpf_insn` and the few encodings the
//! linker reads or writes.

/// One BPF instruction, laid out as `struct bpf_insn` (registers packed
/// dst in the low nibble, src in the high nibble, as on little-endian hosts).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    /// Class, size/op and source bits.
    pub code: u8,
    /// dst register in the low nibble, src in the high one.
    pub regs: u8,
    /// Jump offset or memory offset.
    pub off: i16,
    /// Immediate: constant, helper id, relative call target, map descriptor.
    pub imm: i32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == std::mem::size_of::<libbpf_sys::bpf_insn>());
#[cfg(target_endian = "big")]
compile_error!("the register nibbles of Insn assume a little-endian host");

// Instruction classes, sources, operations (linux/bpf_common.h, linux/bpf.h).
/// Class: loads into registers (ld_imm64, legacy packet loads).
pub const BPF_LD: u8 = 0x00;
/// Class: 64-bit jumps, calls and exit.
pub const BPF_JMP: u8 = 0x05;
/// Class: 32-bit jumps (and `gotol`).
pub const BPF_JMP32: u8 = 0x06;
/// Class: loads from memory into registers.
pub const BPF_LDX: u8 = 0x01;
/// Mode: memory at a register plus an offset.
pub const BPF_MEM: u8 = 0x60;
/// Size: word (32 bits).
pub const BPF_W: u8 = 0x00;
/// ALU op: subtract.
pub const BPF_SUB: u8 = 0x10;
/// ALU op: multiply.
pub const BPF_MUL: u8 = 0x20;
/// Jump op: unsigned greater or equal.
pub const BPF_JGE: u8 = 0x30;
/// Class: 32-bit arithmetic.
pub const BPF_ALU: u8 = 0x04;
/// Class: 64-bit arithmetic.
pub const BPF_ALU64: u8 = 0x07;
/// Source: the immediate.
pub const BPF_K: u8 = 0x00;
/// Source: the src register.
pub const BPF_X: u8 = 0x08;
/// Size: double word.
pub const BPF_DW: u8 = 0x18;
/// Mode: immediate (ld_imm64).
pub const BPF_IMM: u8 = 0x00;
/// ALU op: move.
pub const BPF_MOV: u8 = 0xb0;
/// ALU op: logical right shift.
pub const BPF_RSH: u8 = 0x70;
/// Jump op: always.
pub const BPF_JA: u8 = 0x00;
/// Jump op: equal.
pub const BPF_JEQ: u8 = 0x10;
/// Jump op: unsigned greater than.
pub const BPF_JGT: u8 = 0x20;
/// Jump op: unsigned less or equal.
pub const BPF_JLE: u8 = 0xb0;
/// ALU op: left shift.
pub const BPF_LSH: u8 = 0x60;
/// ALU op: add (also the atomic add).
pub const BPF_ADD: u8 = 0x00;
/// Class: stores from a register (and atomics).
pub const BPF_STX: u8 = 0x03;
/// Mode: atomic operation.
pub const BPF_ATOMIC: u8 = 0xc0;
/// Jump op: bits set.
pub const BPF_JSET: u8 = 0x40;
/// Jump op: call.
pub const BPF_CALL: u8 = 0x80;
/// Jump op: exit.
pub const BPF_EXIT: u8 = 0x90;

/// `ld_imm64` (two instruction slots).
pub const LD_IMM64: u8 = BPF_LD | BPF_DW | BPF_IMM;
/// A call of a helper, a subprogram or a kfunc, told apart by the source register.
pub const CALL: u8 = BPF_JMP | BPF_CALL;

// Source-register markers of ld_imm64 and call (linux/bpf.h).
/// ld_imm64 src: a map by descriptor.
pub const PSEUDO_MAP_FD: u8 = 1;
/// ld_imm64 src: an address inside a map's value (global data).
pub const PSEUDO_MAP_VALUE: u8 = 2;
/// ld_imm64 src: a kernel variable by BTF id (ksym).
pub const PSEUDO_BTF_ID: u8 = 3;
/// ld_imm64 src: a callback, by relative instruction offset.
pub const PSEUDO_FUNC: u8 = 4;
/// ld_imm64 src: a map by fd_array index.
pub const PSEUDO_MAP_IDX: u8 = 5;
/// ld_imm64 src: a map value by fd_array index.
pub const PSEUDO_MAP_IDX_VALUE: u8 = 6;
/// call src: a BPF-to-BPF subprogram.
pub const PSEUDO_CALL: u8 = 1;
/// call src: a kernel function (kfunc).
pub const PSEUDO_KFUNC_CALL: u8 = 2;

/// Return value register.
pub const R0: u8 = 0;
/// First argument register (the context on entry).
pub const R1: u8 = 1;
/// First callee-saved register.
pub const R6: u8 = 6;

impl Insn {
    /// An instruction from its fields.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
    }

    /// The src register (or the pseudo marker of ld_imm64 and call).
    pub fn src(self) -> u8 {
        self.regs >> 4
    }

    /// A 64-bit immediate load (two slots; maps, callbacks, ksyms).
    pub fn is_ld_imm64(self) -> bool {
        self.code == LD_IMM64
    }

    /// `dst = imm`, 32- or 64-bit (an immediate a relocation may have set).
    pub fn is_mov_imm(self) -> bool {
        self.code == BPF_ALU | BPF_MOV | BPF_K || self.code == BPF_ALU64 | BPF_MOV | BPF_K
    }

    /// A call of a BPF-to-BPF subprogram (target = own index + 1 + imm).
    pub fn is_subprog_call(self) -> bool {
        self.code == CALL && self.src() == PSEUDO_CALL
    }

    /// A call of a kernel function.
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

    /// `exit`: return r0.
    pub const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
    }
}
