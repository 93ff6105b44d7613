//! A tiny eBPF assembler: encodes `struct bpf_insn` and resolves forward/backward jump
//! labels, so the steering program can be written in Rust without clang/llvm.

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`
/// (`code`, `dst_reg:4 | src_reg:4`, `off`, `imm`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    /// Read-only frame pointer.
    R10,
}

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU32: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Sizes.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Size {
    W = 0x00,
    B = 0x10,
    DW = 0x18,
}
// Modes.
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
// Source operand.
const K: u8 = 0x00;
const X: u8 = 0x08;

/// ALU operations.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Or = 0x40,
    And = 0x50,
    Rsh = 0x70,
    Mod = 0x90,
    Xor = 0xa0,
    Mov = 0xb0,
}

/// Conditional jumps (unsigned unless noted).
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    /// `dst & src != 0`
    Set = 0x40,
    Ne = 0x50,
    Lt = 0xa0,
    Le = 0xb0,
}

const JA: u8 = 0x00;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

/// `src_reg` of a 64-bit immediate load whose `imm` is a map file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Accumulates instructions; jumps name labels that `finish` resolves.
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

fn regs(dst: Reg, src: Reg) -> u8 {
    (dst as u8) | ((src as u8) << 4)
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(&mut self, code: u8, regs: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs,
            off,
            imm,
        });
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `l` at the next instruction.
    pub fn bind(&mut self, l: Label) {
        assert!(self.labels[l.0].is_none(), "label bound twice");
        self.labels[l.0] = Some(self.insns.len());
    }

    // --- ALU -------------------------------------------------------------------------
    pub fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.emit(ALU64 | op as u8 | K, regs(dst, Reg::R0), 0, imm);
    }
    pub fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.emit(ALU64 | op as u8 | X, regs(dst, src), 0, 0);
    }
    /// 32-bit ALU: operates on the low halves, zero-extends the result.
    pub fn alu32_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.emit(ALU32 | op as u8 | K, regs(dst, Reg::R0), 0, imm);
    }
    pub fn alu32_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.emit(ALU32 | op as u8 | X, regs(dst, src), 0, 0);
    }
    pub fn mov64_imm(&mut self, dst: Reg, imm: i32) {
        self.alu64_imm(Alu::Mov, dst, imm);
    }
    pub fn mov64_reg(&mut self, dst: Reg, src: Reg) {
        self.alu64_reg(Alu::Mov, dst, src);
    }
    /// `dst = imm` as a full 64-bit constant (two instruction slots).
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) {
        self.emit(
            LD | Size::DW as u8 | IMM,
            regs(dst, Reg::R0),
            0,
            imm as u32 as i32,
        );
        self.emit(0, 0, 0, (imm >> 32) as u32 as i32);
    }
    /// `dst = map` (a map file descriptor the kernel turns into a map pointer).
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) {
        self.emit(
            LD | Size::DW as u8 | IMM,
            dst as u8 | (PSEUDO_MAP_FD << 4),
            0,
            fd,
        );
        self.emit(0, 0, 0, 0);
    }

    // --- memory ----------------------------------------------------------------------
    /// `dst = *(size *)(src + off)`
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.emit(LDX | size as u8 | MEM, regs(dst, src), off, 0);
    }
    /// `*(size *)(dst + off) = src`
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.emit(STX | size as u8 | MEM, regs(dst, src), off, 0);
    }
    /// `*(size *)(dst + off) = imm`
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.emit(ST | size as u8 | MEM, regs(dst, Reg::R0), off, imm);
    }

    // --- control flow ----------------------------------------------------------------
    fn jump(&mut self, code: u8, regs: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.emit(code, regs, 0, imm);
    }
    pub fn ja(&mut self, to: Label) {
        self.jump(JMP | JA, 0, 0, to);
    }
    /// `if dst <cond> imm goto to` (64-bit compare, imm sign-extended).
    pub fn jmp_imm(&mut self, cond: Cond, dst: Reg, imm: i32, to: Label) {
        self.jump(JMP | cond as u8 | K, regs(dst, Reg::R0), imm, to);
    }
    /// Calls helper number `helper` (arguments in r1..r5, result in r0; r1..r5 clobbered).
    pub fn call(&mut self, helper: i32) {
        self.emit(JMP | CALL, 0, 0, helper);
    }
    pub fn exit(&mut self) {
        self.emit(JMP | EXIT, 0, 0, 0);
    }

    /// Resolves the jumps; panics on a label never bound or a jump out of `i16` range.
    pub fn finish(mut self) -> Vec<Insn> {
        for &(at, l) in &self.fixups {
            let target = self.labels[l.0].expect("jump to an unbound label");
            let off = target as isize - (at as isize + 1);
            self.insns[at].off = i16::try_from(off).expect("jump too far");
        }
        self.insns
    }
}
