//! The stub executable a restore execs to get a clean task of the right mode.
//!
//! Exec is the only way to make a task a compat (i386) task, and the cheapest way to get a task
//! whose address space holds almost nothing: the stub is one `PT_LOAD` page of code, loaded at an
//! address the caller chose inside a hole of the image's address space, so it never collides with
//! what the restore recreates. Its entry point is an `int3`: a traced stub stops there right after
//! exec, and the system-call instruction in front of it is where the remote-syscall engine points
//! the task until the image's own code is mapped.
//!
//! The second system-call instruction is for `clone3` of the image's other threads: the engine
//! single-steps the caller, which traps right after the instruction, while the new thread (which
//! does not inherit single-stepping) runs on into a `pause` loop. With every signal blocked it
//! sleeps there until the restore seizes it and gives it its own state.
//!
//! ```text
//!   file offset 0 = vaddr `base`
//!   +------------+-------------+-------------+-------------------------------------------------+
//!   | ELF header | PT_LOAD R+X | PT_GNU_STACK| sc | int3 | sc | mov eax,PAUSE | sc | jmp -9    |
//!   | 64 / 52 B  | 56 / 32 B   | 56 / 32 B   |    |      |    | (34 / 29)     |    | (to mov)  |
//!   +------------+-------------+-------------+-------------------------------------------------+
//!                                            ^syscall_addr ^clone_addr
//!                                                 ^entry
//!   sc = syscall (0f 05) for x86_64, int 0x80 (cd 80) for i386
//! ```
//!
//! `PT_GNU_STACK` is there so the kernel does not give an ELF32 stub `READ_IMPLIES_EXEC`, a
//! personality bit that would survive into the restored process and make every readable mapping
//! executable. Both classes are written by one generic body over a private `ElfClass` trait,
//! following the shape of gimli-rs/object: the two implementations only say how wide a word is
//! and in which order a program header stores its fields.

use psnc_format::model::Arch;

/// Page size of the x86 targets.
pub const PAGE_SIZE: u64 = 4096;

const PT_LOAD: u32 = 1;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const ET_EXEC: u16 = 2;
const EV_CURRENT: u8 = 1;
const ELFDATA2LSB: u8 = 1;
const ELFOSABI_SYSV: u8 = 0;

/// One ELF class: word width and program-header field order. Everything else is shared.
trait ElfClass {
    /// `EI_CLASS` value (1 = ELFCLASS32, 2 = ELFCLASS64).
    const EI_CLASS: u8;
    /// `e_machine` (3 = EM_386, 62 = EM_X86_64).
    const MACHINE: u16;
    /// Size of the ELF header.
    const EHDR_SIZE: u16;
    /// Size of one program header.
    const PHDR_SIZE: u16;
    /// The system-call instruction of this mode, followed by `int3`.
    const CODE: &'static [u8];
    /// Highest address a stub of this class may be loaded at (exclusive).
    const ADDR_LIMIT: u64;

    /// Appends an address-sized word.
    fn put_word(out: &mut Vec<u8>, value: u64);
    /// Appends one program header in this class's field order.
    fn put_phdr(out: &mut Vec<u8>, ph: &Phdr);
}

/// A program header, widened to u64.
struct Phdr {
    p_type: u32,
    p_flags: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    p_align: u64,
}

struct Elf64;
struct Elf32;

impl ElfClass for Elf64 {
    const EI_CLASS: u8 = 2;
    const MACHINE: u16 = 62;
    const EHDR_SIZE: u16 = 64;
    const PHDR_SIZE: u16 = 56;
    const CODE: &'static [u8] = &[
        0x0f, 0x05, // syscall          (remote calls)
        0xcc, // int3                   (entry)
        0x0f, 0x05, // syscall          (clone3 of threads)
        0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
        0x0f, 0x05, // syscall
        0xeb, 0xf7, // jmp to the mov
    ];
    const ADDR_LIMIT: u64 = 0x7fff_ffff_f000;

    fn put_word(out: &mut Vec<u8>, value: u64) {
        out.extend_from_slice(&value.to_le_bytes());
    }

    fn put_phdr(out: &mut Vec<u8>, ph: &Phdr) {
        out.extend_from_slice(&ph.p_type.to_le_bytes());
        out.extend_from_slice(&ph.p_flags.to_le_bytes());
        for v in [
            ph.p_offset,
            ph.p_vaddr,
            ph.p_vaddr,
            ph.p_filesz,
            ph.p_memsz,
            ph.p_align,
        ] {
            Self::put_word(out, v);
        }
    }
}

impl ElfClass for Elf32 {
    const EI_CLASS: u8 = 1;
    const MACHINE: u16 = 3;
    const EHDR_SIZE: u16 = 52;
    const PHDR_SIZE: u16 = 32;
    const CODE: &'static [u8] = &[
        0xcd, 0x80, // int 0x80         (remote calls)
        0xcc, // int3                   (entry)
        0xcd, 0x80, // int 0x80         (clone3 of threads)
        0xb8, 0x1d, 0x00, 0x00, 0x00, // mov eax, 29 (pause)
        0xcd, 0x80, // int 0x80
        0xeb, 0xf7, // jmp to the mov
    ];
    // TASK_SIZE of a compat task (IA32_PAGE_OFFSET).
    const ADDR_LIMIT: u64 = 0xffff_e000;

    fn put_word(out: &mut Vec<u8>, value: u64) {
        // Callers check the range first (`Stub::generate`); a 32-bit word holds the low half.
        out.extend_from_slice(&(value as u32).to_le_bytes());
    }

    fn put_phdr(out: &mut Vec<u8>, ph: &Phdr) {
        out.extend_from_slice(&ph.p_type.to_le_bytes());
        for v in [ph.p_offset, ph.p_vaddr, ph.p_vaddr, ph.p_filesz, ph.p_memsz] {
            Self::put_word(out, v);
        }
        out.extend_from_slice(&ph.p_flags.to_le_bytes());
        Self::put_word(out, ph.p_align);
    }
}

/// A generated stub executable and the two addresses that matter in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stub {
    /// The complete ELF file.
    pub bytes: Vec<u8>,
    /// Load address of the file's first byte (page-aligned).
    pub base: u64,
    /// Address of the system-call instruction (`syscall` or `int 0x80`).
    pub syscall_addr: u64,
    /// Entry point: the `int3` right after the system-call instruction.
    pub entry: u64,
    /// The system-call instruction to run `clone3` of threads from: the new thread continues
    /// into a `pause` loop.
    pub clone_addr: u64,
    /// The mode a task that execs this stub runs in.
    pub arch: Arch,
}

/// Why a stub cannot be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StubError {
    /// The load address is not page-aligned or the page does not fit below the mode's limit.
    #[error(
        "stub load address {base:#x} is not a page-aligned address below {limit:#x} for {arch:?}"
    )]
    BadBase {
        /// The requested base.
        base: u64,
        /// The mode's address limit.
        limit: u64,
        /// The mode.
        arch: Arch,
    },
}

impl Stub {
    /// Generates the stub for a task of mode `arch`, loaded at `base`.
    pub fn generate(arch: Arch, base: u64) -> Result<Stub, StubError> {
        match arch {
            Arch::X86_64 => generate::<Elf64>(arch, base),
            Arch::I386 => generate::<Elf32>(arch, base),
        }
    }

    /// The highest address (exclusive) a stub of mode `arch` can occupy.
    pub fn addr_limit(arch: Arch) -> u64 {
        match arch {
            Arch::X86_64 => Elf64::ADDR_LIMIT,
            Arch::I386 => Elf32::ADDR_LIMIT,
        }
    }
}

fn generate<C: ElfClass>(arch: Arch, base: u64) -> Result<Stub, StubError> {
    let limit = C::ADDR_LIMIT;
    if base % PAGE_SIZE != 0
        || base == 0
        || !base.checked_add(PAGE_SIZE).is_some_and(|e| e <= limit)
    {
        return Err(StubError::BadBase { base, limit, arch });
    }
    let phnum: u16 = 2;
    let code_off = u64::from(C::EHDR_SIZE) + u64::from(phnum) * u64::from(C::PHDR_SIZE);
    let file_size = code_off + C::CODE.len() as u64;

    let mut out = Vec::with_capacity(file_size as usize);
    // e_ident
    out.extend_from_slice(&[
        0x7f,
        b'E',
        b'L',
        b'F',
        C::EI_CLASS,
        ELFDATA2LSB,
        EV_CURRENT,
        ELFOSABI_SYSV,
    ]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&ET_EXEC.to_le_bytes());
    out.extend_from_slice(&C::MACHINE.to_le_bytes());
    out.extend_from_slice(&u32::from(EV_CURRENT).to_le_bytes());
    let syscall_addr = base + code_off;
    let entry = syscall_addr + 2;
    C::put_word(&mut out, entry); // e_entry
    C::put_word(&mut out, u64::from(C::EHDR_SIZE)); // e_phoff
    C::put_word(&mut out, 0); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&C::EHDR_SIZE.to_le_bytes());
    out.extend_from_slice(&C::PHDR_SIZE.to_le_bytes());
    out.extend_from_slice(&phnum.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    debug_assert_eq!(out.len(), usize::from(C::EHDR_SIZE));

    C::put_phdr(
        &mut out,
        &Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R | PF_X,
            p_offset: 0,
            p_vaddr: base,
            p_filesz: file_size,
            p_memsz: file_size,
            p_align: PAGE_SIZE,
        },
    );
    C::put_phdr(
        &mut out,
        &Phdr {
            p_type: PT_GNU_STACK,
            p_flags: PF_R | PF_W,
            p_offset: 0,
            p_vaddr: 0,
            p_filesz: 0,
            p_memsz: 0,
            p_align: 16,
        },
    );
    debug_assert_eq!(out.len() as u64, code_off);
    out.extend_from_slice(C::CODE);
    Ok(Stub {
        bytes: out,
        base,
        syscall_addr,
        entry,
        clone_addr: syscall_addr + 3,
        arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop's jump lands on its `mov`, for both classes.
    #[test]
    fn pause_loop_jumps_back_to_its_mov() {
        for code in [Elf64::CODE, Elf32::CODE] {
            assert_eq!(code.len(), 14);
            assert_eq!(code[5], 0xb8);
            let after_jmp = 14i32;
            assert_eq!(after_jmp + i32::from(code[13] as i8), 5);
        }
    }

    #[test]
    fn layout_64() {
        let s = Stub::generate(Arch::X86_64, 0x1000_0000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.bytes.len(), 64 + 2 * 56 + 14);
        assert_eq!(s.syscall_addr, 0x1000_0000 + 176);
        assert_eq!(s.entry, s.syscall_addr + 2);
        assert_eq!(s.clone_addr, s.syscall_addr + 3);
        assert_eq!(&s.bytes[176..179], &[0x0f, 0x05, 0xcc]);
        assert_eq!(&s.bytes[179..181], &[0x0f, 0x05]);
    }

    #[test]
    fn layout_32() {
        let s = Stub::generate(Arch::I386, 0x1000_0000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.bytes.len(), 52 + 2 * 32 + 14);
        assert_eq!(&s.bytes[116..119], &[0xcd, 0x80, 0xcc]);
        assert_eq!(&s.bytes[119..121], &[0xcd, 0x80]);
    }

    #[test]
    fn bad_bases() {
        for (arch, base) in [
            (Arch::X86_64, 0x1000_0001),
            (Arch::X86_64, 0),
            (Arch::X86_64, 0x7fff_ffff_f000),
            (Arch::I386, 0x1_0000_0000),
            (Arch::I386, 0xffff_e000),
        ] {
            assert!(matches!(
                Stub::generate(arch, base),
                Err(StubError::BadBase { base: b, .. }) if b == base
            ));
        }
    }
}
