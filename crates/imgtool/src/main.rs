//! psnc-imgtool command-line tool.
fn main() {
    eprintln!("psnc-imgtool: not implemented yet");
    std::process::exit(2);
}
