//! SORT, THREAD and SEARCH parity with Dovecot: the corpus of
//! `tests/fixtures/dovecot_sort_answers.py` (CPython's email test messages and a
//! crafted thread set) is APPENDed to msgstore with the same internal dates and flags
//! as it was to Dovecot 2.3, every query is asked again, and each untagged answer
//! must equal Dovecot's, recorded in `tests/fixtures/dovecot_sort.json`, byte for
//! byte. Dovecot is not needed here: the answers are committed; the script records
//! them again when run without `--check`.

use std::path::Path;

use tests::{Options, Site, python};

#[test]
fn sort_thread_and_search_answer_as_dovecot_does() {
    let site = Site::new(Options::default());
    site.cli_ok(
        &["account", "add", "ann@example.com", "--password-stdin"],
        Some("pw\n"),
    );
    let server = site.start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dovecot_sort_answers.py");
    let run = format!(
        "import runpy, sys\nsys.argv = ['x', '--check'] + sys.argv[1:]\nrunpy.run_path({:?}, run_name='__main__')\n",
        script.display().to_string()
    );
    let out = python(
        &run,
        &[
            "127.0.0.1",
            &site.ports.imap.to_string(),
            "ann@example.com",
            "pw",
        ],
    );
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dovecot_sort.json"),
    )
    .expect("fixture");
    let total = fixture.lines().filter(|l| l.starts_with(" \"")).count();
    assert!(total >= 70, "fixture has {total} answers");
    assert!(
        out == format!("matched {total} of {total}\n"),
        "answers differ from Dovecot's:\n{out}"
    );
    drop(server);
}
