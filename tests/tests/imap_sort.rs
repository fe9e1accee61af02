//! SORT, THREAD and SEARCH parity with Dovecot: the corpus of
//! `tests/fixtures/dovecot_sort_answers.py` (CPython's email test messages and a
//! crafted thread set) is APPENDed to msgstore with the same internal dates and flags
//! as it was to Dovecot 2.3, every query is asked again, and each untagged answer
//! must equal Dovecot's, recorded in `tests/fixtures/dovecot_sort.json`, byte for
//! byte. Dovecot is not needed here: the answers are committed; the script records
//! them again when run without `--check`.

use std::path::Path;

use tests::dovecot_parity_check;

#[test]
fn sort_thread_and_search_answer_as_dovecot_does() {
    let out = dovecot_parity_check("dovecot_sort_answers.py");
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
}
