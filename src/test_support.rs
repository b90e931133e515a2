//! Helpers for the crate's unit tests.
use std::process::Command;

/// libtorch has one random generator per process, and the test harness runs tests on parallel
/// threads that draw from it (every model built initialises its weights from it). A test that
/// seeds and expects the same draw twice therefore runs its body in a child process of the test
/// binary that runs nothing else:
///
/// ```ignore
/// if !in_own_process("model::stochastic_depth::tests::a_seed_repeats_the_draw") { return; }
/// ```
///
/// Returns `true` in the child (run the body) and `false` in the parent once the child has passed;
/// the parent fails with the child's output when it did not, or when the name matched no test.
pub(crate) fn in_own_process(test: &str) -> bool {
    const CHILD: &str = "CONCEPTREE_TEST_CHILD";
    if std::env::var(CHILD).as_deref() == Ok(test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe).args([test, "--exact", "--test-threads=1"]).env(CHILD, test).output().expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{test} failed in its own process:\n{said}");
    assert!(stdout.contains("1 passed"), "{test} matched no test in its own process:\n{said}");
    false
}
