//! psnc-restore command-line tool.
fn main() {
    eprintln!("psnc-restore: not implemented yet");
    std::process::exit(2);
}
