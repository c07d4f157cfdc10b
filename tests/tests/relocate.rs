//! The image carries the executable and the libraries (issue 3): restore works after the
//! library was renamed away and the executable deleted.

use psnc_tests::{RunOpts, Target};

#[test]
fn library_renamed_and_executable_deleted() {
    let mut t = Target::start_with_lib();
    let image = t.dir.join("image");
    t.capture_kill(&image);
    let lib = t.dir.join("libpsnc.so");
    std::fs::rename(&lib, t.dir.join("libpsnc.so.moved")).expect("rename the library");
    std::fs::remove_file(&t.exe).expect("delete the executable");
    t.restore(&image, &[], RunOpts::default());
    t.verify()
        .assert_passed(&["lib_state", "lib_code", "lib_data"]);
}
