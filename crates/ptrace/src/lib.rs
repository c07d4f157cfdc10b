//! Safe API over ptrace, remote system calls and the raw syscalls psnc-cr needs.
