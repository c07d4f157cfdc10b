//! psnc-capture command-line tool.
fn main() {
    eprintln!("psnc-capture: not implemented yet");
    std::process::exit(2);
}
